"""Builds a world into a workdir: world files, tfds event logs, tokenizer, train-click table, the
keyword CoT of the training-log queries, the learned reward model, and the baselines (BM25, log
memorisation, legacy engine, relevance oracle) with the oracle's A/B headroom over legacy.

A rerun with the same config reuses what is there; a different config is refused.
"""
from __future__ import annotations

import os
import time

from absl import logging
import numpy as np

from onesearch_jax import artifacts, fileio
from onesearch_jax import workdir as workdir_lib
from onesearch_jax.data import event_dataset, keywords_io, text_tokenizer
from onesearch_jax.data.text_tokenizer import TASK_TOKENS
from onesearch_jax.eval import world_eval
from onesearch_jax.eval.bm25 import BM25Index
from onesearch_jax.eval.memorization import LogMemorizer
from onesearch_jax.progress import Progress
from onesearch_jax.workdir import (data_dir, query_keywords_path, reward_model_path, tokenizer_path,
                                   world_dir)
from onesearch_jax.world import keyword_llm, logs
from onesearch_jax.world.keyword_score import score_keywords
from onesearch_jax.world.reward_model import fit_reward_model
from onesearch_jax.world.click_model import examine_probs
from onesearch_jax.world.simulator import (legacy_search_fn, oracle_search_fn, simulate_traffic,
                                          true_page_probs)
from onesearch_jax.world.taxonomy import get_taxonomy
from onesearch_jax.world.world import World, build_world


class LogTally:
    """Counts while events stream past: click pairs for memorisation, irrelevant clicks, slices."""

    def __init__(self, world):
        self.world = world
        self.cand_items, _, _, self.cand_tiers = world.legacy_candidates()
        self.pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.clicks = {"all": 0, "negation": 0, "need": 0}
        self.irrelevant = {"all": 0, "negation": 0, "need": 0}
        self.rows = 0
        num_q = len(world.queries)
        self.query_events = {"train": np.zeros(num_q, np.int64), "test": np.zeros(num_q, np.int64)}

    def __call__(self, chunks, num_days: int):
        for chunk in chunks:
            self.rows += chunk["items"].size
            split = np.array([logs.split_of_day(int(d), num_days) for d in chunk["day"]])
            train = split == "train"
            for name in self.query_events:
                self.query_events[name] += np.bincount(chunk["query_id"][split == name],
                                                       minlength=len(self.query_events[name]))
            self._count(chunk, train)
            yield chunk

    def _count(self, chunk, train):
        q, items = chunk["query_id"], chunk["items"]
        weight = chunk["clicks"].astype(np.float32) + chunk["orders"].astype(np.float32)
        e, p = np.nonzero(weight[train] > 0)
        self.pairs.append((q[train][e], items[train][e, p], weight[train][e, p]))
        # Each exposed item came from its query's legacy candidates: look its tier up there.
        match = self.cand_items[q][:, None, :] == items[:, :, None]
        tiers = np.where(match.any(-1), (match * self.cand_tiers[q][:, None, :]).sum(-1), -1)
        clicked = chunk["clicks"] > 0
        qtype = self.world.queries.qtype[q]
        for name, rows in (("all", np.ones(len(q), bool)), ("negation", qtype == "negation"),
                           ("need", qtype == "need")):
            self.clicks[name] += int(clicked[rows].sum())
            self.irrelevant[name] += int((clicked[rows] & (tiers[rows] == 0)).sum())

    def rates(self) -> dict[str, float]:
        out = {"click_irrelevant_rate": self.irrelevant["all"] / max(self.clicks["all"], 1)}
        for name in ("negation", "need"):
            out[f"click_irrelevant_rate/{name}"] = self.irrelevant[name] / max(self.clicks[name], 1)
        return out


