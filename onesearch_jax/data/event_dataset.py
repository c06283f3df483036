"""The world's search logs as a tfds dataset: array_record files read with `tfds.data_source`.

No TensorFlow is needed: tfds builds and reads `array_record` through its pure-Python path.
Events are generated in ONE streaming pass over the days (user histories depend on earlier
days), spilled to per-split `.npz` chunks, and the tfds builder then reads those chunks split by
split; nothing holds the whole log in memory.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow_datasets as tfds

from onesearch_jax import fileio, quiet

SPLITS = ("train", "valid", "test")
DATASET_NAME = "world_events"
_ARRAY_FIELDS = {
        "event_id": np.int64, "day": np.int32, "user_id": np.int32, "query_id": np.int32,
        "items": np.int32, "clicks": np.int8, "orders": np.int8, "history": np.int32,
}


def write_event_chunks(chunks: Iterable[Mapping[str, np.ndarray]],
                       split_of_day: Callable[[int], str], chunk_dir: str) -> dict[str, int]:
    """Spills a stream of event chunks (dicts of arrays, one row per event) into
    `chunk_dir/<split>-<k>.npz`, routing rows by day; returns the number of events per split."""
    os.makedirs(chunk_dir, exist_ok=True)
    written = {s: 0 for s in SPLITS}
    files = {s: 0 for s in SPLITS}
    for chunk in chunks:
        days = np.asarray(chunk["day"])
        for day in np.unique(days):
            split = split_of_day(int(day))
            if split not in written:
                raise ValueError(f"split_of_day({int(day)}) returned {split!r}; expected one of {SPLITS}")
            rows = days == day
            arrays = {k: np.asarray(chunk[k])[rows].astype(t) for k, t in _ARRAY_FIELDS.items()}
            np.savez(os.path.join(chunk_dir, f"{split}-{files[split]:05d}.npz"), **arrays)
            files[split] += 1
            written[split] += int(rows.sum())
    return written


def _chunk_files(chunk_dir: str, split: str) -> list[str]:
    return sorted(os.path.join(chunk_dir, f) for f in os.listdir(chunk_dir)
                                if f.startswith(split + "-") and f.endswith(".npz"))


class WorldEvents(tfds.core.GeneratorBasedBuilder):
    """One record per search event: who searched what, what was shown, clicked and ordered."""

    VERSION = tfds.core.Version("1.0.0")
    name = DATASET_NAME

    def __init__(self, *, chunk_dir: str | None = None, num_exposed: int = 10,
               history_len: int = 5, query_texts: list[str] | None = None, **kwargs):
        self._chunk_dir = chunk_dir
        self._num_exposed = num_exposed
        self._history_len = history_len
        self._query_texts = query_texts
        super().__init__(**kwargs)

    def _info(self):
        n, h = self._num_exposed, self._history_len
        feats = tfds.features
        return tfds.core.DatasetInfo(
                builder=self,
                description="Simulated search events of the onesearch-jax world.",
                features=feats.FeaturesDict({
                        "event_id": feats.Scalar(dtype=np.int64),
                        "day": feats.Scalar(dtype=np.int32),
                        "user_id": feats.Scalar(dtype=np.int32),
                        "query_id": feats.Scalar(dtype=np.int32),
                        "query": feats.Text(),
                        "items": feats.Tensor(shape=(n,), dtype=np.int32),
                        "clicks": feats.Tensor(shape=(n,), dtype=np.int8),
                        "orders": feats.Tensor(shape=(n,), dtype=np.int8),
                        "history": feats.Tensor(shape=(h,), dtype=np.int32),
                }))

    def _split_generators(self, dl_manager):
        del dl_manager
        if self._chunk_dir is None:
            raise ValueError("WorldEvents needs chunk_dir to build; use load_event_split to read")
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split):
        for path in _chunk_files(self._chunk_dir, split):
            with np.load(path) as chunk:
                arrays = {k: chunk[k] for k in _ARRAY_FIELDS}
            for i in range(len(arrays["event_id"])):
                row = {k: v[i] for k, v in arrays.items()}
                row["query"] = self._query_texts[int(row["query_id"])] if self._query_texts else ""
                yield int(row["event_id"]), row


def build_event_dataset(events, split_of_event, data_dir: str, *, num_exposed: int,
                                                history_len: int, query_texts: list[str] | None = None) -> dict[str, int]:
    """Streams events into a tfds `array_record` dataset under `data_dir`; returns split sizes."""
    chunk_dir = os.path.join(data_dir, "_event_chunks")
    counts = write_event_chunks(events, split_of_event, chunk_dir)
    builder = WorldEvents(chunk_dir=chunk_dir, num_exposed=num_exposed, history_len=history_len,
                                                query_texts=query_texts, data_dir=data_dir, file_format="array_record")
    with quiet.library_prints():
        builder.download_and_prepare()
    for split in SPLITS:
        write_columnar_split(chunk_dir, split, data_dir)
    for path in os.listdir(chunk_dir):
        os.remove(os.path.join(chunk_dir, path))
    os.rmdir(chunk_dir)
    return counts


def columnar_path(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, f"events-{split}.npz")


def write_columnar_split(chunk_dir: str, split: str, data_dir: str) -> None:
    """A column-wise copy of a split for bulk reads (training reads every event; decoding tfds
    records one by one runs at ~1k/s). tfds stays the random-access store."""
    parts = [dict(np.load(p)) for p in _chunk_files(chunk_dir, split)]
    arrays = {k: (np.concatenate([p[k] for p in parts]) if parts else np.zeros((0,), t))
              for k, t in _ARRAY_FIELDS.items()}
    order = np.argsort(arrays["event_id"], kind="stable")
    np.savez(columnar_path(data_dir, split), **{k: v[order] for k, v in arrays.items()})


def load_event_split(data_dir: str, split: str):
    """A random-access `tfds.data_source` over one split (records come back as numpy dicts)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {SPLITS}")
    version_dir = os.path.join(data_dir, DATASET_NAME, str(WorldEvents.VERSION))
    if not fileio.isdir(version_dir):
        raise FileNotFoundError(f"no event dataset at {version_dir}; build the world first")
    builder = tfds.builder_from_directory(version_dir)
    return builder.as_data_source(split)


def read_event_arrays(data_dir: str, split: str) -> dict[str, np.ndarray]:
    """All events of a split as stacked arrays sorted by event_id (records are stored shuffled).

    Reads the columnar copy when present, else decodes every tfds record."""
    if split in SPLITS and fileio.exists(columnar_path(data_dir, split)):
        arrays = fileio.load_npz(columnar_path(data_dir, split))
        return {k: arrays[k] for k in _ARRAY_FIELDS}
    source = load_event_split(data_dir, split)
    rows = [source[i] for i in range(len(source))]
    if not rows:
        return {k: np.zeros((0,), t) for k, t in _ARRAY_FIELDS.items()}
    arrays = {k: np.stack([r[k] for r in rows]).astype(t) for k, t in _ARRAY_FIELDS.items()}
    order = np.argsort(arrays["event_id"], kind="stable")
    return {k: v[order] for k, v in arrays.items()}
