"""Builds (or reuses) the simulated world, its tfds logs and tokenizer, and scores two baselines.

    python -m experiments.build_world --config=configs/world.py:small --workdir=W

Writes under W: `world/` (catalog, queries, users, config), `data/world_events/` (tfds
array_record, splits train/valid/test), `world/tokenizer.json`, and `metrics.json` with the world's
statistics and the BM25 / log-memorisation baselines on the test split (`<baseline>/rel_hr@10`,
`.../tail`, `.../negation`, `<baseline>/click_hr@10`, ...). A workdir built with a different
config is refused.
"""
from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from onesearch_jax import workdir as workdir_lib
from onesearch_jax.data.world_build import build_world_workdir, evaluate_baselines
from onesearch_jax.eval.world_eval import results_table

_CONFIG = config_flags.DEFINE_config_file("config", "configs/world.py:tiny", "World config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
_MAX_EVAL_EVENTS = flags.DEFINE_integer("max_eval_events", 20_000,
                                        "Test events scored by the baselines (a seeded sample).")


def print_summary(metrics: dict) -> None:
    keys = ("num_items", "num_leaf_categories", "num_queries", "num_log_rows", "share/tail",
            "share/negation", "click_irrelevant_rate", "click_irrelevant_rate/negation")
    for k in keys:
        print(f"{k:34s} {metrics[k]:.4g}")
    print(results_table(metrics))


def main(argv):
    del argv
    config, workdir = _CONFIG.value, _WORKDIR.value
    world = build_world_workdir(config, workdir)
    baselines = evaluate_baselines(world, workdir, _MAX_EVAL_EVENTS.value)
    workdir_lib.write_metrics(workdir, "world", baselines, config)
    print_summary(workdir_lib.read_metrics(workdir))


if __name__ == "__main__":
    app.run(main)
