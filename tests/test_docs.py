"""The README stays a short, true summary: every figure in its Results section is one the docs
report (one figure per fact, checked), every linked page exists, and nothing cites files outside
the repository."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = {p.name: p.read_text() for p in (ROOT / "docs").glob("*.md")}


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_readme_is_short():
    assert len(README.splitlines()) < 250


def test_every_figure_of_the_results_summary_is_in_the_docs():
    summary = _section(README, "Results")
    figures = set(re.findall(r"\d+\.\d+", summary))
    assert len(figures) > 20
    everything = "\n".join(DOCS.values())
    missing = sorted(f for f in figures if f not in everything)
    assert missing == []


def test_links_resolve():
    for page, text in [("README.md", README)] + [(f"docs/{n}", t) for n, t in DOCS.items()]:
        base = ROOT if page == "README.md" else ROOT / "docs"
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not target.startswith("http"):
                assert (base / target).exists(), f"{page} links to missing {target}"


def test_no_citation_of_files_outside_the_repository():
    texts = {"README.md": README, **{f"docs/{n}": t for n, t in DOCS.items()}}
    for path in (ROOT / "onesearch_jax").rglob("*.py"):
        texts[str(path.relative_to(ROOT))] = path.read_text()
    offenders = [name for name, text in texts.items() if "../shared" in text or "DESIGN.md" in text]
    assert offenders == []


# `python -m experiments.X --a=1 \\n --b` in a page: the module and its flags (absl DEFINE_* or
# argparse add_argument in its own source, or the flags every entry point has).
_COMMAND = re.compile(r"(?:python|\"\$PY\") -m ((?:experiments|benchmarks)\.\w+)((?:\s+--[\w.]+"
                      r"(?:=(?:\"[^\"]*\"|'[^']*'|[^\s`]+))?)*)")
_DEFINED = re.compile(r"DEFINE_\w+\(\s*\"(\w+)\"|add_argument\(\s*\"--([\w-]+)\"")


def _flags_defined(source: str) -> set:
    return {(a or b).replace("-", "_") for a, b in _DEFINED.findall(source)}


def test_every_command_in_the_pages_names_a_module_and_flags_that_exist():
    """The README, docs/ and the launch scripts (experiments/launch/*.sh)."""
    launch = {p.name: p.read_text() for p in (ROOT / "experiments" / "launch").glob("*.sh")}
    everywhere = _flags_defined((ROOT / "onesearch_jax" / "cli.py").read_text()) | \
        _flags_defined((ROOT / "onesearch_jax" / "quiet.py").read_text()) | {"config"}
    checked, wrong = 0, []
    for name, text in {"README.md": README, **DOCS, **launch}.items():
        for module, args in _COMMAND.findall(text.replace("\\\n", " ")):
            path = ROOT / (module.replace(".", "/") + ".py")
            if not path.exists():
                wrong.append(f"{name}: no module {module}")
                continue
            defined = _flags_defined(path.read_text()) | everywhere
            for flag in re.findall(r"--([\w.]+)", args):
                flag = flag.split(".")[0]
                if flag not in defined and flag.removeprefix("no") not in defined:
                    wrong.append(f"{name}: {module} has no --{flag}")
            checked += 1
    assert checked > 40 and wrong == []
