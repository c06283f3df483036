"""Evaluates a trained workdir on the world's test day; formats the results table."""
from __future__ import annotations

import time

import numpy as np

from onesearch_jax import artifacts, fileio
from onesearch_jax import workdir as wd
from onesearch_jax.eval import generative_eval, world_eval
from onesearch_jax.data.sft_tasks import TaskBuilder
from onesearch_jax.serving import ModelBundle, Searcher
from onesearch_jax.serving.bundle import load_train_config
from onesearch_jax.train import distill
from onesearch_jax.train.rewards import LoggedRewards
from onesearch_jax.pipeline.real_eval import median_latency_ms
from onesearch_jax.pipeline.world_build import keywords_at_inference

KEYWORD_MODES = ("none", "teacher")


SPLITS = ("test", "valid", "train")


def metrics_prefix(split: str, constrained: bool, keywords: str) -> str:
    """Where one evaluation's metrics go in metrics.json: `` (the test day, constrained, no
    keywords), `valid/`, `free/`, `teacher/`, ... combined."""
    return (("" if split == "test" else split + "/") + ("" if constrained else "free/")
            + ("teacher/" if keywords == "teacher" else ""))


def event_tag(prefix: str, split: str) -> str:
    """The per-event file of one evaluation: `test`, `free_test`, `teacher_test`, ..."""
    parts = [p for p in prefix.split("/") if p and p != split]
    return "_".join(parts + [split])


def day_inputs(workdir: str, bundle: ModelBundle, split: str, max_events: int):
    """(world, a seeded sample of the day's events, their targets and slices, a TaskBuilder
    writing the personalised inputs (query + user profile + history) as training wrote them)."""
    world = artifacts.load_world(workdir)
    events = artifacts.load_events(workdir, split, max_events)
    targets = world_eval.WorldTargets(world, events,
                                      artifacts.load_train_clicks(workdir)["item"],
                                      artifacts.load_query_event_counts(workdir)["train"])
    _, _, query_codes = artifacts.load_sids(workdir)
    builder = TaskBuilder(world, bundle.tokenizer, bundle.vocab, bundle.item_codes, query_codes,
                          enc_len=int(bundle.config.data.enc_len),
                          dec_len=int(bundle.config.data.dec_len))
    return world, events, targets, builder


KEYWORD_INPUT_TASKS = ("query_kw_to_item", "personalized_kw")  # data/sft_tasks.py's RAG copies


def reads_keyword_inputs(config, depth: int = 0) -> bool:
    """Whether the run behind a train config was trained on inputs carrying keywords, so that
    `keywords="teacher"` gives it what it learned to read: a keyword-input task in its mixture,
    or a distillation teacher that reads query + keywords and is itself trained (teacher CE;
    the KL alone reaches the student's input only, the teacher's side is stop-gradient). An RL
    or DPO run carries its start's data section and also answers for its start's training
    where that workdir is still readable."""
    if config.get("init_workdir") and depth < 8:
        try:
            if reads_keyword_inputs(load_train_config(config.init_workdir), depth + 1):
                return True
        except (OSError, ValueError):
            pass  # gone or unreadable: the run's own config answers
    if config.get("stage") == "distill":
        d = distill.distill_settings(config)  # the stage's defaults under the run's own keys
        if (d["teacher_input"] == "keywords" and d["teacher"] == "shared"
                and d["alignment"] == "targets" and float(d["teacher_ce_weight"]) > 0):
            return True
    stages = config.get("data", {}).get("stages", ())
    return any(stage["mixture"].get(task, 0) > 0 for stage in stages
               for task in KEYWORD_INPUT_TASKS)


def inference_keywords(world, workdir: str, events) -> dict:
    """Keywords written at inference for the events' queries (the "(T)" evaluations)."""
    texts = [world.queries.texts[int(q)] for q in np.unique(events["query_id"])]
    return keywords_at_inference(world, workdir, texts)


