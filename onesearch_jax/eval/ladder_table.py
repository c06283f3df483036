"""The pure half of the distillation ladder (experiments/ladder.py): intervals over seeds, the
aggregation of per-seed metrics into rows, paired comparisons of rungs on the same events, and
the markdown tables. No jax, no I/O.

A row is one rung evaluated one way: `"sd"` (the student, keywords predicted by the model) or
`"sd (T)"` (the same checkpoints with teacher keywords given at inference, the `teacher/` keys of
metrics.json). Each cell is `mean ± hw (n)`: the mean over finished seeds and the half-width of a
95% Student-t interval, `t_{0.975, n-1} * std(ddof=1) / sqrt(n)`; blank half-width with one seed,
blank cell where no seed has the metric.
"""
from __future__ import annotations

import collections
import math
import re
from typing import Any, Iterable, Mapping, Sequence


METRICS = ["order_hr@10", "order_mrr@10", "click_hr@10", "click_mrr@10", "rel_hr@10",
           "rel_hr@10/tail", "rel_hr@10/need", "rel_hr@10/negation", "rel_hr@10/unseen",
           "negation_violation@10", "reward@1", "reward@10", "latency_ms"]
# The simulated A/B lifts over the legacy engine (experiments/online_ab.py; the ladder's
# --ab_events): default click model, then the first perturbed one.
AB_METRICS = ["ab/ctr_lift", "ab/orders_lift", "ab/gmv_lift", "ab_perturbed1/ctr_lift",
              "ab_perturbed1/orders_lift", "ab_perturbed1/gmv_lift", "ab/ctr_headroom",
              "ab/orders_headroom", "ab/gmv_headroom"]
HEADROOM_LIFTS = ("ctr_lift", "orders_lift", "gmv_lift")
# ladder.png: the paired deltas of these (vs parent, vs V1), resolved ones filled.
PLOT_METRICS = ["rel_hr@10", "rel_hr@10/tail", "rel_hr@10/need", "rel_hr@10/negation",
                "rel_hr@10/unseen", "negation_violation@10"]
TEACHER_PREFIX = "teacher/"
TEACHER_SUFFIX = " (T)"

Z_975 = 1.96
# t_{0.975} of Student's t for df = 1..30 (scipy.stats.t.ppf(0.975, df)); beyond: the normal 1.96.
T_975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t_975(df: int) -> float:
    """The two-sided 95% Student-t quantile for `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    return T_975[df - 1] if df <= len(T_975) else Z_975


def _number(v: Any) -> float | None:
    """A finite float, or None for missing / null / non-finite / non-numeric values."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def interval(values: Iterable[Any]) -> tuple[float | None, float | None, int]:
    """(mean, 95% half-width, n) over the usable values; (None, None, 0) if there are none and
    half-width None with a single value."""
    xs = [x for x in (_number(v) for v in values) if x is not None]
    n = len(xs)
    if n == 0:
        return None, None, 0
    mean = sum(xs) / n
    if n == 1:
        return mean, None, 1
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, t_975(n - 1) * math.sqrt(var) / math.sqrt(n), n


def row_names(rungs: Sequence[str], teacher_rungs: Iterable[str] = ()) -> list[tuple[str, str, bool]]:
    """(row name, rung, teacher?) in table order: each rung, its "(T)" row right after it."""
    teacher = set(teacher_rungs)
    out = []
    for rung in rungs:
        out.append((rung, rung, False))
        if rung in teacher:
            out.append((rung + TEACHER_SUFFIX, rung, True))
    return out


def aggregate(runs: Mapping[str, Sequence[Mapping[str, Any]]], teacher_rungs: Iterable[str] = (),
              metrics: Sequence[str] = METRICS, rungs: Sequence[str] | None = None) -> list[dict]:
    """Rows from {rung: [metrics.json dict of each finished seed]} (rung order: `rungs`, else the
    mapping's). Each row: name, rung, teacher, seeds (count of dicts), and per metric its per-seed
    values (None where a seed lacks it) and stats {mean, hw, n}. Teacher rows read "teacher/<m>"."""
    order = list(rungs) if rungs is not None else list(runs)
    rows = []
    for name, rung, teacher in row_names(order, teacher_rungs):
        per_seed = list(runs.get(rung, ()))
        values, stats = {}, {}
        for m in metrics:
            key = TEACHER_PREFIX + m if teacher else m
            vals = [_number(d.get(key)) for d in per_seed]
            mean, hw, n = interval(vals)
            values[m] = vals
            stats[m] = {"mean": mean, "hw": hw, "n": n}
        rows.append({"name": name, "rung": rung, "teacher": teacher, "seeds": len(per_seed),
                     "values": values, "stats": stats})
    return rows


