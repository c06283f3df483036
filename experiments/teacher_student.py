"""Where the teacher (query + keywords) beats the student (query only), per slice, on training
and on test queries: each run evaluated both ways on the same events, paired per event.

    python -m experiments.teacher_student --runs=base=R/cot/seed0,sd=R/sd/seed0 \\
        --splits=train,test --max_events=4000 --out=experiments/results/ladder_pretrained/ts
    python -m experiments.teacher_student --runs=base=R/cot/seed0+R/cot/seed1,\\
        sd=R/sd/seed0+R/sd/seed1 ...      # several seeds, paired per seed, pooled

For every run and split: T - S (the same weights, keywords given vs not) per metric and slice,
with a 95% bootstrap interval over events; across runs on the test day: SD (S) - Base (T), the
paper's claim that the distilled student reaches the teacher, for every run named other than
`base` (the SD sweep's variants too; --t_minus_s limits the T - S rows). Missing evaluations
are run first (`experiments.evaluate --split=... [--keywords=teacher]`, in process); existing
ones are reused.
For a self-distilled run whose training log is at hand (W/metrics.jsonl), also what the KL term
weighed while it trained: the teacher's CE gain over the student on the training batches and
alpha_KL * KL as a share of the loss. Writes OUT.md, OUT.json and OUT.png (the deltas with
their intervals: T - S per run and day, then each student minus Base (T)).
"""
from __future__ import annotations

import json
import os

from absl import flags

from onesearch_jax import cli, fileio, quiet
from onesearch_jax import workdir as wd
from onesearch_jax.eval import delta_plot
from onesearch_jax.eval import ladder_table as lt
from onesearch_jax.eval import paired as paired_lib
from onesearch_jax.pipeline.evaluate_run import evaluate_workdir, event_tag


def define_flags():
    """Defined when run as a program only (absl's flags are global; tests import the module)."""
    flags.DEFINE_list("runs", [], "name=workdir pairs (e.g. base=R/cot/seed0,sd=R/sd/seed0); "
                      "name=W0+W1 pools seeds (paired within each, the same order per name).")
    flags.DEFINE_list("splits", ["train", "test"], "Days scored: train and/or test.")
    flags.DEFINE_integer("max_events", 4000, "Events per split (for missing evaluations; "
                         "existing ones keep theirs).", lower_bound=1)
    flags.DEFINE_string("out", "", "Write OUT.md, OUT.json and OUT.png.")
    flags.DEFINE_bool("kl", False, "Also what the teacher has to teach, dropout off: per SID "
                      "position KL(teacher || student) and the teacher's CE gain on each day's "
                      "clicked items (pipeline/teacher_kl.py), for every run and split.")
    flags.DEFINE_list("t_minus_s", None, "Names whose T - S rows are computed (default: every "
                      "run; a sweep may want only base, sparing the teacher evaluations).")


METRICS = ("rel_hr@10", "click_hr@10", "order_hr@10", "negation_violation@10")
SLICES = ("tail", "need", "negation", "unseen")
COLUMNS = ["rel_hr@10", "rel_hr@10/tail", "rel_hr@10/need", "rel_hr@10/negation",
           "rel_hr@10/unseen", "click_hr@10", "order_hr@10", "negation_violation@10"]
# Need queries by how often the training logs hold the query (data/query_traffic.py): where the
# keywords' gain lies, against what the training batches (and so the KL) see.
TRAFFIC = ("head", "torso", "tail", "unseen")
NEED_BY_TRAFFIC = tuple(f"need/{t}" for t in TRAFFIC)
# The row label of a student against Base given keywords: "<name> (S) - Base (T) (test)".
VS_BASE_T = " (S) - Base (T) (test)"
PLOT_COLUMNS = ["rel_hr@10", "rel_hr@10/need", "rel_hr@10/need/torso", "rel_hr@10/negation",
                "rel_hr@10/unseen", "negation_violation@10"]


def parse_runs(specs) -> dict[str, list[str]]:
    """name=W or name=W0+W1+... (one workdir per seed) -> {name: [workdirs]}."""
    runs = {}
    for spec in specs:
        name, sep, paths = spec.partition("=")
        workdirs = [p for p in paths.split("+") if p]
        if not sep or not name or not workdirs:
            raise ValueError(f"--runs entry {spec!r} is not name=workdir[+workdir...]")
        runs[name] = workdirs
    return runs


def student_rows(names) -> dict[str, str]:
    """{row label: name} of the students compared with Base (T) on the test day: every run but
    `base` (the paper's claim is SD (S) >= Base (T); a sweep asks it of each variant)."""
    return {("SD" if n == "sd" else n) + VS_BASE_T: n for n in names if n != "base"}


def plot_rows(cells: dict, rows) -> list:
    """OUT.png's panel rows: the T - S comparisons, then the students minus Base (T) (named by
    run), each only where there is one."""
    groups = [("teacher minus student", {k: cells[k] for k in rows if " T - S " in k}),
              ("student minus Base (T), test", {k.removesuffix(VS_BASE_T): cells[k]
                                                for k in rows if k.endswith(VS_BASE_T)})]
    return [(label, systems) for label, systems in groups if systems]


