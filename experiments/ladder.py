"""The V2 ladder: trains every rung (configs/distill.py's SFT rungs, then configs/grpo.py's
RL_RUNGS) over a few seeds on one built world, evaluates each run (for some rungs again with
teacher keywords; with --ab_events also in the simulated A/B test), and tabulates the rungs as
mean ± 95% interval over seeds.

    python -m experiments.ladder --base_workdir=W --root=R [--rungs=v1,cot,sd] [--seeds=3] \
        [--preset=small] [--overrides=train.steps=3000] [--order=seed]
    python -m experiments.ladder --base_workdir=W --root=R --rungs=v1,sd,dpo,grpo,tpma \
        --ab_events=2000
    python -m experiments.ladder --root=R --only_table [--table=sft_ladder]

An RL rung starts from its parent rung's run of the same seed (R/sd/seed0 -> R/dpo/seed0 ->
R/tpma/seed0), so the parent comes first in --rungs or is already done. --overrides go to the
SFT rungs only (the RL configs have their own train section). With --branch=sd@3000 the SFT
rungs below sd (the SD sweep, R-Drop / FGM / focal) start from R/sd/seed<N>'s train state at
step 3000 instead of from scratch: the same prefix, so each is paired with sd on what it
changes, for 40% of the training; --table=sweep writes that table to R/sweep.md beside the
ladder's.

Each run lives in R/<rung>/seed<N>: symlinks to W's world/, sids/ and data/, copies of its
world/sids configs and of its metrics.json (baseline numbers such as bm25/rel_hr@10). A run is
done once R/<rung>/seed<N>/LADDER_DONE exists (seconds per phase, as JSON); rerunning the ladder
skips done runs (with --ab_events, a done run that lacks the A/B gets it), and an interrupted
training resumes from its own checkpoints. The table goes to
R/ladder.md (and stdout; with the compute the runs took), all numbers with the per-seed values
to R/ladder.json, the paired deltas with their intervals to R/ladder.png. The pure parts live
in onesearch_jax/eval/ladder_table.py.

A ladder outlives one machine through --archive=A (a directory under version control, say): each
finished run's metrics.json, train_config.json, per-event outcomes (eval_events/*.npz: the
paired tables) and LADDER_DONE are copied to A/<rung>/seed<N>, and a run archived there counts
as done on a fresh machine (its numbers are restored, nothing is retrained). An RL rung whose
parent was restored from the archive has no parent checkpoint: the parent (and its parent) is
trained again, train phase only, from the same seed; a branch's
restored source only to the branch step (train.stop_at: 3,000 of sd's 5,000 steps for the
sweep), resumed to the end if a later child needs it. `--only_table --root=A` tabulates the
archive itself: the rungs, seeds and settings the last table recorded (A/TABLE.json; without
one, every finished rung found), each replaced only by a flag given on the command line.
"""
from __future__ import annotations

import collections
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Mapping, Sequence

from absl import app, flags

from configs import distill as distill_configs
from onesearch_jax import cli, fileio, quiet
from onesearch_jax import workdir as wd
from onesearch_jax.eval import delta_plot
from onesearch_jax.eval import ladder_table as lt
from onesearch_jax.eval import paired as paired_lib
from onesearch_jax.pipeline.variant_workdir import prepare_run_dir
from onesearch_jax.train.branch import parse_branch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DONE_FILE = "LADDER_DONE"
# What a run keeps in the archive: its numbers, its config, its per-event outcomes (the paired
# comparisons), the done marker last.
EVENT_FILES = tuple(os.path.join(wd.EVAL_EVENTS_DIR, f"{tag}.npz")
                    for tag in ("test", "teacher_test", wd.AB_EVENTS_TAG))
ARCHIVED = (wd.METRICS_FILE, "train_config.json") + EVENT_FILES + (DONE_FILE,)
TAIL_LINES = 30

_BASE = flags.DEFINE_string("base_workdir", None, "Workdir with a built world and SIDs.")
_ROOT = flags.DEFINE_string("root", None, "Where run workdirs go: ROOT/<rung>/seed<N>.")
_RUNGS = flags.DEFINE_list("rungs", ["v1", "cot", "sd", "rdrop", "fgm", "focal"],
                           "Rungs (configs/distill.py RUNGS, configs/grpo.py RL_RUNGS), in "
                           "table order.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per rung.")
