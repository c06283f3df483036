"""Builds a world into a workdir: world files, tfds event logs, tokenizer, train-click table,
and scores the two baselines (BM25 over titles, log memorisation) on the test split.

A rerun with the same config reuses what is there; a different config is refused.
"""
from __future__ import annotations

import os
import time

from absl import logging
import numpy as np

from onesearch_jax import artifacts
from onesearch_jax import workdir as workdir_lib
from onesearch_jax.data import event_dataset, logs, text_tokenizer
from onesearch_jax.data.world import World, build_world
from onesearch_jax.eval import world_eval
from onesearch_jax.eval.bm25 import BM25Index
from onesearch_jax.eval.memorization import LogMemorizer
from onesearch_jax.progress import Progress
from onesearch_jax.workdir import data_dir, tokenizer_path, world_dir

# Special tokens every model input uses; fixed ids right after [PAD] [UNK] [BOS] [EOS] [SEP] [MASK].
TASK_TOKENS = ("[Q]", "[KW]", "[USR]", "[HIST]", "[TITLE]", "[TASK_ITEM]", "[TASK_KW]",
               "[TASK_QSID]", "[TASK_ISID]")


class LogTally:
    """Counts while events stream past: click pairs for memorisation, irrelevant clicks, slices."""

    def __init__(self, world):
        self.world = world
        self.cand_items, _, _, self.cand_tiers = world.legacy_candidates()
        self.pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.clicks = {"all": 0, "negation": 0, "need": 0}
        self.irrelevant = {"all": 0, "negation": 0, "need": 0}
        self.rows = 0

    def __call__(self, chunks, num_days: int):
        for chunk in chunks:
            self.rows += chunk["items"].size
            train = np.array([logs.split_of_day(int(d), num_days) == "train" for d in chunk["day"]])
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

    def memorizer(self) -> LogMemorizer:
        q, i, w = (np.concatenate(x) for x in zip(*self.pairs))
        return LogMemorizer().fit(q, i, w, self.world.catalog.popularity)

    def rates(self) -> dict[str, float]:
        out = {"click_irrelevant_rate": self.irrelevant["all"] / max(self.clicks["all"], 1)}
        for name in ("negation", "need"):
            out[f"click_irrelevant_rate/{name}"] = self.irrelevant[name] / max(self.clicks[name], 1)
        return out


def build_world_workdir(config, workdir: str) -> World:
    """Builds world + logs + tokenizer once; a rerun with the same config reuses them."""
    reused = workdir_lib.guard_config(workdir, "world", config)
    done_marker = os.path.join(world_dir(workdir), "BUILD_DONE")
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
    tok = text_tokenizer.train_text_tokenizer(
        list(world.catalog.titles) + list(world.queries.texts),
        vocab_size=int(config.tokenizer_vocab_size), extra_special_tokens=TASK_TOKENS)
    text_tokenizer.save_text_tokenizer(tok, tokenizer_path(workdir))
    stats = world.stats()
    stats.update({f"num_events/{k}": v for k, v in counts.items()})
    stats.update(num_log_rows=tally.rows, build_seconds=time.perf_counter() - start, **tally.rates())
    np.savez(os.path.join(world_dir(workdir), "train_clicks.npz"),
             **dict(zip(("query_id", "item", "weight"), (np.concatenate(x) for x in zip(*tally.pairs)))))
    workdir_lib.write_metrics(workdir, "world", stats, config)
    with open(done_marker, "w") as f:
        f.write("ok\n")
    return world


def evaluate_baselines(world: World, workdir: str, max_events: int) -> dict[str, float]:
    events = artifacts.load_events(workdir, "test", max_events)
    clicks = artifacts.load_train_clicks(workdir)
    targets = world_eval.WorldTargets(world, events, clicks["item"])
    texts = [world.queries.texts[q] for q in events["query_id"]]
    bm25, _ = BM25Index(world.catalog.titles).search(texts, 10)
    memo = LogMemorizer().fit(clicks["query_id"], clicks["item"], clicks["weight"],
                              world.catalog.popularity).search(events["query_id"], 10)
    out = {"share/" + name: float(mask.mean()) for name, mask in targets.slices.items()}
    for name, ranked in (("bm25", bm25), ("memorization", memo)):
        out.update({f"{name}/{k}": v for k, v in world_eval.score_rankings(targets, ranked).items()})
    return out
