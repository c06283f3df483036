"""Loads what earlier stages left in a workdir (world, tokenizer, SIDs, logs), with clear errors."""
from __future__ import annotations

import json
import os

import numpy as np

from onesearch_jax import fileio
from onesearch_jax import workdir as wd
from onesearch_jax.data import keywords_io, text_tokenizer
from onesearch_jax.sid.codebooks import KHQE


def _require(path: str, stage: str) -> str:
    if not fileio.exists(path):
        raise FileNotFoundError(f"{path} is missing; run experiments.{stage} on this workdir first")
    return path


def load_world(workdir: str):
    """The simulated world (world/world.py's World; imported here so that what only reads a
    workdir, serving, never loads the simulator)."""
    from onesearch_jax.world.world import World
    _require(os.path.join(wd.world_dir(workdir), "BUILD_DONE"), "build_world")
    return World.load(wd.world_dir(workdir))


def load_world_items(workdir: str) -> tuple[list, list, np.ndarray]:
    """(product ids, titles, popularity) of a world workdir's catalog, read without the
    simulator (serving needs nothing else of the world)."""
    d = wd.world_dir(workdir)
    _require(os.path.join(d, "BUILD_DONE"), "build_world")
    rows = [json.loads(line) for line in fileio.read_lines(os.path.join(d, "items.jsonl"))]
    popularity = fileio.load_npz(os.path.join(d, "catalog.npz"))["popularity"]
    return [r["product_id"] for r in rows], [r["title"] for r in rows], popularity


def load_query_texts(workdir: str) -> list[str]:
    """A world workdir's query texts, by query id."""
    path = _require(os.path.join(wd.world_dir(workdir), "queries.jsonl"), "build_world")
    return [json.loads(line)["text"] for line in fileio.read_lines(path)]


def load_tokenizer(workdir: str):
    return text_tokenizer.load_text_tokenizer(_require(wd.tokenizer_path(workdir), "build_world"))


def load_sids(workdir: str) -> tuple[KHQE, np.ndarray, np.ndarray]:
    """(tokenizer model, item codes (N, L), query codes (Q, L))."""
    d = wd.sid_dir(workdir)
    _require(os.path.join(d, wd.ITEM_CODES_FILE), "build_sids")
    return (KHQE.load(os.path.join(d, wd.KHQE_FILE)),
            fileio.load_npy(os.path.join(d, wd.ITEM_CODES_FILE)),
            fileio.load_npy(os.path.join(d, wd.QUERY_CODES_FILE)))


def load_query_keywords(workdir: str) -> dict[str, dict]:
    """query text -> keyword fields, for the queries of the training logs (user-free rows)."""
    path = _require(wd.query_keywords_path(workdir), "build_world")
    rows = keywords_io.read_keywords_jsonl(path)
    return {text: fields for (text, user), fields in rows.items() if user is None}


def load_reward_model(workdir: str):
    """The reward model build_world fitted on the training logs (no click model behind it)."""
    from onesearch_jax.world.reward_model import RewardModel
    return RewardModel.load(_require(wd.reward_model_path(workdir), "build_world"))


def load_query_event_counts(workdir: str) -> dict[str, np.ndarray]:
    """Events per query id on the train days and on the test day."""
    return fileio.load_npz(
        _require(os.path.join(wd.world_dir(workdir), "query_event_counts.npz"), "build_world"))


def load_train_clicks(workdir: str) -> dict[str, np.ndarray]:
    """(query_id, item, weight) of every clicked/ordered item in the train days."""
    return fileio.load_npz(
        _require(os.path.join(wd.world_dir(workdir), "train_clicks.npz"), "build_world"))


def load_events(workdir: str, split: str, max_events: int | None = None, seed: int = 0):
    """A split's events as arrays (a seeded sample of at most max_events, in event order)."""
    from onesearch_jax.data import event_dataset  # tfds: imported when events are read
    events = event_dataset.read_event_arrays(wd.data_dir(workdir), split)
    n = len(events["event_id"])
    if max_events is not None and n > max_events:
        keep = np.sort(np.random.default_rng(seed).choice(n, max_events, replace=False))
        events = {k: v[keep] for k, v in events.items()}
    return events
