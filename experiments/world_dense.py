"""The SID space's own geometry with no training: exact cosine between the SID build's MiniLM
query and item embeddings, scored on the world's test day like every other system.

    python -m experiments.world_dense --workdir=W --max_events=8000

W holds a built world and SIDs (build_world, build_sids with a MiniLM preset). Writes `dense/...`
(rel_/click_/order_ metrics with slices, negation_violation@10) into W/metrics.json and prints
the results row. This is the "MiniLM cosine" a generative model has to beat on tail, need and
unseen queries.
"""
from __future__ import annotations

import json
import os

from absl import app, flags

from onesearch_jax import artifacts, cli, quiet
from onesearch_jax import workdir as wd
from onesearch_jax.eval import world_eval
from onesearch_jax.eval.dense import DenseIndex
from onesearch_jax.pipeline.sid_build import embed_world

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir with a built world and SIDs.",
                               required=True)
TOP_K = 10
_MAX_EVENTS = flags.DEFINE_integer("max_events", 8000, "Test-day events scored.", lower_bound=1)


def main(argv):
    del argv
    quiet.quiet_libraries()
    path = os.path.join(_WORKDIR.value, "sids_config.json")
    if not os.path.exists(path):
        raise app.UsageError(f"{path} is missing: run experiments.build_sids on this workdir")
    with open(path) as f:
        sids = json.load(f)
    world = artifacts.load_world(_WORKDIR.value)
    items, queries = embed_world(world, sids["embedder"], sids["keyword_enhance"],
                                 sids.get("embedding_cache") or wd.sid_dir(_WORKDIR.value))
    events = artifacts.load_events(_WORKDIR.value, "test", _MAX_EVENTS.value)
    targets = world_eval.WorldTargets(world, events,
                                      artifacts.load_train_clicks(_WORKDIR.value)["item"],
                                      artifacts.load_query_event_counts(_WORKDIR.value)["train"])
    top, _ = DenseIndex(items).search(queries[events["query_id"]], TOP_K)
    metrics = {f"dense/{k}": v for k, v in world_eval.score_rankings(targets, top).items()}
    wd.write_metrics(_WORKDIR.value, "world_dense", metrics,
                     {"max_events": _MAX_EVENTS.value, "embedder": sids["embedder"]})
    name = "MiniLM cosine" if "minilm" in sids["embedder"] else f"{sids['embedder']} cosine"
    print(world_eval.results_table(metrics, systems=((name, "dense/"),)))


if __name__ == "__main__":
    cli.run(main)
