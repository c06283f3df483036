"""Paired comparisons of two systems scored on the same events (and the same seeds): per-event
differences, a bootstrap over events, 95% intervals, and the smallest effect a design resolves.

Why paired: two rungs of the ladder are scored on the same test events, so most of the
event-to-event variance (easy and hard queries) cancels in the per-event difference; the interval
of a mean difference is then far narrower than the two systems' own intervals suggest.

Arrays are per event, NaN where the event does not count for the metric (an event without
clicks for click_hr@10, a non-negation query for negation_violation@10). With seeds, arrays are
[S, E]: seed s of one system is paired with seed s of the other, and the bootstrap resamples
events (the same events for every seed), so the interval covers the event sample; the spread of
the per-seed mean differences is reported beside it. Pure numpy.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from onesearch_jax.eval.ladder_table import PAIRED_METRICS, PAIRED_SLICES, t_975

Z_975 = 1.959964
Z_80 = 0.841621  # the one-sided quantile for 80% power


def paired_differences(a, b) -> np.ndarray:
    """b - a per event ([E] or [S, E]); NaN where either is NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays must have one shape (same seeds and events), got "
                         f"{a.shape} and {b.shape}")
    return b - a


def _as_seeds(diff) -> np.ndarray:
    diff = np.asarray(diff, np.float64)
    if diff.ndim == 1:
        diff = diff[None]
    if diff.ndim != 2:
        raise ValueError(f"differences must be [E] or [S, E], got shape {diff.shape}")
    return diff