_PRESET = flags.DEFINE_string("preset", "small", "Model preset of configs/distill.py.")
_TEACHER_RUNGS = flags.DEFINE_list("teacher_eval_rungs", ["cot", "sd"],
                                   "Rungs also evaluated with --keywords=teacher.")
_MAX_EVENTS = flags.DEFINE_integer("max_events", 4000, "Test events per evaluation.",
                                   lower_bound=1)
_OVERRIDES = flags.DEFINE_list("overrides", [], "Extra config overrides for every train call, "
                               "e.g. train.steps=3000 (passed as --config.train.steps=3000).")
_ONLY_TABLE = flags.DEFINE_bool("only_table", False, "Do not train; tabulate finished runs.")
_AB_EVENTS = flags.DEFINE_integer("ab_events", 0, "Simulated A/B searches per arm after each "
                                  "evaluation (experiments/online_ab.py); 0 = no A/B.")
_AB_PERTURB = flags.DEFINE_integer("ab_perturb", 1, "With --ab_events: also this many perturbed "
                                   "click models.", lower_bound=0)
_ARCHIVE = flags.DEFINE_string("archive", None, "Copy each finished run's numbers to "
                                "ARCHIVE/<rung>/seed<N> and count runs archived there as done "
                                "(a ladder that outlives the machine).")
_BRANCH = flags.DEFINE_string(
    "branch", None, "RUNG@STEP: every SFT rung descending from RUNG (configs/distill.py PARENTS: "
    "the SD sweep, R-Drop / FGM / focal) starts from ROOT/RUNG/seed<N>'s train state at STEP "
    "(train.branch_from) and feeds its batches as that run did (its data.mem_width): the "
    "variants share their parent's first STEP steps, paired on that prefix at a fraction of the "
    "cost.")
_TABLE = flags.DEFINE_string("table", "ladder", "Basename of the table files written under "
                             "--root: TABLE.md, TABLE.json, TABLE.png.")
_ORDER = flags.DEFINE_enum("order", "rung", ["rung", "seed"],
                           "rung: all seeds of a rung, then the next rung; seed: seed 0 of every "
                           "rung, then seed 1 ...")


class ChildFailed(RuntimeError):
    def __init__(self, tag: str, phase: str, returncode: int):
        super().__init__(f"{tag}: {phase} failed with exit status {returncode}")
        self.tag, self.phase, self.returncode = tag, phase, returncode


# --- rungs and run directories ----------------------------------------------------------------
def known_rungs() -> tuple[str, ...] | None:
    """configs.distill.RUNGS + configs.grpo.RL_RUNGS, or None when configs.distill (or its
    RUNGS) does not exist yet."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    try:
        module = importlib.import_module("configs.distill")
    except ModuleNotFoundError as e:
        if e.name in ("configs", "configs.distill"):
            return None
        raise
    rungs = getattr(module, "RUNGS", None)
    return tuple(rungs) + tuple(rl_rungs()) if rungs is not None else None


def _grpo_configs():
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    return importlib.import_module("configs.grpo")


def rl_rungs() -> dict:
    """configs.grpo.RL_RUNGS: rung -> (config arg with {preset}, parent rung)."""
    return dict(_grpo_configs().RL_RUNGS)


def validate_rungs(rungs: Sequence[str], valid: Sequence[str] | None) -> None:
    if not rungs:
        raise app.UsageError("--rungs is empty")
    if len(set(rungs)) != len(rungs):
        raise app.UsageError(f"--rungs has duplicates: {','.join(rungs)}")
    if valid is None:
        return
    unknown = [r for r in rungs if r not in valid]
    if unknown:
        raise app.UsageError(f"unknown rung(s) {', '.join(unknown)}; known rungs: "
                             f"{', '.join(valid)}")


def run_dir(root: str, rung: str, seed: int) -> str:
    return os.path.join(root, rung, f"seed{seed}")


def run_tag(rung: str, seed: int) -> str:
    return f"{rung}/seed{seed}"


def is_done(run: str) -> bool:
    return os.path.exists(os.path.join(run, DONE_FILE))


def schedule(rungs: Sequence[str], seeds: int, order: str = "rung") -> list[tuple[str, int]]:
    if order == "rung":
        return [(r, s) for r in rungs for s in range(seeds)]
    if order == "seed":
        return [(r, s) for s in range(seeds) for r in rungs]
    raise ValueError(f"unknown order {order!r}")


def check_base(base: str) -> None:
    for name in ("world", "sids"):
        if not os.path.isdir(os.path.join(base, name)):
            raise app.UsageError(f"--base_workdir {base} has no {name}/ (build it first)")


# --- the archive: a ladder that outlives the machine ---------------------------------------------
def archive_run(run: str, archived: str) -> None:
    """Copies a finished run's numbers (ARCHIVED, LADDER_DONE last) to `archived`."""
    for name in ARCHIVED:
        src, dst = os.path.join(run, name), os.path.join(archived, name)
        if os.path.exists(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst + ".tmp")
            os.replace(dst + ".tmp", dst)


