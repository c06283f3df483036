"""Evaluates a trained workdir on the world's test day; formats the results table."""
from __future__ import annotations

import time

from onesearch_jax import artifacts
from onesearch_jax import workdir as wd
from onesearch_jax.eval import generative_eval, world_eval
from onesearch_jax.search import ModelBundle

def evaluate_workdir(workdir: str, *, max_events: int, beam_size: int | None = None,
                     constrained: bool = True) -> dict[str, float]:
    """Scores the model on a seeded sample of test events and merges it into metrics.json.

    Unconstrained decoding is recorded under the prefix `free/` (the ablation)."""
    bundle = ModelBundle.from_workdir(workdir)
    events = artifacts.load_events(workdir, "test", max_events)
    targets = world_eval.WorldTargets(bundle.world, events,
                                      artifacts.load_train_clicks(workdir)["item"],
                                      artifacts.load_query_event_counts(workdir)["train"])
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
