"""Training code never reaches the simulator's true click model (static import graph)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FORBIDDEN = ("onesearch_jax.world.click_model", "onesearch_jax.world.simulator")


def _module_file(name: str):
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _imports(name: str) -> set:
    path = _module_file(name)
    if path is None:
        return set()
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in ("onesearch_jax", "experiments")
            and _module_file(m) is not None}


def reachable(roots) -> dict:
    """module -> the module that first imported it, over everything reachable from roots."""
    seen, todo = {r: None for r in roots}, list(roots)
    while todo:
        m = todo.pop()
        for dep in _imports(m):
            if dep not in seen:
                seen[dep] = m
                todo.append(dep)
    return seen


def _training_roots():
    mods = ["experiments.train", "onesearch_jax.world.reward_model", "onesearch_jax.serving",
            *(f"onesearch_jax.pipeline.{m}" for m in ("stages", "sft_run", "rl_run", "real_run"))]
    for pkg in ("train", "data", "sid", "model", "decode"):
        for path in sorted((ROOT / "onesearch_jax" / pkg).glob("*.py")):
            mods.append(f"onesearch_jax.{pkg}.{path.stem}")
    return mods


def test_graph_walker_finds_a_known_edge():
    assert "onesearch_jax.world.click_model" in reachable(["onesearch_jax.world.simulator"])


@pytest.mark.parametrize("forbidden", FORBIDDEN)
def test_training_code_never_imports_the_true_click_model(forbidden):
    seen = reachable(_training_roots())
    chain, m = [], forbidden
    while m is not None and m in seen:
        chain.append(m)
        m = seen[m]
    assert forbidden not in seen, " <- ".join(chain)


HIDDEN_TRUTH = ("intents", "intent", "oracle_ranking", "relevance_tiers")  # attribute reads
HIDDEN_CALLS = ("relevance",)  # world.relevance(query_id); real judgments' `.relevance` is data


def hidden_truth_reads(source: str) -> list:
    """Line numbers that read a latent intent or call world.relevance."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        called = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in HIDDEN_CALLS)
        if called or (isinstance(node, ast.Attribute) and node.attr in HIDDEN_TRUTH):
            lines.append(node.lineno)
    return sorted(lines)


def test_hidden_truth_finder_finds_reads():
    assert hidden_truth_reads("x = world.queries.intents[3]\ny = world.relevance(3)\n"
                              "z = judgments.relevance") == [1, 2]


def test_training_code_never_reads_latent_intents_or_true_relevance():
    """Attribute reads like `world.queries.intents` or `world.relevance(...)` stay in world/,
    eval/ and the reward model (its relevance feature stands in for a relevance model)."""
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for pkg in ("train", "data", "sid", "model", "decode")
                 for path in sorted((ROOT / "onesearch_jax" / pkg).glob("*.py"))
                 for line in hidden_truth_reads(path.read_text())]
    assert not offenders, offenders
