"""A content-addressed, memory-mapped cache of frozen MiniLM token states, per distinct text.

The frozen encoder's output for a text never changes, so a run encodes each distinct text once
and every later update reads it from disk. The cache is a folder per MiniLM weights hash holding
shards; a shard is named by the hash of its texts and holds

    texts.json   the texts, in row order
    offsets.npy  int64 [T + 1]: text i's states are rows offsets[i]:offsets[i+1]
    states.npy   float32 [N, 384] (memory-mapped on read)
    meta.json    weights hash, texts hash, counts

`ensure(texts)` encodes only the texts no shard holds yet (one new shard), so several workdirs
pointed at one cache folder share it, and a rerun encodes nothing. A shard whose recorded
weights or texts do not match what it holds is refused, naming the mismatch.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Sequence

import numpy as np

from onesearch_jax import progress


def texts_hash(texts: Sequence[str]) -> str:
    return hashlib.sha256("\x1e".join(texts).encode("utf-8")).hexdigest()[:16]


class CacheMismatch(ValueError):
    """A shard built for other texts or other weights than it claims, or than asked for."""


class StateCache:
    """text -> float32 [pieces, 384] frozen states, from shards under `folder/<weights hash>/`.

    `encoder` is a `MiniLMStates` (anything with `encode(texts)`, `weights_hash`); misses are
    encoded by `ensure` only: `get` of an unknown text raises KeyError."""

    def __init__(self, folder: str, encoder, chunk: int = 4096):
        self.encoder, self.chunk = encoder, int(chunk)
        self.folder = os.path.join(folder, f"minilm_states.{encoder.weights_hash}")
        self._index: dict[str, tuple[np.ndarray, int, int]] = {}
        self.shards: list[str] = []
        self.hits = self.encoded = 0
        self.encode_seconds = 0.0
        if os.path.isdir(self.folder):
            for name in sorted(os.listdir(self.folder)):
                if name.startswith("shard."):
                    self._load_shard(os.path.join(self.folder, name))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, text: str) -> bool:
        return text in self._index

    def _load_shard(self, path: str) -> None:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        with open(os.path.join(path, "texts.json")) as f:
            texts = json.load(f)
        if meta["weights_hash"] != self.encoder.weights_hash:
            raise CacheMismatch(
                f"state cache shard {path} was built with MiniLM weights {meta['weights_hash']}, "
                f"this run's are {self.encoder.weights_hash}; point --config.data.state_cache "
                f"elsewhere or delete the shard")
        if texts_hash(texts) != meta["texts_hash"] or \
                os.path.basename(path) != f"shard.{meta['texts_hash']}":
            raise CacheMismatch(
                f"state cache shard {path} holds other texts than it was built for (texts hash "
                f"{texts_hash(texts)}, recorded {meta['texts_hash']}); delete the shard")
        offsets = np.load(os.path.join(path, "offsets.npy"))
        states = np.load(os.path.join(path, "states.npy"), mmap_mode="r")
        if len(offsets) != len(texts) + 1 or offsets[-1] != len(states):
            raise CacheMismatch(f"state cache shard {path}: {len(texts)} texts, {len(offsets)} "
                                f"offsets and {len(states)} state rows do not agree; delete it")
        for i, t in enumerate(texts):
            self._index[t] = (states, int(offsets[i]), int(offsets[i + 1]))
        self.shards.append(path)

    def _write_shard(self, final: str, texts: list, digest: str, parts, offsets) -> None:
        """Written in a temporary folder, synced, then renamed: a reader sees a whole shard or
        none; if another process renamed the same shard first, ours is dropped."""
        tmp = tempfile.mkdtemp(dir=self.folder, prefix=".tmp-shard.")
        os.chmod(tmp, 0o755)  # a shared cache folder is read by other users too
        try:
            arrays = {"states.npy": np.concatenate(parts).astype(np.float32),
                      "offsets.npy": offsets}
            for name, value in arrays.items():
                with open(os.path.join(tmp, name), "wb") as f:
                    np.save(f, value)
                    os.fsync(f.fileno())
            meta = {"weights_hash": self.encoder.weights_hash, "texts_hash": digest,
                    "num_texts": len(texts), "num_states": int(offsets[-1]),
                    "max_len": int(getattr(self.encoder, "max_len", 0))}
            for name, value in (("texts.json", texts), ("meta.json", meta)):
                with open(os.path.join(tmp, name), "w") as f:
                    json.dump(value, f)
                    f.flush()
                    os.fsync(f.fileno())
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.isdir(final):  # not a lost race: a real failure
                raise

    def refresh(self) -> None:
        """Loads shards other processes wrote since this cache was opened."""
        for name in sorted(os.listdir(self.folder)) if os.path.isdir(self.folder) else ():
            path = os.path.join(self.folder, name)
            if name.startswith("shard.") and path not in self.shards:
                self._load_shard(path)

    def get(self, text: str) -> np.ndarray:
        states, lo, hi = self._index[text]
        return states[lo:hi]

    def ensure(self, texts: Sequence[str], label: str = "MiniLM states") -> int:
        """Encodes and stores the texts not cached yet (a progress line while it fills);
        returns how many were encoded."""
        missing = sorted({t for t in texts if t not in self._index})
        self.hits += len(set(texts)) - len(missing)
        if not missing:
            return 0
        start = time.time()
        parts, bar = [], progress.Progress(label, len(missing), unit="texts")
        for lo in range(0, len(missing), self.chunk):
            chunk = missing[lo:lo + self.chunk]
            parts += self.encoder.encode(chunk)
            bar.update(len(chunk))
        lengths = np.array([len(p) for p in parts], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        digest = texts_hash(missing)
        os.makedirs(self.folder, exist_ok=True)
        final = os.path.join(self.folder, f"shard.{digest}")
        if not os.path.isdir(final):
            self._write_shard(final, missing, digest, parts, offsets)
        self._load_shard(final)
        self.encoded += len(missing)
        self.encode_seconds += time.time() - start
        return len(missing)