MODEL_KEYS = ("encoder", "d_model", "enc_layers", "dec_layers")  # what a preset's model is


def check_archived_model(archived: str, preset: str) -> None:
    """Refuses an archived run trained with another model than `preset` trains (e.g. the
    from-scratch `small` of experiments/results/ladder_small, now `small_scratch`)."""
    path = os.path.join(archived, "train_config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        have = json.load(f).get("model")
    if not have:  # nothing recorded to compare
        return
    want = distill_configs.get_config(f"{preset}:v1").model
    diff = {k: (have.get(k, "scratch" if k == "encoder" else None), want[k]) for k in MODEL_KEYS
            if have.get(k, "scratch" if k == "encoder" else None) != want[k]}
    if diff:
        raise app.UsageError(
            f"{archived} was trained with another model than --preset={preset} (archived vs "
            f"preset: {diff}); pass that run's preset (small_scratch for the from-scratch "
            f"ladder) or another --archive")


def restore_run(base: str, archived: str, run: str) -> None:
    """Makes `run` a done run from its archived numbers (no checkpoint: see ensure_checkpoint)."""
    prepare_run_dir(base, run)
    for name in ARCHIVED:  # LADDER_DONE is last: a half-restored run is not done
        src, dst = os.path.join(archived, name), os.path.join(run, name)
        if os.path.exists(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)


def checkpoint_step(run: str) -> int | None:
    """The last step checkpointed under `run`, None if none."""
    ckpt = wd.checkpoint_dir(run)
    steps = [int(n) for n in os.listdir(ckpt) if n.isdigit()] if os.path.isdir(ckpt) else []
    return max(steps, default=None)


def recorded_steps(run: str) -> int:
    with open(os.path.join(run, "train_config.json")) as f:
        return int(json.load(f)["train"]["steps"])


def starts_from(rung: str, branch: tuple[str, int] | None = None) -> str | None:
    """The rung whose checkpoint a run of `rung` starts from: an RL rung's parent, a branched
    rung's ancestor (--branch); None for a run from scratch."""
    rl_parent = rl_rungs().get(rung, (None, None))[1]
    if rl_parent is not None:
        return rl_parent
    source = branch_source(rung, branch)
    return None if source is None else source[0]


def ensure_checkpoint(base: str, root: str, rung: str, seed: int, *, preset: str,
                      overrides: Sequence[str], branch: tuple[str, int] | None = None,
                      until: int | None = None) -> float:
    """Trains a done run again (train phase only) when it has no checkpoint at the step a child
    starts from (`until`: a branch's step; None: the run's last), as after a restore from the
    archive, parents first. A retrain for a branch stops at that step (train.stop_at, on the
    full run's schedule); a child that needs the rest later resumes it. Returns seconds spent."""
    run = run_dir(root, rung, seed)
    latest = checkpoint_step(run)
    if latest is not None and latest >= (until or recorded_steps(run)):
        return 0.0
    spent = 0.0
    parent = starts_from(rung, branch)
    if parent is not None:
        source = branch_source(rung, branch)
        spent += ensure_checkpoint(base, root, parent, seed, preset=preset, overrides=overrides,
                                   branch=branch, until=source[1] if source else None)
    prepare_run_dir(base, run)
    # Fed as the archived run was fed (data.mem_width), so that it trains the same model. The
    # restored train_config.json names the root it was trained under (an RL run's
    # init_workdir): a first retrain records its own (the archive keeps the original); a
    # resumed one keeps the one it wrote.
    overrides = list(overrides)
    config = os.path.join(run, "train_config.json")
    if os.path.exists(config):
        if rung not in rl_rungs():
            overrides.append(f"data.mem_width={recorded_mem_width(run)}")
        if latest is None:
            os.remove(config)
    if until:
        overrides.append(f"train.stop_at={until}")
    tag = run_tag(rung, seed)
    what = "no checkpoint (restored from the archive)" if latest is None else \
        f"its last checkpoint at step {latest}"
    print(f"ladder: {tag} has {what}: training it"
          + (f" to step {until}" if until else " again"), flush=True)
    return spent + run_child(train_command(preset, rung, seed, run, overrides, root, branch),
                             tag, "train (checkpoint for a child rung)")


# --- one run ------------------------------------------------------------------------------------
def descends_from(rung: str, ancestor: str) -> bool:
    """Whether `ancestor` is on the SFT rung's chain of parents (configs/distill.py PARENTS)."""
    parent = distill_configs.PARENTS.get(rung)
    while parent is not None:
        if parent == ancestor:
            return True
        parent = distill_configs.PARENTS.get(parent)
    return False


def parse_branch_flag(branch: str | None) -> tuple[str, int] | None:
    """--branch 'RUNG@STEP' -> (RUNG, STEP); None stays None."""
    if not branch:
        return None
    try:
        return parse_branch(branch, "--branch", "RUNG@STEP, e.g. sd@3000")
    except ValueError as e:
        raise app.UsageError(str(e)) from None


def branch_source(rung: str, branch: tuple[str, int] | None) -> tuple[str, int] | None:
    """(ancestor rung, step) the run of `rung` branches from under --branch, or None."""
    if branch is None or rung in rl_rungs() or not descends_from(rung, branch[0]):
        return None
    return branch


def recorded_mem_width(run: str) -> str:
    """The data.mem_width a run's train_config.json records ('fixed' when the record predates
    the key: those runs fed every batch at mem_len slots)."""
    with open(os.path.join(run, "train_config.json")) as f:
        return json.load(f).get("data", {}).get("mem_width", "fixed")


def branch_overrides(root: str, rung: str, seed: int, branch: tuple[str, int] | None) -> list:
    """train.branch_from and the parent's data.mem_width for a branched run; [] otherwise."""
    source = branch_source(rung, branch)
    if source is None:
        return []
    parent = run_dir(root, source[0], seed)
    return [f"train.branch_from={parent}@{source[1]}",
            f"data.mem_width={recorded_mem_width(parent)}"]


def normalize_override(o: str) -> str:
    o = o.strip()
    o = o[2:] if o.startswith("--") else o
    o = o[len("config."):] if o.startswith("config.") else o
    return f"--config.{o}"


def train_command(preset: str, rung: str, seed: int, run: str, overrides: Sequence[str],
                  root: str | None = None, branch: tuple[str, int] | None = None) -> list:
    """experiments.train for a rung; an RL rung starts from its parent's run under `root`, whose
    frozen MiniLM state cache (root/minilm_states) every SFT rung shares; a rung under
    `branch` (RUNG, STEP) starts from root/RUNG's state at STEP."""
    rl = rl_rungs()
    if rung in rl:
        config, parent = rl[rung]
        return [sys.executable, "-m", "experiments.train", f"--config={config.format(preset=preset)}",
                f"--workdir={run}", f"--config.init_workdir={run_dir(root, parent, seed)}",
                f"--config.train.seed={seed}"]
    shared = [] if root is None else [
        f"--config.data.state_cache={os.path.join(root, 'minilm_states')}"]
    return ([sys.executable, "-m", "experiments.train",
             f"--config=configs/distill.py:{preset}:{rung}", f"--workdir={run}"] + shared
            + [normalize_override(o) for o in overrides if o.strip()]
            + [normalize_override(o) for o in branch_overrides(root, rung, seed, branch)]
            + [f"--config.train.seed={seed}"])


def ab_command(run: str, events: int, perturb: int) -> list:
    return [sys.executable, "-m", "experiments.online_ab", f"--workdir={run}",
            f"--num_events={events}", f"--perturb={perturb}"]


def evaluate_command(run: str, max_events: int, teacher: bool = False) -> list:
    cmd = [sys.executable, "-m", "experiments.evaluate", f"--workdir={run}",
           f"--max_events={max_events}"]
    return cmd + ["--keywords=teacher"] if teacher else cmd


def run_child(cmd: Sequence[str], tag: str, phase: str) -> float:
    """Runs cmd from the repo root, streaming its output prefixed by `[tag] `; returns seconds.
    On failure prints its last lines and raises ChildFailed."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    start = time.perf_counter()
    with subprocess.Popen(list(cmd), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1,
                          errors="replace") as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            print(f"[{tag}] {line}", flush=True)
        rc = proc.wait()
    if rc != 0:
        print(f"[{tag}] ---- {phase} failed (exit {rc}); its last {len(tail)} lines: ----",
              flush=True)
        for line in tail:
            print(f"[{tag}] | {line}", flush=True)
        raise ChildFailed(tag, phase, rc)
    return time.perf_counter() - start


def run_one(base: str, root: str, rung: str, seed: int, *, preset: str, overrides: Sequence[str],
            max_events: int, teacher: bool, ab_events: int = 0, ab_perturb: int = 1,
            branch: tuple[str, int] | None = None) -> dict[str, float]:
    """Trains (or resumes) and evaluates one run; writes LADDER_DONE last. Seconds per phase."""
    run, tag = run_dir(root, rung, seed), run_tag(rung, seed)
    parent = starts_from(rung, branch)
    if parent is not None and not is_done(run_dir(root, parent, seed)):
        raise app.UsageError(f"{tag} starts from {run_tag(parent, seed)}, which is not done: "
                             f"put {parent} before {rung} in --rungs")
    phases = {}
    if parent is not None:
        source = branch_source(rung, branch)
        phases["train_parent"] = ensure_checkpoint(base, root, parent, seed, preset=preset,
                                                   overrides=overrides, branch=branch,
                                                   until=source[1] if source else None)
    prepare_run_dir(base, run)
    phases["train"] = run_child(train_command(preset, rung, seed, run, overrides, root, branch),
                                tag, "train")
    phases["evaluate"] = run_child(evaluate_command(run, max_events), tag, "evaluate")
    if teacher:
        phases["evaluate_teacher"] = run_child(evaluate_command(run, max_events, teacher=True),
                                               tag, "evaluate --keywords=teacher")
    if ab_events > 0:
        phases["online_ab"] = run_child(ab_command(run, ab_events, ab_perturb), tag, "online_ab")
    phases["total"] = sum(phases.values())
    fileio.write_json(os.path.join(run, DONE_FILE), phases)
    return phases


def has_ab(run: str) -> bool:
    return os.path.exists(os.path.join(run, wd.EVAL_EVENTS_DIR, f"{wd.AB_EVENTS_TAG}.npz"))


def add_ab(base: str, root: str, rung: str, seed: int, *, preset: str, overrides: Sequence[str],
           ab_events: int, ab_perturb: int = 1,
           branch: tuple[str, int] | None = None) -> dict[str, float]:
    """A done run that lacks the A/B (it ran without --ab_events) gets it: the A/B phase is
    added to its LADDER_DONE (a run restored from the archive is first trained again)."""
    run, tag = run_dir(root, rung, seed), run_tag(rung, seed)
    phases = dict(_read_done(run) or {})
    phases["train_for_ab"] = ensure_checkpoint(base, root, rung, seed, preset=preset,
                                               overrides=overrides, branch=branch)
    phases["online_ab"] = run_child(ab_command(run, ab_events, ab_perturb), tag, "online_ab")
    phases["total"] = sum(v for k, v in phases.items() if k != "total")
    fileio.write_json(os.path.join(run, DONE_FILE), phases)
    return phases


# --- the table ----------------------------------------------------------------------------------
def collect(root: str, rungs: Sequence[str], seeds: int) -> dict[str, dict[int, dict]]:
    """{rung: {seed: metrics.json + each A/B lift's share of the oracle's}} over finished runs
    (LADDER_DONE present)."""
    out = {}
    for rung in rungs:
        out[rung] = {s: lt.with_headroom(wd.read_metrics(run_dir(root, rung, s)))
                     for s in range(seeds) if is_done(run_dir(root, rung, s))}
    return out


def rung_parent(rung: str, tabled: Sequence[str] | None = None) -> str | None:
    """The rung `rung` adds to: an SFT rung's predecessor; for an RL rung the rung it is
    compared with (configs.grpo.COMPARED_WITH: TPMA with GRPO, a TPMA variant with TPMA) when
    that one is among `tabled` (None: always), else its starting run."""
    rl = rl_rungs()
    if rung in rl:
        compared = _grpo_configs().COMPARED_WITH.get(rung)
        if compared is not None and (tabled is None or compared in tabled):
            return compared
        return rl[rung][1]
    return distill_configs.PARENTS.get(rung)


def collect_events(root: str, rungs: Sequence[str], seeds: int, tag: str = "test"
                   ) -> dict[str, dict[int, tuple]]:
    """{rung: {seed: (event ids, outcomes, slices)}} of the finished runs' per-event files
    (`test`: the offline evaluation; `wd.AB_EVENTS_TAG`: the online A/B's searches)."""
    out = {}
    for rung in rungs:
        runs = {}
        for s in range(seeds):
            run = run_dir(root, rung, s)
            if is_done(run) and os.path.exists(wd.eval_events_path(run, tag)):
                runs[s] = wd.load_eval_events(run, tag)
        out[rung] = runs
    return out


def plot(paired: Mapping[str, Mapping], rungs: Sequence[str], path: str,
         metrics: Sequence[str] = lt.PLOT_METRICS) -> None:
    """The paired deltas with their 95% intervals: top row each rung minus the rung it adds to,
    bottom row minus V1; a filled marker where the interval excludes 0."""
    rows = [(label, {r: (paired.get(r) or {}).get(key) for r in rungs})
            for key, label in (("paired_vs_parent", "minus parent"),
                               ("paired_vs_v1", "minus V1"))]
    delta_plot.plot_delta_grid(rows, metrics, path,
                               "V2 ladder: paired deltas on the same events and seeds, 95% "
                               "bootstrap interval (filled: excludes 0)")


def write_table(root: str, rungs: Sequence[str], seeds: int, *, preset: str,
                teacher_rungs: Sequence[str], max_events: int,
                overrides: Sequence[str], name: str = "ladder") -> dict[str, str]:
    """Aggregates the finished runs under root into NAME.md/.json/.png; prints the table.
    Returns {kind: path}."""
    per_seed = collect(root, rungs, seeds)
    teacher = [r for r in rungs if r in set(teacher_rungs)]
    rows = lt.aggregate({r: list(d.values()) for r, d in per_seed.items()}, teacher,
                        metrics=lt.METRICS + lt.AB_METRICS, rungs=rungs)
    md = lt.format_markdown(rows, preset, seeds, max_events, overrides)
    branched = branched_runs(root, per_seed)
    if branched:
        md += ("\nBranched runs (train.branch_from: each shares its source's train state up to "
               "that step, and is paired with it on that prefix): "
               + "; ".join(f"{tag} from {src}" for tag, src in branched.items()) + ".\n")
    parents = {r: rung_parent(r, rungs) for r in rungs}
    paired = paired_lib.paired_summary(collect_events(root, rungs, seeds), parents)
    paired_ab = paired_lib.paired_summary(collect_events(root, rungs, seeds, wd.AB_EVENTS_TAG),
                                          parents, metrics=lt.AB_PAIRED_METRICS,
                                          slices=lt.AB_PAIRED_SLICES)
    # Offline deltas on the test events, then the online A/B's on the simulated searches.
    for summary, columns, what, where, unit in (
            (paired, lt.PAIRED_COLUMNS, "Paired differences", "test events", "events"),
            (paired_ab, lt.AB_PAIRED_COLUMNS, "Online A/B, paired: lift over the legacy engine",
             "simulated searches", "searches")):
        for key, title in (("paired_vs_parent", "each rung minus the rung it adds to"),
                           ("paired_vs_v1", "each rung minus V1")):
            table = lt.format_paired(summary, rungs, key, columns)
            if table.count("\n") > 1:
                md += (f"\n{what}, {title}, on the same {where} and seeds (mean [95% bootstrap "
                       f"interval over {unit}]; * = the interval excludes 0):\n\n" + table + "\n")
    phase_seconds = {rung: {f"seed{s}": _read_done(run_dir(root, rung, s)) for s in d}
                     for rung, d in per_seed.items()}
    compute = lt.compute_summary(phase_seconds)
    if compute["runs"]:
        md += "\n" + lt.format_compute(compute) + "\n"
    os.makedirs(root, exist_ok=True)
    paths = {kind: os.path.join(root, f"{name}.{kind}") for kind in ("md", "json", "png")}
    with open(paths["md"], "w") as f:
        f.write(md)
    keys = list(lt.METRICS) + lt.AB_METRICS + [lt.TEACHER_PREFIX + m for m in lt.METRICS]
    summary = {
        "preset": preset, "seeds": seeds, "max_events": max_events, "overrides": list(overrides),
        "rungs": list(rungs), "teacher_eval_rungs": teacher, "metrics": list(lt.METRICS),
        "rows": [{"name": r["name"], "rung": r["rung"], "teacher": r["teacher"],
                  "n_runs": r["seeds"], "stats": r["stats"]} for r in rows],
        "per_seed": {rung: {f"seed{s}": {k: m[k] for k in keys if k in m}
                            for s, m in d.items()} for rung, d in per_seed.items()},
        "phase_seconds": phase_seconds, "compute": compute, "branched": branched,
        # The issue-30 view: per rung, its seeds, metric means and paired deltas.
        "by_rung": {r["rung"]: {
            "seeds": r["seeds"],
            "metrics": {m: r["stats"][m]["mean"] for m in lt.METRICS},
            "paired_vs_parent": paired.get(r["rung"], {}).get("paired_vs_parent", {}),
            "paired_vs_v1": paired.get(r["rung"], {}).get("paired_vs_v1", {}),
            "ab_paired_vs_parent": paired_ab.get(r["rung"], {}).get("paired_vs_parent", {}),
            "ab_paired_vs_v1": paired_ab.get(r["rung"], {}).get("paired_vs_v1", {}),
        } for r in rows if not r["teacher"]},
    }
    fileio.write_json(paths["json"], summary)
    plot(paired, rungs, paths["png"])
    print(md, flush=True)
    print(f"wrote {paths['md']}, {paths['json']}, {paths['png']}", flush=True)
    return paths


def branched_runs(root: str, per_seed: Mapping[str, Mapping]) -> dict[str, str]:
    """{rung/seedN: 'source rung/seedN@STEP'} of the tabled runs trained with train.branch_from
    (read from their train_config.json; the source named by its place under its root)."""
    out = {}
    for rung, seeds in per_seed.items():
        for s in seeds:
            path = os.path.join(run_dir(root, rung, s), "train_config.json")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                spec = json.load(f).get("train", {}).get("branch_from", "")
            if spec:
                source, _, step = spec.rpartition("@")
                parts = os.path.normpath(source).split(os.sep)
                out[run_tag(rung, s)] = f"{'/'.join(parts[-2:])}@{step}"
    return out


def _read_done(run: str):
    try:
        with open(os.path.join(run, DONE_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# --- main ---------------------------------------------------------------------------------------
def run_ladder(base: str, root: str, rungs: Sequence[str], seeds: int, *, order: str,
               preset: str, teacher_rungs: Sequence[str], max_events: int,
               overrides: Sequence[str], ab_events: int = 0, ab_perturb: int = 1,
               archive: str | None = None, branch: tuple[str, int] | None = None) -> None:
    plan = schedule(rungs, seeds, order)
    teacher = set(teacher_rungs)
    start = time.perf_counter()
    if archive:
        restored = [(r, s) for r, s in plan if not is_done(run_dir(root, r, s))
                    and is_done(run_dir(archive, r, s))]
        for r, s in restored:
            check_archived_model(run_dir(archive, r, s), preset)
        for r, s in restored:
            restore_run(base, run_dir(archive, r, s), run_dir(root, r, s))
        if restored:
            print(f"ladder: restored {len(restored)} run(s) from {archive}: "
                  f"{', '.join(run_tag(r, s) for r, s in restored)}", flush=True)
    done = sum(is_done(run_dir(root, r, s)) for r, s in plan)
    if done:
        print(f"ladder: {done}/{len(plan)} runs already done (skipped)", flush=True)
    finished_here, spent_here = 0, 0.0
    for rung, seed in plan:
        run = run_dir(root, rung, seed)
        if is_done(run) and ab_events > 0 and not has_ab(run):
            print(f"ladder: {run_tag(rung, seed)} is done without the A/B: running it", flush=True)
            add_ab(base, root, rung, seed, preset=preset, overrides=overrides,
                   ab_events=ab_events, ab_perturb=ab_perturb, branch=branch)
            if archive:
                archive_run(run, run_dir(archive, rung, seed))
        if is_done(run):
            continue
        print(f"ladder: starting {run_tag(rung, seed)} in {run}", flush=True)
        t0 = time.perf_counter()
        run_one(base, root, rung, seed, preset=preset, overrides=overrides,
                max_events=max_events, teacher=rung in teacher, ab_events=ab_events,
                ab_perturb=ab_perturb, branch=branch)
        if archive:
            archive_run(run, run_dir(archive, rung, seed))
        finished_here += 1
        spent_here += time.perf_counter() - t0
        done += 1
        print(lt.progress_line(done, len(plan), time.perf_counter() - start, finished_here,
                               spent_here) + f" (finished {run_tag(rung, seed)})", flush=True)


TABLE_SETTINGS = ("rungs", "seeds", "preset", "teacher_eval_rungs", "max_events", "overrides")


def table_settings(root: str, name: str, given: Mapping) -> dict:
    """What `--only_table` tabulates: the flags given on the command line, the rest as the runs
    under root were made (ROOT/NAME.json of the last table; without one, every rung folder with
    a finished run, in the known order, its seeds, and the evaluations' own max_events), so a
    retabulation keeps every row and its header."""
    path = os.path.join(root, f"{name}.json")
    recorded = {}
    if os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
    else:
        finished = sorted(os.path.dirname(os.path.relpath(p, root)).split(os.sep)
                          for p in glob.glob(os.path.join(root, "*", "seed*", DONE_FILE)))
        if finished:
            order = list(known_rungs() or ())
            found = {rung for rung, _ in finished}
            recorded["rungs"] = sorted(found, key=lambda r: (order.index(r) if r in order
                                                             else len(order), r))
            recorded["seeds"] = 1 + max(int(seed.removeprefix("seed")) for _, seed in finished)
            run_config = wd.read_metrics(os.path.join(root, *finished[0])).get("config", {})
            if "max_events" in run_config.get("evaluate", {}):
                recorded["max_events"] = run_config["evaluate"]["max_events"]
    defaults = {key: flags.FLAGS[key].value for key in TABLE_SETTINGS}
    return {key: given.get(key, recorded.get(key, defaults[key])) for key in TABLE_SETTINGS}


def main(argv):
    del argv  # cli.run refuses leftover arguments
    quiet.quiet_libraries()
    # Checked here, not with required=True: a required flag's validator would also fire for
    # any other absl app that runs in a process that imported this module (tests do).
    for name in ("root",) if _ONLY_TABLE.value else ("base_workdir", "root"):
        if not flags.FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")
    given = {name: flags.FLAGS[name].value for name in TABLE_SETTINGS
             if flags.FLAGS[name].present or not _ONLY_TABLE.value}
    settings = (table_settings(os.path.abspath(_ROOT.value), _TABLE.value, given)
                if _ONLY_TABLE.value else given)
    rungs = [r.strip() for r in settings["rungs"] if r.strip()]
    teacher_rungs = [r.strip() for r in settings["teacher_eval_rungs"] if r.strip()]
    seeds = int(settings["seeds"])
    if seeds < 1:
        raise app.UsageError("--seeds must be >= 1")
    try:
        valid = known_rungs()
    except Exception as e:  # configs/distill.py exists but does not import: train will say why
        print(f"ladder: warning: could not import configs.distill to check rungs ({e!r})",
              flush=True)
        valid = None
    validate_rungs(rungs, valid)
    root = os.path.abspath(_ROOT.value)
    archive = os.path.abspath(_ARCHIVE.value) if _ARCHIVE.value else None
    common = dict(preset=settings["preset"], teacher_rungs=teacher_rungs,
                  max_events=int(settings["max_events"]), overrides=list(settings["overrides"]))
    table, branch = _TABLE.value, parse_branch_flag(_BRANCH.value)
    if not _ONLY_TABLE.value:
        check_base(_BASE.value)
        try:
            run_ladder(_BASE.value, root, rungs, seeds, order=_ORDER.value,
                       ab_events=_AB_EVENTS.value, ab_perturb=_AB_PERTURB.value,
                       archive=archive, branch=branch, **common)
        except ChildFailed as e:
            print(f"ladder: run {e.tag} failed in {e.phase} (exit {e.returncode}); finished "
                  f"runs are kept, rerun the same command to resume", file=sys.stderr, flush=True)
            try:
                write_table(root, rungs, seeds, name=table, **common)
            except Exception as table_error:  # the failure above is the news, not this
                print(f"ladder: could not write the table: {table_error!r}", file=sys.stderr)
            sys.exit(1)
    write_table(root, rungs, seeds, name=table, **common)


if __name__ == "__main__":
    cli.run(main)