def format_cell(mean: float | None, hw: float | None, n: int, digits: int = 4) -> str:
    if mean is None or n == 0:
        return ""
    if hw is None:
        return f"{mean:.{digits}f} ({n})"
    return f"{mean:.{digits}f} ± {hw:.{digits}f} ({n})"


def format_header(preset: str, seeds: int, max_events: int, overrides: Sequence[str]) -> str:
    ov = ", ".join(overrides) if overrides else "none"
    return (f"V2 ladder: preset={preset}, seeds={seeds}, max_events={max_events}, "
            f"overrides: {ov}. Cells: mean ± 95% t-interval half-width (finished seeds).")


def format_table(rows: Sequence[Mapping], metrics: Sequence[str] = METRICS, digits: int = 4) -> str:
    """A markdown table: one line per row, one column per metric, `mean ± hw (n)` cells."""
    lines = ["| rung | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for row in rows:
        cells = []
        for m in metrics:
            s = row["stats"].get(m) or {}
            cells.append(format_cell(s.get("mean"), s.get("hw"), s.get("n", 0), digits))
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_markdown(rows: Sequence[Mapping], preset: str, seeds: int, max_events: int,
                    overrides: Sequence[str], metrics: Sequence[str] = METRICS) -> str:
    """The offline table; then, if any run has simulated A/B numbers, their table (lifts over
    the legacy engine; student rows only)."""
    out = (format_header(preset, seeds, max_events, overrides) + "\n\n"
           + format_table(rows, metrics) + "\n")
    ab_rows = [r for r in rows if not r["teacher"]
               and any((r["stats"].get(m) or {}).get("n") for m in AB_METRICS)]
    if ab_rows:
        out += ("\nSimulated online A/B, lift over the legacy engine (default click model; "
                "ab_perturbed1: a redrawn one):\n\n" + format_table(ab_rows, AB_METRICS) + "\n")
    return out


# Keys a training run writes into its own metrics.json (train, evaluate and the teacher/free
# evaluations). A run workdir starts from the base's metrics.json without them, so that a stale
# number of a trained base can never pass for the run's own. World keys such as
# "bm25/rel_hr@10" or "click_irrelevant_rate" stay.
_RUN_PREFIXES = ("train/", TEACHER_PREFIX, "free/", "ab/", "ab_perturbed")
_RUN_KEY = re.compile(r"^((rel|click|order)_(count|[a-z]+@\d+(_ci95)?)|negation_violation@\d+"
                      r"|valid_sid_rate|eval_seconds|latency_ms(_p95)?|reward@\d+)(/.*)?$")
_RUN_STAGES = ("train", "evaluate")


def baseline_metrics(base: Mapping[str, Any]) -> dict[str, Any]:
    """The base workdir's metrics.json without what a training run (re)writes itself."""
    out = {}
    for k, v in base.items():
        if k == "config" and isinstance(v, Mapping):
            out[k] = {s: c for s, c in v.items() if s not in _RUN_STAGES}
        elif k.startswith(_RUN_PREFIXES) or _RUN_KEY.match(k):
            continue
        else:
            out[k] = v
    return out


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(done: int, total: int, elapsed_s: float, finished_here: int,
                  spent_here_s: float) -> str:
    """`done/total runs, elapsed, ETA` (mean seconds per run finished this invocation x left)."""
    left = total - done
    if left == 0:
        eta = 0.0
    elif finished_here:
        eta = spent_here_s / finished_here * left
    else:
        eta = None
    return (f"ladder: {done}/{total} runs done | elapsed {format_duration(elapsed_s)} | "
            f"ETA {format_duration(eta)}")


def with_headroom(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The run's metrics plus each A/B lift as a share of the relevance oracle's lift over the
    same legacy engine (`ab/ctr_headroom` = ab/ctr_lift / ab_oracle/ctr_lift; the world's
    experiments.build_world measured the oracle): how much of the room a rung takes."""
    out = dict(metrics)
    for lift in HEADROOM_LIFTS:
        mine, oracle = _number(metrics.get(f"ab/{lift}")), _number(metrics.get(f"ab_oracle/{lift}"))
        if mine is not None and oracle:
            out[f"ab/{lift.replace('_lift', '_headroom')}"] = mine / oracle
    return out


# --- paired comparisons (the same test events, the same seeds) --------------------------------
PAIRED_METRICS = ["rel_hr@10", "click_hr@10", "order_hr@10", "click_mrr@10", "order_mrr@10",
                  "negation_violation@10", "reward@10"]
PAIRED_SLICES = ["tail", "need", "negation", "unseen"]
PAIRED_COLUMNS = ["rel_hr@10", "rel_hr@10/tail", "rel_hr@10/need", "rel_hr@10/negation",
                  "rel_hr@10/unseen", "click_hr@10", "order_hr@10", "negation_violation@10"]
# The online A/B's per-search lifts (experiments.online_ab: W/eval_events/ab.npz).
AB_PAIRED_METRICS = ["ab/ctr_lift", "ab/orders_lift", "ab/gmv_lift", "ab_perturbed1/ctr_lift",
                     "ab_perturbed1/orders_lift", "ab_perturbed1/gmv_lift"]
AB_PAIRED_SLICES = ["tail", "unseen"]
AB_PAIRED_COLUMNS = ["ab/ctr_lift", "ab/ctr_lift/tail", "ab/ctr_lift/unseen", "ab/orders_lift",
                     "ab/gmv_lift", "ab_perturbed1/ctr_lift", "ab_perturbed1/orders_lift"]


def has_delta(cell) -> bool:
    return bool(cell) and cell[0] is not None and math.isfinite(cell[0])


def resolved(cell) -> bool:
    """A paired delta [mean, lo, hi] whose 95% interval excludes 0."""
    return has_delta(cell) and (cell[1] > 0 or cell[2] < 0)


def format_delta(cell) -> str:
    """`+0.0123 [+0.0040, +0.0201]*`: mean and 95% interval, `*` where it excludes 0."""
    if not has_delta(cell):
        return ""
    mean, lo, hi = cell
    return f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]{'*' if resolved(cell) else ''}"


def compute_summary(phase_seconds: Mapping[str, Mapping[str, Mapping[str, float] | None]]
                    ) -> dict:
    """What the finished runs cost: runs, seconds per phase over all runs, mean seconds per run
    of each rung. `phase_seconds`: {rung: {seedN: LADDER_DONE's {phase: seconds, "total"}}}."""
    phases: dict[str, float] = collections.defaultdict(float)
    per_rung, runs = {}, 0
    for rung, seeds in phase_seconds.items():
        totals = [float(p["total"]) for p in seeds.values() if p and "total" in p]
        for p in seeds.values():
            for name, sec in (p or {}).items():
                if name != "total":
                    phases[name] += float(sec)
        if totals:
            per_rung[rung] = sum(totals) / len(totals)
            runs += len(totals)
    return {"runs": runs, "total_s": sum(phases.values()), "phases_s": dict(phases),
            "mean_run_s_by_rung": per_rung}


def format_compute(summary: Mapping[str, Any]) -> str:
    """One line: the ladder's CPU (or device) time in all, by phase and per run of each rung."""
    if not summary["runs"]:
        return ""
    phases = ", ".join(f"{k} {format_duration(v)}" for k, v in
                       sorted(summary["phases_s"].items(), key=lambda kv: -kv[1]) if v >= 0.5)
    rungs = ", ".join(f"{r} {format_duration(v)}" for r, v in
                      summary["mean_run_s_by_rung"].items())
    return (f"Compute: {summary['runs']} runs, {format_duration(summary['total_s'])} in all "
            f"({phases}); per run: {rungs}.")


def format_paired(summary: Mapping[str, Mapping], rungs: Sequence[str], key: str,
                  columns: Sequence[str] = PAIRED_COLUMNS) -> str:
    """A markdown table of one comparison (`paired_vs_parent` or `paired_vs_v1`)."""
    lines = ["| rung | vs | seeds | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 3) + "|"]
    for rung in rungs:
        entry = summary.get(rung) or {}
        cells = entry.get(key)
        if not cells:
            continue
        other = entry["parent"] if key == "paired_vs_parent" else "v1"
        n = entry.get(key.replace("paired", "seeds"), "")
        lines.append(f"| {rung} | {other} | {n} | "
                     + " | ".join(format_delta(cells.get(c)) for c in columns) + " |")
    return "\n".join(lines)
