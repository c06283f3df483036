"""Evaluates a trained workdir on the world's test day; formats the results table."""
from __future__ import annotations

import time

from onesearch_jax import artifacts
from onesearch_jax import workdir as wd
from onesearch_jax.eval import generative_eval, world_eval
from onesearch_jax.search import ModelBundle

TABLE_COLUMNS = ("click_hr@10", "rel_hr@10", "rel_hr@10/tail", "rel_hr@10/negation",
                 "rel_precision@10/negation")
SYSTEMS = (("BM25", "bm25/"), ("log memorisation", "memorization/"), ("OneSearch V1", ""),
           ("V1 unconstrained", "free/"))


def evaluate_workdir(workdir: str, *, max_events: int, beam_size: int | None = None,
                     constrained: bool = True) -> dict[str, float]:
    """Scores the model on a seeded sample of test events and merges it into metrics.json.

    Unconstrained decoding is recorded under the prefix `free/` (the ablation)."""
    bundle = ModelBundle.from_workdir(workdir)
    events = artifacts.load_events(workdir, "test", max_events)
    targets = world_eval.WorldTargets(bundle.world, events,
                                      artifacts.load_train_clicks(workdir)["item"])
    retriever = bundle.retriever(beam_size=beam_size, constrained=constrained)
    start = time.perf_counter()
    metrics = generative_eval.evaluate_events(retriever, bundle.builder, events, targets)
    metrics["eval_seconds"] = time.perf_counter() - start
    prefix = "" if constrained else "free/"
    metrics = {prefix + k: v for k, v in metrics.items()}
    wd.write_metrics(workdir, "evaluate", metrics, {"beam_size": retriever.beam_size,
                                                    "constrained": constrained,
                                                    "max_events": max_events})
    return metrics


def results_table(metrics: dict, systems=SYSTEMS) -> str:
    """A fixed-width table of the systems present in metrics.json."""
    def cell(v):
        return f"{float('nan') if v is None else v:27.4f}"
    lines = [f"{'system':18s}" + "".join(f"{c:>27s}" for c in TABLE_COLUMNS)]
    for name, prefix in systems:
        if f"{prefix}rel_hr@10" in metrics:
            lines.append(f"{name:18s}" + "".join(cell(metrics.get(prefix + c)) for c in TABLE_COLUMNS))
    return "\n".join(lines)