def outcomes(workdir: str, split: str, teacher: bool, max_events: int):
    """(event ids, outcomes, slices) of one evaluation, running it when it is missing."""
    tag = event_tag("teacher/" if teacher else "", split)
    if not fileio.exists(wd.eval_events_path(workdir, tag)):
        print(f"evaluating {workdir} on {split}{' with keywords' if teacher else ''} "
              f"({max_events} events)", flush=True)
        evaluate_workdir(workdir, max_events=max_events, split=split,
                         keywords="teacher" if teacher else "none")
    return wd.load_eval_events(workdir, tag)


def differences(a, b, what: str = "") -> dict:
    """b - a per metric and slice, paired over the events both scored (paired.compare); a and
    b are one evaluation each, or {seed: evaluation} pooled over the seeds both have. `what`
    names the comparison in the error when they scored different events."""
    a, b = (x if isinstance(x, dict) else {0: x} for x in (a, b))
    pair = paired_lib.pair_runs(a, b)
    if pair is None:
        sizes = ["/".join(str(len(run[0])) for run in x.values()) for x in (a, b)]
        raise ValueError(f"{what + ': ' if what else ''}the two evaluations scored different "
                         f"events ({sizes[0]} vs {sizes[1]} per seed); rerun "
                         "experiments.evaluate on them with the same --max_events")
    base, new, masks, _ = pair
    return paired_lib.compare(base, new, slice_masks(masks), [m for m in METRICS if m in base])


def slice_masks(masks) -> dict:
    """The table's slices, and need queries split by traffic (`need/torso`, ...)."""
    out = {s: masks[s] for s in SLICES if s in masks}
    if "need" in masks:
        out.update({f"need/{t}": masks["need"] & masks[t] for t in TRAFFIC if t in masks})
    return out


def distill_signal(history, alpha_kl: float) -> dict | None:
    """What the KL term weighed during self-distillation, averaged over the logged steps that
    had KL positions (training rows carrying keywords): the student's and the teacher's CE on
    the same batches, the teacher's gain in nats, the KL, and alpha_kl * KL over the loss.
    None for a run without KL positions (not distilled). A resumed run logs again the steps
    after its last checkpoint: each step counts once, as last logged."""
    by_step = {int(r["step"]): r for r in history}
    rows = [r for _, r in sorted(by_step.items())
            if float(r.get("train/kl_positions", 0.0)) > 0]
    if not rows:
        return None

    def mean(key):
        return sum(float(r[key]) for r in rows) / len(rows)

    ce, teacher_ce, kl, loss = (mean("train/ce"), mean("train/teacher_ce"), mean("train/kl"),
                                mean("train/loss"))
    return {"logged_steps": len(rows), "first_step": int(rows[0]["step"]),
            "student_ce": ce, "teacher_ce": teacher_ce, "teacher_gain_nats": ce - teacher_ce,
            "kl": kl, "alpha_kl": float(alpha_kl), "kl_share_of_loss": alpha_kl * kl / loss}


def run_signal(workdir: str) -> dict | None:
    """distill_signal of a workdir's training log, None when it has none (an archived run)."""
    log = os.path.join(workdir, "metrics.jsonl")
    if not fileio.exists(log) or not fileio.exists(os.path.join(workdir, "train_config.json")):
        return None
    config = fileio.read_json(os.path.join(workdir, "train_config.json"))
    history = [json.loads(line) for line in fileio.read_text(log).splitlines() if line.strip()]
    return distill_signal(history, float(config.get("distill", {}).get("alpha_kl", 0.0)))


KL_SLICES = ("all", "need", "need/torso", "need/tail", "tail", "unseen")


def pool_kl(per_seed: list) -> dict:
    """teacher_kl.measure results of several seeds -> one per slice, weighted by positions."""
    out = {}
    for name in KL_SLICES:
        cells = [r[name] for r in per_seed if name in r]
        if not cells:
            continue
        n = sum(c["positions"] for c in cells)
        mean = {k: sum(c[k] * c["positions"] for c in cells) / n
                for k in ("kl", "student_ce", "teacher_ce", "teacher_gain", "kl_dropout",
                          "kl_student_dropout")}
        out[name] = {**mean, "positions": n, "rows": sum(c["rows"] for c in cells)}
    return out


