"""Evaluates a trained workdir on the world's test day and prints it beside the baselines.

    python -m experiments.evaluate --workdir=W [--beam_size=64] [--noconstrained]

Writes `hr@K`-style metrics for the three target kinds (`rel_`, `click_`, `order_`, with slices
such as `/tail`, `/negation`) and `valid_sid_rate` into W/metrics.json. With
`--noconstrained` the names get the prefix `free/` (the unconstrained-decoding ablation).
"""
from __future__ import annotations

import time

from absl import app, flags

from onesearch_jax import artifacts
from onesearch_jax import workdir as wd
from onesearch_jax.eval import generative_eval, world_eval
from onesearch_jax.search import ModelBundle

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_MAX_EVENTS = flags.DEFINE_integer("max_events", 20_000, "Test events scored (a seeded sample).")
_BEAM = flags.DEFINE_integer("beam_size", None, "Beam width (default: the train config's eval one).")
_CONSTRAINED = flags.DEFINE_boolean("constrained", True, "Constrain decoding to real items' SIDs.")

TABLE_COLUMNS = ("click_hr@10", "rel_hr@10", "rel_hr@10/tail", "rel_hr@10/negation",
                 "rel_precision@10/negation")


def results_table(metrics: dict, systems=(("BM25", "bm25/"), ("log memorisation", "memorization/"),
                                         ("OneSearch V1", ""))) -> str:
    """A fixed-width table of the systems found in metrics.json."""
    lines = [f"{'system':18s}" + "".join(f"{c:>27s}" for c in TABLE_COLUMNS)]
    for name, prefix in systems:
        if f"{prefix}rel_hr@10" in metrics:
            lines.append(f"{name:18s}" + "".join(
                f"{metrics.get(prefix + c) if metrics.get(prefix + c) is not None else float('nan'):27.4f}"
                for c in TABLE_COLUMNS))
    return "\n".join(lines)


def main(argv):
    del argv
    workdir = _WORKDIR.value
    bundle = ModelBundle.from_workdir(workdir)
    events = artifacts.load_events(workdir, "test", _MAX_EVENTS.value)
    targets = world_eval.WorldTargets(bundle.world, events,
                                      artifacts.load_train_clicks(workdir)["item"])
    retriever = bundle.retriever(beam_size=_BEAM.value, constrained=_CONSTRAINED.value)
    start = time.perf_counter()
    metrics = generative_eval.evaluate_events(retriever, bundle.builder, events, targets)
    metrics["eval_seconds"] = time.perf_counter() - start
    prefix = "" if _CONSTRAINED.value else "free/"
    wd.write_metrics(workdir, "evaluate", {prefix + k: v for k, v in metrics.items()},
                     {"beam_size": retriever.beam_size, "constrained": _CONSTRAINED.value,
                      "max_events": _MAX_EVENTS.value})
    print(results_table(wd.read_metrics(workdir)))
    print(f"valid_sid_rate {metrics['valid_sid_rate']:.4f} over {len(targets)} test events")


if __name__ == "__main__":
    app.run(main)
