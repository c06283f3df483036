"""Builds (or reuses) the simulated world, its tfds logs and tokenizer, and scores its baselines.

    python -m experiments.build_world --config=configs/world.py:small --workdir=W

Writes under W: `world/` (catalog, queries, users, config, tokenizer, `query_keywords.jsonl`
for the training-log queries, `reward_model.npz`), `data/world_events/` (tfds array_record,
splits train/valid/test), and `metrics.json`: the world's statistics, the keyword writer's
precision (`keywords/precision/<type>`), the leak check (`leak/test_queries_with_training_keywords`,
must be 0), `share/test_unseen_queries`, the reward model's `reward/ctr_auc_valid` and calibration
error, the baselines on the test split (`bm25/`, `memorization/`, `legacy/`, `oracle/` x
`rel_hr@10`, `click_hr@10`, `order_hr@10` with slices `/head`, `/tail`, `/need`, `/negation`,
`/unseen` and `_ci95` interval half-widths), and the oracle's A/B lifts over legacy
(`ab_oracle/ctr_lift`, ...). A workdir built with a different config is refused.
"""
from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from onesearch_jax import cli, quiet
from onesearch_jax import workdir as workdir_lib
from onesearch_jax.eval.world_eval import results_table
from onesearch_jax.pipeline.world_build import (build_reward_model, build_world_workdir, evaluate_baselines,
                                       oracle_headroom)

_CONFIG = config_flags.DEFINE_config_file("config", "configs/world.py:tiny", "World config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
_MAX_EVAL_EVENTS = flags.DEFINE_integer("max_eval_events", 20_000,
                                        "Test events scored by the baselines (a seeded sample).")
_AB_EVENTS = flags.DEFINE_integer("ab_events", 4000,
                                  "Simulated test-day searches for the oracle's A/B headroom.")

BASELINES = (("BM25", "bm25/"), ("log memorisation", "memorization/"), ("legacy engine", "legacy/"),
             ("relevance oracle", "oracle/"))
COLUMNS = ("rel_hr@10", "rel_hr@10/tail", "rel_hr@10/need", "rel_hr@10/negation",
           "rel_hr@10/unseen", "click_hr@10", "order_hr@10", "negation_violation@10")


def print_summary(metrics: dict) -> None:
    keys = ("num_items", "num_leaf_categories", "num_queries", "num_log_rows", "share/tail",
            "share/need", "share/negation", "share/unseen", "click_irrelevant_rate",
            "click_irrelevant_rate/negation", "keywords/precision", "keywords/coverage",
            "leak/test_queries_with_training_keywords", "share/test_unseen_queries",
            "reward/ctr_auc_valid", "reward/true_ctr_auc_valid", "reward/ctr_auc_valid_with_position",
            "reward/ctr_ece_valid", "reward/order_auc_valid", "reward/true_order_auc_valid")
    for k in keys:
        v = metrics.get(k, float("nan"))
        print(f"{k:42s} {v:,.0f}" if k.startswith("num_") else f"{k:42s} {v:.4g}")
    print(results_table(metrics, systems=BASELINES, columns=COLUMNS))
    print("relevance oracle vs legacy engine, simulated A/B on the test day (95% CI):")
    for lift in ("ctr_lift", "page_ctr_lift", "orders_lift", "gmv_lift"):
        key = "ab_oracle/" + lift
        print(f"  {lift:14s} {metrics[key]:+.2%} [{metrics[key.replace(lift, lift + '_ci_low')]:+.2%}, "
              f"{metrics[key.replace(lift, lift + '_ci_high')]:+.2%}]")


def main(argv):
    del argv
    quiet.quiet_libraries()
    config, workdir = _CONFIG.value, _WORKDIR.value
    world = build_world_workdir(config, workdir)
    metrics = evaluate_baselines(world, workdir, _MAX_EVAL_EVENTS.value)
    metrics.update(build_reward_model(world, workdir))
    metrics.update(oracle_headroom(world, workdir, _AB_EVENTS.value))
    workdir_lib.write_metrics(workdir, "world", metrics, config)
    print_summary(workdir_lib.read_metrics(workdir))


if __name__ == "__main__":
    cli.run(main)
