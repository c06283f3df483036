"""Scores a generative model on held-out world events: personalised input -> beams -> items."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from onesearch_jax.decode.retrieve import SidRetriever, items_from_beams
from onesearch_jax.eval import metrics as metrics_lib
from onesearch_jax.eval import world_eval

TOP_K = 10


def evaluate_events(retriever: SidRetriever, builder, events: Mapping[str, np.ndarray],
                    targets: world_eval.WorldTargets, keywords: bool = False) -> dict[str, float]:
    """World metrics (rel_/click_/order_ x slices) plus valid_sid_rate over the top-10 beams.

    `keywords`: the teacher input (the builder's keywords after the query, where it has any)."""
    enc = builder.personalized_inputs(events["query_id"], events["user_id"], events["history"],
                                      keywords=keywords)
    codes, _, valid = retriever.retrieve(enc)
    ranked = items_from_beams(retriever.trie, codes, valid, TOP_K)
    out = world_eval.score_rankings(targets, ranked)
    out["valid_sid_rate"] = metrics_lib.valid_sid_rate(valid[:, :TOP_K])
    return out
