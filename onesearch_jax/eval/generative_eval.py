"""Scores a generative model on held-out world events: personalised input -> beams -> items."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.progress import Progress
from onesearch_jax.eval import metrics as metrics_lib
from onesearch_jax.eval import world_eval

TOP_K = 10


def evaluate_events(retriever: SidRetriever, builder, events: Mapping[str, np.ndarray],
                    targets: world_eval.WorldTargets, keywords: bool = False,
                    rewards=None, query_vectors=None, ranker=None,
                    per_event: dict | None = None) -> dict[str, float]:
    """World metrics (rel_/click_/order_ x slices) plus valid_sid_rate over the top-10 beams.

    `keywords`: the teacher input (the builder's keywords after the query, where it has any).
    `rewards(query_ids, user_ids, items[E, K]) -> {"item": [E, K], ...}` (train/rewards.py's
    LoggedRewards): adds `reward@1` and `reward@10`, the mean R_item of the top item and of the
    top 10 (an empty slot earns 0), what the RL stages optimise. `query_vectors` [E, D]: each
    event's query embedding, for a retriever with the ADC prior. `ranker(result, k)`: the
    events' item lists from the beams (ModelBundle.beam_ranker; default beam order).
    `per_event`: a dict filled with the per-event outcomes (world_eval.event_outcomes, and
    `reward@10` with rewards) for paired comparisons."""
    enc = builder.personalized_inputs(events["query_id"], events["user_id"], events["history"],
                                      keywords=keywords)
    searches = Progress("beam search", len(enc), unit="queries")
    result = retriever.search(enc, query_vectors, on_batch=searches.update)
    valid = result.valid
    ranked = (ranker or retriever.ranked_items)(result, TOP_K)
    out = world_eval.score_rankings(targets, ranked)
    if per_event is not None:
        per_event.update(world_eval.event_outcomes(targets, ranked))
    out["valid_sid_rate"] = metrics_lib.valid_sid_rate(valid[:, :TOP_K])
    if rewards is not None:
        top = np.full((len(ranked), TOP_K), -1, np.int64)
        for row, items in zip(top, ranked):
            row[:len(items)] = items[:TOP_K]
        item = rewards(events["query_id"], events["user_id"], top)["item"]
        out["reward@1"], out["reward@10"] = float(item[:, 0].mean()), float(item.mean())
        if per_event is not None:
            per_event["reward@10"] = item.mean(1).astype(np.float32)
    return out
