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
    mods = ["experiments.train", "onesearch_jax.world.reward_model", "onesearch_jax.search"]
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
