"""Scores ranked item lists for the world's held-out search events, for every system alike.

One row per test search event (so head queries weigh by their traffic, as online). Three target
kinds: `click_` (items the user clicked in that event), `order_` (items
ordered) and `rel_` (the query's tier-3 items: ground truth, immune to the legacy engine's bias;
`rel_ndcg@K` uses graded gains 2^tier - 1 over tiers 2 and 3). `negation_violation@K` is the share of
a negation query's top K that contains an excluded component or sits in an excluded category (what
a lexical engine gets wrong).
Slices: head / torso / tail,
query type (negation, need, ...), typo'd queries, cold (the event's clicked items were never
clicked in training) and unseen (the query text never occurs in the training logs).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from onesearch_jax.eval import metrics as metrics_lib
from onesearch_jax.world.relevance import excluded

KS = (10,)
INTERVAL_METRICS = ("hr@10",)  # metrics reported with a 95% interval half-width (`..._ci95`)
TABLE_COLUMNS = ("click_hr@10", "rel_hr@10", "rel_hr@10/tail", "rel_hr@10/negation",
                 "negation_violation@10")
SYSTEMS = (("BM25", "bm25/"), ("log memorisation", "memorization/"), ("OneSearch V1", ""),
           ("V1 unconstrained", "free/"), ("+ teacher keywords", "teacher/"))


class WorldTargets:
    """Target sets and slices of a batch of events, computed once and reused for every system."""

    def __init__(self, world, events: Mapping[str, np.ndarray],
                 train_clicked_items: np.ndarray | None = None,
                 train_query_events: np.ndarray | None = None):
        self.query_ids = np.asarray(events["query_id"])
        items, clicks, orders = events["items"], events["clicks"], events["orders"]
        self.click = [set(row[c > 0].tolist()) for row, c in zip(items, clicks)]
        self.order = [set(row[o > 0].tolist()) for row, o in zip(items, orders)]
        rel_sets, gain_maps = {}, {}
        for q in np.unique(self.query_ids):
            tiers = world.relevance(int(q))
            rel_sets[q] = set(np.flatnonzero(tiers == 3).tolist())
            graded = np.flatnonzero(tiers >= 2)
            gain_maps[q] = dict(zip(graded.tolist(), (2.0 ** tiers[graded] - 1).tolist()))
        self.rel = [rel_sets[q] for q in self.query_ids]
        # query id -> bool per item, excluded by the query (negation queries only); one array per
        # distinct exclusion, shared by the queries that state it.
        by_exclusion, self.violating = {}, {}
        for q in np.unique(self.query_ids):
            intent = world.queries.intents[int(q)]
            key = (intent.exclude, intent.exclude_group)
            if intent.exclude or intent.exclude_group >= 0:
                if key not in by_exclusion:
                    by_exclusion[key] = excluded(world.catalog, intent, np.arange(len(world.catalog)))
                self.violating[int(q)] = by_exclusion[key]
        self.rel_gains = [gain_maps[q] for q in self.query_ids]
        self.slices = self._slices(world, train_clicked_items, train_query_events)

    def _slices(self, world, train_clicked_items, train_query_events) -> dict[str, np.ndarray]:
        q = world.queries
        out = {s: q.slice[self.query_ids] == s for s in ("head", "torso", "tail")}
        for t in np.unique(q.qtype):
            out[str(t)] = q.qtype[self.query_ids] == t
        out["typo"] = np.asarray(q.is_typo)[self.query_ids]
        if train_clicked_items is not None:
            seen = np.zeros(len(world.catalog), bool)
            seen[np.asarray(train_clicked_items, dtype=np.int64)] = True
            out["cold"] = np.array([bool(c) and not any(seen[i] for i in c) for c in self.click])
        if train_query_events is not None:  # the query text never occurs in the training logs
            out["unseen"] = np.asarray(train_query_events)[self.query_ids] == 0
        return out

    def __len__(self):
        return len(self.query_ids)


def score_rankings(targets: WorldTargets, ranked: Sequence[Sequence[int]],
                   ks: Sequence[int] = KS) -> dict[str, float]:
    """Flat metrics for one system: rel_/click_/order_ x hr/mrr/ndcg/recall @K, with slices."""
    if len(ranked) != len(targets):
        raise ValueError(f"got {len(ranked)} ranked lists for {len(targets)} events")
    ranked = [[int(i) for i in r if int(i) >= 0] for r in ranked]
    out: dict[str, float] = {}
    for prefix, sets, gains in (("rel_", targets.rel, targets.rel_gains),
                                ("click_", targets.click, None),
                                ("order_", targets.order, None)):
        per_query = metrics_lib.per_query_metrics(ranked, sets, ks=ks)
        if gains is not None:
            graded = metrics_lib.per_query_metrics(ranked, sets, ks=ks, gains=gains)
            for k in ks:
                per_query[f"ndcg@{k}"] = graded[f"ndcg@{k}"]
        out.update(metrics_lib.aggregate(per_query, targets.slices, prefix=prefix,
                                         intervals=INTERVAL_METRICS))
    out.update(negation_violations(targets, ranked, ks))
    return out


EVENT_METRICS = ("rel_hr@10", "rel_mrr@10", "click_hr@10", "click_mrr@10", "order_hr@10",
                 "order_mrr@10", "negation_violation@10")


def event_outcomes(targets: WorldTargets, ranked: Sequence[Sequence[int]], k: int = 10
                   ) -> dict[str, np.ndarray]:
    """Per event (float32 [E], NaN where the event does not count): hr@k and mrr@k of each
    target kind and negation_violation@k, the arrays `score_rankings` averages; what paired
    comparisons of two systems on the same events read (eval/paired.py)."""
    if len(ranked) != len(targets):
        raise ValueError(f"got {len(ranked)} ranked lists for {len(targets)} events")
    ranked = [[int(i) for i in r if int(i) >= 0] for r in ranked]
    out = {}
    for prefix, sets in (("rel_", targets.rel), ("click_", targets.click),
                         ("order_", targets.order)):
        per_query = metrics_lib.per_query_metrics(ranked, sets, ks=(k,))
        for m in ("hr", "mrr"):
            out[f"{prefix}{m}@{k}"] = per_query[f"{m}@{k}"].astype(np.float32)
    violation = np.full(len(ranked), np.nan, np.float32)
    for r, q in enumerate(targets.query_ids):
        excluded_items = targets.violating.get(int(q))
        if excluded_items is not None and ranked[r]:
            violation[r] = float(np.mean(excluded_items[ranked[r][:k]]))
    out[f"negation_violation@{k}"] = violation
    return out


def negation_violations(targets: WorldTargets, ranked: Sequence[Sequence[int]],
                        ks: Sequence[int] = KS) -> dict[str, float]:
    """Mean share of the top K that a negation query excludes (component or category)."""
    rows = [r for r, q in enumerate(targets.query_ids) if int(q) in targets.violating]
    out = {}
    for k in ks:
        shares = [float(np.mean(targets.violating[int(targets.query_ids[r])][ranked[r][:k]]))
                  for r in rows if len(ranked[r])]
        out[f"negation_violation@{k}"] = float(np.mean(shares)) if shares else float("nan")
    return out


def model_label(train_config: Mapping | None) -> str:
    """The table's name for a workdir's model, from its train_config.json: "OneSearch V1" for V1
    (the SFT stage's `v1` rung, or a config without rungs), else its stage and rung as the
    config names them ("OneSearch distill:sd", "OneSearch grpo:tpma")."""
    stage = (train_config or {}).get("stage", "sft")
    rung = (train_config or {}).get("rung") or "v1"
    return "OneSearch V1" if (stage, rung) == ("sft", "v1") else f"OneSearch {stage}:{rung}"


def workdir_systems(train_config: Mapping | None) -> tuple:
    """`SYSTEMS` with the workdir's own model named by `model_label`."""
    label = model_label(train_config)
    return tuple((label if prefix == "" else name, prefix) for name, prefix in SYSTEMS)


def results_table(metrics: Mapping[str, float], systems=SYSTEMS, columns=TABLE_COLUMNS) -> str:
    """A fixed-width table of the systems present in a metrics.json (missing cells print nan)."""
    def cell(v):
        return f"{float('nan') if v is None else v:>24.4f}"
    width = max([18] + [len(name) + 2 for name, _ in systems])
    lines = [f"{'system':{width}s}" + "".join(f"{c:>24s}" for c in columns)]
    counts = {}
    for name, prefix in systems:
        if f"{prefix}rel_hr@10" in metrics:
            lines.append(f"{name:{width}s}" + "".join(cell(metrics.get(prefix + c))
                                                      for c in columns))
            counts[name] = metrics.get(prefix + "click_count")
    if len({c for c in counts.values() if c is not None}) > 1:  # e.g. a quick --max_events run
        lines.append("rows on different samples, click events: " + ", ".join(
            f"{name} {c:.0f}" for name, c in counts.items() if c is not None))
    return "\n".join(lines)