def build_world_workdir(config, workdir: str) -> World:
    """Builds world + logs + tokenizer once; a rerun with the same config reuses them."""
    fileio.require_local(workdir, "build_world")
    done_marker = os.path.join(world_dir(workdir), "BUILD_DONE")
    reused = workdir_lib.guard_config(workdir, "world", config,
                                      produced=os.path.exists(done_marker))
    if reused and os.path.exists(done_marker):
        logging.info("reusing the world in %s", workdir)
        return World.load(world_dir(workdir), config)
    start = time.perf_counter()
    world = build_world(config)
    world.save(world_dir(workdir))
    num_days = int(config.num_days)
    tally = LogTally(world)
    progress = Progress("events", num_days * int(config.events_per_day), unit="events")

    def chunks():
        for chunk in logs.iter_event_chunks(world):
            progress.update(len(chunk["event_id"]))
            yield chunk

    counts = event_dataset.build_event_dataset(
        tally(chunks(), num_days), lambda d: logs.split_of_day(d, num_days), data_dir(workdir),
        num_exposed=int(config.exposure_k), history_len=int(config.history_len),
        query_texts=world.queries.texts)
    logged_texts = [world.queries.texts[i] for i in np.flatnonzero(tally.query_events["train"])]
    tok = text_tokenizer.train_text_tokenizer(  # texts absent from the training logs stay unseen
        list(world.catalog.titles) + logged_texts,
        vocab_size=int(config.tokenizer_vocab_size), extra_special_tokens=TASK_TOKENS)
    text_tokenizer.save_text_tokenizer(tok, tokenizer_path(workdir))
    stats = world.stats()
    stats.update({f"num_events/{k}": v for k, v in counts.items()})
    stats.update(num_log_rows=tally.rows, build_seconds=time.perf_counter() - start, **tally.rates())
    np.savez(os.path.join(world_dir(workdir), "train_clicks.npz"),
             **dict(zip(("query_id", "item", "weight"), (np.concatenate(x) for x in zip(*tally.pairs)))))
    np.savez(os.path.join(world_dir(workdir), "query_event_counts.npz"), **tally.query_events)
    stats.update(write_query_keywords(world, workdir, tally.query_events,
                                      train_leaf_clicks(world, workdir)))
    workdir_lib.write_metrics(workdir, "world", stats, config)
    with open(done_marker, "w") as f:
        f.write("ok\n")
    return world


def train_leaf_clicks(world: World, workdir: str) -> np.ndarray:
    """Weighted train-log clicks per taxonomy leaf: the popularity the keyword LLM is biased by."""
    clicks = artifacts.load_train_clicks(workdir)
    return np.bincount(world.catalog.leaf[clicks["item"]], weights=clicks["weight"],
                       minlength=len(get_taxonomy().leaf_names))


def keywords_at_inference(world: World, workdir: str, texts) -> dict[str, dict]:
    """Keywords written for arbitrary query texts (e.g. the test day's) the way they would be
    online: the same LLM stand-in (or the same external JSONL) that wrote the training ones.
    Texts it does not cover are absent (their input stays query-only)."""
    kc = world.config.get("keywords", keyword_llm.default_keyword_config())
    wanted = set(texts)
    if kc.get("jsonl", ""):
        external = keywords_io.read_keywords_jsonl(kc.jsonl, truncate=True)
        return {text: f for (text, user), f in external.items() if user is None and text in wanted}
    writer = keyword_llm.KeywordWriter(world.config, world.catalog, world.users,
                                       train_leaf_clicks(world, workdir))
    return {text: kws for text in sorted(wanted) if (kws := writer.write(text)) is not None}


def write_query_keywords(world: World, workdir: str, query_events,
                         leaf_clicks=None) -> dict[str, float]:
    """Keyword CoT for the queries of the training logs only, from the LLM stand-in or a JSONL.

    Writes W/world/query_keywords.jsonl (keywords_io format) and returns the writer's precision
    against the ground truth, the leak count (must be 0) and the share of unseen test traffic."""
    kc = world.config.get("keywords", keyword_llm.default_keyword_config())
    logged = np.flatnonzero(query_events["train"] > 0)
    texts = [world.queries.texts[i] for i in logged]
    if kc.get("jsonl", ""):
        external = keywords_io.read_keywords_jsonl(kc.jsonl, truncate=True)
        wanted = set(texts)
        rows = {text: fields for (text, user), fields in external.items()
                if user is None and text in wanted}
    else:
        writer = keyword_llm.KeywordWriter(world.config, world.catalog, world.users, leaf_clicks)
        rows = {text: kws for text in texts if (kws := writer.write(text)) is not None}
    keywords_io.write_keywords_jsonl(query_keywords_path(workdir), {(t, None): f for t, f in rows.items()})
    out = score_keywords(world, rows, logged)
    out.update(keyword_leaks(world, workdir, query_events))
    unseen = (query_events["test"] > 0) & (query_events["train"] == 0)
    test_events = max(int(query_events["test"].sum()), 1)
    out["share/test_unseen_queries"] = float(query_events["test"][unseen].sum() / test_events)
    out["share/test_new_queries"] = float(query_events["test"][world.queries.is_new].sum() / test_events)
    return out


