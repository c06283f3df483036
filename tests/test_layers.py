"""The package's folders import in layers (no loop between folders), and serving loads only what
reading a workdir and ranking need."""
import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "onesearch_jax"


def _node(module: str) -> str:
    """A folder of the package, or a top-level module: `onesearch_jax.sid.trie` -> `sid`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def folder_graph() -> dict:
    """node -> nodes it imports (lazy, in-function imports too)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        edges = graph.setdefault(_node(module), set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("onesearch_jax.") and name != "onesearch_jax":
                    target = _node(name)
                    if (PACKAGE / target).is_dir() or (PACKAGE / f"{target}.py").exists():
                        edges.add(target)
        edges.discard(_node(module))
    return graph


def loops(graph: dict) -> list:
    """Strongly connected sets of two or more nodes (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.add(w)
                if w == v:
                    break
            if len(members) > 1:
                out.append(sorted(members))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_loop_finder_finds_a_loop():
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert loops({"a": {"b"}, "b": set()}) == []


def test_no_loop_between_the_package_folders():
    graph = folder_graph()
    assert {"serving", "pipeline", "model", "sid", "data", "train", "world"} <= set(graph)
    assert loops(graph) == []


def test_the_readmes_layout_lists_the_folders_in_their_layers():
    """README's Layout says each library folder imports only the ones listed below it."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    order = [line.split("/")[0].strip() for line in layout.splitlines()
             if line.startswith("  ") and line.split()[0].endswith("/")
             and (PACKAGE / line.split("/")[0].strip()).is_dir()]
    graph = folder_graph()
    assert set(order) == {p.name for p in PACKAGE.iterdir()
                          if p.is_dir() and (p / "__init__.py").exists()}
    above = [(f, g) for i, f in enumerate(order) for g in sorted(graph[f]) if g in order[:i]]
    assert above == []


def test_serving_loads_no_simulator_fitter_or_training_code():
    code = ("import sys, onesearch_jax.serving; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('onesearch_jax')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert "onesearch_jax.serving.searcher" in loaded
    forbidden = [m for m in loaded
                 if _node(m) in ("world", "train", "pipeline")
                 or m in ("onesearch_jax.sid.kmeans", "onesearch_jax.sid.rq_kmeans",
                          "onesearch_jax.sid.opq", "onesearch_jax.sid.khqe",
                          "onesearch_jax.data.sft_tasks", "onesearch_jax.data.event_dataset")]
    assert forbidden == []