def evaluate_workdir(workdir: str, *, max_events: int, beam_size: int | None = None,
                     constrained: bool = True, keywords: str = "none",
                     mesh_shape=None, prior_weight: float | None = None,
                     prior_by_traffic=None, rerank_by_traffic=None,
                     split: str = "test", latency_queries: int = 0) -> dict[str, float]:
    """Scores the model on a seeded sample of test events and merges it into metrics.json.

    Unconstrained decoding is recorded under the prefix `free/` (the ablation). With
    keywords="teacher" the input carries keywords written for the test queries at inference
    (the "(T)" rows: Base (T), SD (T)), recorded under the prefix `teacher/`. `mesh_shape`:
    serve sharded on a mesh of this host's devices (search.serving_mesh). `prior_weight` /
    `prior_by_traffic` override the train config's `eval.prior_weight` / `eval.prior_by_traffic`
    (the query embedding's ADC scores added to each level's logits; ModelBundle.set_prior),
    `rerank_by_traffic` its `eval.rerank_by_traffic` (ModelBundle.beam_ranker);
    split="valid" scores the valid day instead (prefix `valid/`: tuning
    serving options without touching the test day), split="train" a sample of the training
    days' events (prefix `train/`: what the model was fitted on, e.g. where the teacher beats
    the student on training queries). `latency_queries` > 0 times that many of the sampled
    queries served alone through `Searcher` (`latency_ms`, `latency_ms_p95`: batch-1 serving,
    what direct CoT's keyword decoding costs)."""
    if keywords not in KEYWORD_MODES:
        raise ValueError(f"keywords={keywords!r}; valid: {KEYWORD_MODES}")
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; valid: {SPLITS}")
    bundle = ModelBundle.from_workdir(workdir, mesh_shape=mesh_shape)
    bundle.set_prior(prior_weight, prior_by_traffic, rerank_by_traffic)
    world, events, targets, builder = day_inputs(workdir, bundle, split, max_events)
    retriever = bundle.retriever(beam_size=beam_size, constrained=constrained)
    if keywords == "teacher":
        builder = builder.with_keywords(inference_keywords(world, workdir, events))
    start = time.perf_counter()
    rewards = None  # reward@1/@10 need the learned reward experiments.build_world fits
    if fileio.exists(wd.reward_model_path(workdir)):
        rewards = LoggedRewards(world, artifacts.load_reward_model(workdir),
                                artifacts.load_events(workdir, "train"))
    texts = [world.queries.texts[int(q)] for q in events["query_id"]]
    vectors = (bundle.query_vectors(texts)
               if retriever.uses_tables or bundle.rerank_by_traffic() else None)
    per_event = {}
    metrics = generative_eval.evaluate_events(
        retriever, builder, events, targets, keywords=keywords == "teacher", rewards=rewards,
        per_event=per_event,
        # the ADC prior scores SIDs with the queries' own embeddings
        query_vectors=bundle.prior_vectors(texts, vectors) if retriever.uses_tables else None,
        ranker=bundle.beam_ranker(retriever, texts, vectors))
    metrics["eval_seconds"] = time.perf_counter() - start
    if latency_queries > 0:
        searcher = Searcher(bundle, beam_size=beam_size)
        metrics.update(median_latency_ms(lambda q: searcher.search([q], 10),
                                         list(dict.fromkeys(texts))[:latency_queries]))
    if keywords == "teacher":
        metrics["keyword_event_share"] = float(builder.has_keywords(events["query_id"]).mean())
    prefix = metrics_prefix(split, constrained, keywords)
    metrics = {prefix + k: v for k, v in metrics.items()}
    # Per-event outcomes for paired comparisons (the ladder's): W/eval_events/<tag>.npz.
    wd.save_eval_events(workdir, event_tag(prefix, split), events["event_id"], per_event,
                        targets.slices)
    wd.write_metrics(workdir, "evaluate", metrics, {"beam_size": retriever.beam_size,
                                                    "constrained": constrained,
                                                    "keywords": keywords,
                                                    "max_events": max_events, "split": split,
                                                    "prior_weight": retriever.prior_weight,
                                                    "prior_by_traffic": list(
                                                        bundle.prior_by_traffic()),
                                                    "rerank_by_traffic": list(
                                                        bundle.rerank_by_traffic())})
    return metrics