def keyword_leaks(world: World, workdir: str, query_events) -> dict[str, float]:
    """Reads back the keyword file training will read and counts rows it must not have: test-day
    queries absent from the training logs, and any query absent from the training logs."""
    written = set(artifacts.load_query_keywords(workdir))
    texts = np.asarray(world.queries.texts, object)
    unseen = (query_events["test"] > 0) & (query_events["train"] == 0)
    return {"leak/test_queries_with_training_keywords": float(len(written & set(texts[unseen]))),
            "leak/keyword_queries_not_in_training_logs": float(len(
                written - set(texts[query_events["train"] > 0])))}


def evaluate_baselines(world: World, workdir: str, max_events: int) -> dict[str, float]:
    """BM25, log memorisation, the legacy engine (the pages it showed) and the relevance oracle
    (tier, then popularity) on a seeded sample of test events: the room V1/V2 have to move in."""
    events = artifacts.load_events(workdir, "test", max_events)
    clicks = artifacts.load_train_clicks(workdir)
    targets = world_eval.WorldTargets(world, events, clicks["item"],
                                      artifacts.load_query_event_counts(workdir)["train"])
    texts = [world.queries.texts[q] for q in events["query_id"]]
    bm25, _ = BM25Index(world.catalog.titles).search(texts, 10)
    memo = LogMemorizer().fit(clicks["query_id"], clicks["item"], clicks["weight"],
                              world.catalog.popularity).search(events["query_id"], 10)
    oracle_pages = {int(q): world.oracle_ranking(int(q), 10) for q in np.unique(events["query_id"])}
    oracle = [oracle_pages[int(q)] for q in events["query_id"]]
    out = {"share/" + name: float(mask.mean()) for name, mask in targets.slices.items()}
    for name, ranked in (("bm25", bm25), ("memorization", memo), ("legacy", events["items"]),
                         ("oracle", oracle)):
        out.update({f"{name}/{k}": v for k, v in world_eval.score_rankings(targets, ranked).items()})
    return out


def build_reward_model(world: World, workdir: str, max_events: int = 200_000) -> dict[str, float]:
    """Fits the learned reward on (a seeded sample of at most max_events of) the train days,
    calibrates it on the valid day, saves it to W/world/reward_model.npz."""
    def true_probs(events):  # the ceiling the reward model is scored against
        p_click, p_order = true_page_probs(world, world.config, events["user_id"],
                                           events["query_id"], events["items"])
        examine = examine_probs(p_click.shape[1], float(world.config.examine_eta))
        return p_click, p_click / examine[None, :], p_order

    model, metrics = fit_reward_model(world, artifacts.load_events(workdir, "train", max_events),
                                      artifacts.load_events(workdir, "valid", max_events),
                                      true_probs=true_probs)
    model.save(reward_model_path(workdir))
    return metrics


def oracle_headroom(world: World, workdir: str, num_events: int, seed: int = 0) -> dict[str, float]:
    """The relevance oracle's simulated A/B lifts over the legacy engine: what RL can win."""
    out = simulate_traffic(oracle_search_fn(world), world, num_events=num_events, seed=seed,
                           baseline_fn=legacy_search_fn(world),
                           train_query_events=artifacts.load_query_event_counts(workdir)["train"])
    return {f"ab_oracle/{k}": v for k, v in out.items()}