def paired_bootstrap(diff, num_boot: int = 2000, seed: int = 0, mask=None
                     ) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean per-event difference over seeds and events, and its 95%
    percentile interval from resampling events (jointly over seeds). `mask` [E]: the events that
    count (a slice). NaN triple when no event counts."""
    d = _as_seeds(diff)
    keep = np.ones(d.shape[1], bool) if mask is None else np.asarray(mask, bool)
    if keep.shape != (d.shape[1],):
        raise ValueError(f"mask has shape {keep.shape}, expected ({d.shape[1]},)")
    d = d[:, keep]
    valid = ~np.isnan(d)
    per_event = np.where(valid, d, 0.0).sum(0)
    counts = valid.sum(0)
    scored = counts > 0
    per_event, counts = per_event[scored], counts[scored]
    if per_event.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(per_event.sum() / counts.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, per_event.size, (int(num_boot), per_event.size))
    boots = per_event[idx].sum(1) / counts[idx].sum(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return mean, float(lo), float(hi)


def seed_spread(diff, mask=None) -> tuple[float, float, int]:
    """(mean, 95% t half-width, seeds) of the per-seed mean differences: how much retraining
    moves the comparison (half-width NaN with one seed)."""
    d = _as_seeds(diff)
    if mask is not None:
        d = d[:, np.asarray(mask, bool)]
    means = np.array([np.nanmean(row) if np.any(~np.isnan(row)) else np.nan for row in d])
    means = means[~np.isnan(means)]
    n = means.size
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(means[0]), float("nan"), 1
    return float(means.mean()), float(t_975(n - 1) * means.std(ddof=1) / math.sqrt(n)), n


def resolved(lo: float, hi: float) -> bool:
    """Whether an interval excludes 0 (the sign of the difference is resolved)."""
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))


def minimal_detectable_effect(diff_std: float, num_events: int, num_seeds: int = 1) -> float:
    """The smallest true mean difference a paired design detects at 5% (two-sided) with 80%
    power: (z_0.975 + z_0.8) * sd / sqrt(events * seeds), sd the per-event difference's standard
    deviation. Seeds count as independent draws: optimistic when every seed is scored on the
    same events (their differences correlate); seeds=1 is the conservative bound, what the event
    sample alone resolves."""
    if num_events < 1 or num_seeds < 1:
        raise ValueError(f"need events and seeds >= 1, got {num_events}, {num_seeds}")
    return (Z_975 + Z_80) * float(diff_std) / math.sqrt(num_events * num_seeds)


def events_for_effect(diff_std: float, effect: float, num_seeds: int = 1) -> int:
    """Events per seed for `minimal_detectable_effect` to reach `effect`."""
    if effect <= 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    return int(math.ceil(((Z_975 + Z_80) * float(diff_std) / effect) ** 2 / num_seeds))


def compare(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
            slices: Mapping[str, np.ndarray], metrics, num_boot: int = 2000, seed: int = 0
            ) -> dict[str, list[float]]:
    """{metric or metric/slice: [mean, lo, hi]} of b - a, for every metric both have, overall and
    on each slice (the slices' masks over events)."""
    out = {}
    for m in metrics:
        if m not in a or m not in b:
            continue
        d = paired_differences(a[m], b[m])
        out[m] = list(paired_bootstrap(d, num_boot, seed))
        for name, mask in slices.items():
            out[f"{m}/{name}"] = list(paired_bootstrap(d, num_boot, seed, mask))
    return out


def pair_runs(a: Mapping[int, tuple], b: Mapping[int, tuple]):
    """Stacks two rungs' per-event outcomes over the seeds both finished on the same events:
    ({metric: [S, E]} of a, of b, {slice: [E]}, seeds), or None if no seed pairs."""
    seeds = [s for s in sorted(set(a) & set(b))
             if len(a[s][0]) == len(b[s][0]) and (a[s][0] == b[s][0]).all()]
    if not seeds:
        return None
    metrics = sorted(set.intersection(*(set(a[s][1]) & set(b[s][1]) for s in seeds)))
    stack = lambda runs: {m: np.stack([runs[s][1][m] for s in seeds]) for m in metrics}  # noqa: E731
    return stack(a), stack(b), dict(a[seeds[0]][2]), seeds


def paired_summary(events: Mapping[str, Mapping[int, tuple]], parents: Mapping[str, str | None],
                   reference: str = "v1", metrics: Sequence[str] = PAIRED_METRICS,
                   slices: Sequence[str] = PAIRED_SLICES, num_boot: int = 2000) -> dict:
    """{rung: {"parent", "paired_vs_parent": {metric[/slice]: [mean, lo, hi]}, "paired_vs_v1",
    "paired_seeds": {...}}}: each rung minus its parent and minus `reference`, per event, paired
    over the seeds both finished, with a 95% bootstrap over events (eval/paired.py).
    `events`: {rung: {seed: (event ids, {metric: [E]}, {slice: [E]})}}."""
    out = {}
    for rung, runs in events.items():
        entry = {"parent": parents.get(rung)}
        for key, other in (("paired_vs_parent", parents.get(rung)), ("paired_vs_v1", reference)):
            if other is None or other == rung or other not in events:
                continue
            pair = pair_runs(events[other], runs)
            if pair is None:
                continue
            base, new, masks, seeds = pair
            use = {s: masks[s] for s in slices if s in masks}
            entry[key] = compare(base, new, use, [m for m in metrics if m in base],
                                        num_boot=num_boot)
            entry[key.replace("paired", "seeds")] = len(seeds)
        out[rung] = entry
    return out


def design_rows(a, b, slices, seeds: int, effect: float, slice_effect: float) -> list[dict]:
    """Per metric and slice: events, the per-event difference's mean and std, the minimal
    detectable effect with these events x `seeds`, the target and the events per seed it needs."""
    rows = []
    for m in PAIRED_METRICS:
        if m not in a or m not in b:
            continue
        d = paired_differences(a[m], b[m])
        for name, mask in [("", None)] + [("/" + s, slices[s]) for s in PAIRED_SLICES
                                         if s in slices]:
            x = d if mask is None else d[np.asarray(mask, bool)]
            x = x[~np.isnan(x)]
            if x.size < 2:
                continue
            sd = float(x.std(ddof=1))
            target = effect if mask is None else slice_effect
            rows.append({"metric": m + name, "events": int(x.size), "mean_diff": float(x.mean()),
                         "sd_diff": sd,
                         "mde": minimal_detectable_effect(sd, x.size, seeds),
                         "mde_events_only": minimal_detectable_effect(sd, x.size, 1),
                         "target": target,
                         "events_needed": events_for_effect(sd, target, seeds)
                         if sd > 0 else 0})
    return rows