def format_kl(pooled: dict) -> str:
    """One row per run and day: KL(teacher || student) per SID position by slice (dropout
    off), the teacher's CE gain overall and on need queries, then the KLs with dropout on:
    teacher vs student (what the distill step's KL sees) and the student vs itself."""
    head = ([f"KL {s}" for s in KL_SLICES] + ["teacher's gain, all", "teacher's gain, need",
                                               "KL T-S, dropout on", "KL S-S, dropout on"])
    lines = ["| run (day) | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for key, r in pooled.items():
        cells = [f"{r[s]['kl']:.4f} ({r[s]['rows']})" if s in r else "" for s in KL_SLICES]
        cells += [f"{r[s]['teacher_gain']:+.4f}" if s in r else "" for s in ("all", "need")]
        cells += [f"{r['all'][k]:.4f}" if "all" in r else ""
                  for k in ("kl_dropout", "kl_student_dropout")]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_signal(signals: dict) -> str:
    lines = ["| run | from step | student CE | teacher CE | teacher's gain (nats) | KL | alpha_KL "
             "| alpha_KL x KL / loss |", "|---" * 8 + "|"]
    for name, g in signals.items():
        lines.append(f"| {name} | {g['first_step']} | {g['student_ce']:.4f} | "
                     f"{g['teacher_ce']:.4f} | {g['teacher_gain_nats']:+.4f} | {g['kl']:.4f} | "
                     f"{g['alpha_kl']:g} | {g['kl_share_of_loss']:.2%} |")
    return "\n".join(lines)


def format_need_by_traffic(cells: dict, rows, counts: dict) -> str:
    """rel_hr@10 on need queries by the query's training-log traffic, one row per T - S
    comparison (events per cell in the header of each split)."""
    lines = ["Need queries by training-log traffic (rel_hr@10, T - S; events per seed):", "",
             "| comparison | " + " | ".join(TRAFFIC) + " |", "|---" * (len(TRAFFIC) + 1) + "|"]
    for key in rows:
        split = key[key.rindex("(") + 1:-1]
        if split not in counts:  # a cross-run comparison: no T - S split of its own
            continue
        n = counts[split]
        lines.append(f"| {key} | " + " | ".join(
            f"{lt.format_delta(cells[key].get(f'rel_hr@10/{s}'))} ({n[s]})" if n.get(s)
            else "(none)" for s in NEED_BY_TRAFFIC) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    quiet.quiet_libraries()
    f = flags.FLAGS
    if not f.runs or not f.out:
        raise ValueError("--runs (name=workdir,...) and --out are required")
    runs, splits, max_events, out = parse_runs(f.runs), f.splits, f.max_events, f.out
    rows, cells = [], {}
    loaded = {}  # (workdir, split, teacher) -> outcomes: SD (S) - Base (T) reuses the T - S ones

    def seeds(name, split, teacher):
        for w in runs[name]:
            if (w, split, teacher) not in loaded:
                loaded[w, split, teacher] = outcomes(w, split, teacher, max_events)
        return {i: loaded[w, split, teacher] for i, w in enumerate(runs[name])}

    counts = {}  # split -> need events per traffic slice (one seed's: the same events each)
    t_minus_s = runs if f.t_minus_s is None else [n for n in runs if n in set(f.t_minus_s)]
    for name in t_minus_s:
        for split in splits:
            key = f"{name} T - S ({split})"
            student = seeds(name, split, False)
            cells[key] = differences(student, seeds(name, split, True), key)
            counts[split] = {k: int(v.sum()) for k, v in slice_masks(student[0][2]).items()}
            rows.append(key)
    if "base" in runs and "test" in splits:
        for key, name in student_rows(runs).items():
            student = seeds(name, "test", False)
            cells[key] = differences(seeds("base", "test", True), student, key)
            counts.setdefault("test", {k: int(v.sum()) for k, v in
                                       slice_masks(student[0][2]).items()})
            rows.append(key)
    header = ["| comparison | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    body = [f"| {k} | " + " | ".join(lt.format_delta(cells[k].get(c)) for c in COLUMNS) + " |"
            for k in rows]
    seed_counts = sorted({len(ws) for ws in runs.values()})
    md = ("Teacher (query + keywords) minus student (query only), paired per event "
          f"({'/'.join(map(str, seed_counts))} seed(s) per run, pooled; "
          "mean [95% bootstrap interval]; "
          "* = excludes 0):\n\n" + "\n".join(header + body) + "\n")
    md += "\n" + format_need_by_traffic(cells, rows, counts) + "\n"
    signals = {f"{n} ({os.path.basename(os.path.normpath(w))})": g
               for n, ws in runs.items() for w in ws if (g := run_signal(w))}
    kl = {}
    if f.kl:
        from onesearch_jax.pipeline import teacher_kl
        for name in runs:
            per_seed = [teacher_kl.measure(w, splits, max_events) for w in runs[name]]
            for split in splits:
                kl[f"{name} ({split})"] = pool_kl([m[split] for m in per_seed])
        md += ("\nWhat the teacher has to teach, dropout off (per SID position on each day's "
               "clicked and ordered items, teacher-forced; rows with keywords in brackets):\n\n"
               + format_kl(kl) + "\n")
    if signals:
        md += ("\nWhat the KL term weighed while training (logged steps with KL positions; CE "
               "on the same training batches):\n\n" + format_signal(signals) + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(md)
    delta_plot.plot_delta_grid(plot_rows(cells, rows), PLOT_COLUMNS, out + ".png",
                               "Teacher (query + keywords) vs student (query only): paired "
                               "deltas, 95% bootstrap interval (filled: excludes 0)")
    fileio.write_json(out + ".json",
                      {"runs": runs, "splits": list(splits), "differences": cells,
                       "slice_events": counts, "distill_signal": signals, "teacher_kl": kl})
    print(md)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
