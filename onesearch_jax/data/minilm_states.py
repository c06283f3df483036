"""Frozen all-MiniLM-L6-v2 token states of texts: the input of the `frozen_minilm` encoder.

The pretrained encoder never trains, so its output for a text is a constant: training reads it
from a cache (data/state_cache.py), serving computes it here for a new query. Both go through
`MiniLMStates.encode`, so a cached state and a fresh one are the same numbers.

A text is word-pieced as MiniLM was trained ([CLS] pieces [SEP], truncated to `max_len` pieces;
truncations are counted in `truncated`), padded to a bucket length (few compiled shapes), and
its per-piece last-layer states are returned, [CLS] and [SEP] included.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.model import minilm

STATE_DIM = 384  # all-MiniLM-L6-v2's hidden size
FORMAT = 1  # last-layer states of [CLS] pieces [SEP], float32


class MiniLMStates:
    """texts -> per-text float32 [pieces, 384] MiniLM states, jitted and bucketed."""

    def __init__(self, max_len: int = 32, batch_size: int = 256):
        from tokenizers import Tokenizer

        if not 3 <= max_len <= 512:
            raise ValueError(f"MiniLM state max_len must be in [3, 512], got {max_len}")
        self.max_len, self.batch_size = int(max_len), int(batch_size)
        self.config, self.params = minilm.load_minilm_params()
        self.model = minilm.MiniLMEncoder.from_hf_config(self.config)
        self.tokenizer = Tokenizer.from_file(str(minilm.minilm_model_dir() / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.truncated = 0  # texts cut to max_len pieces so far (never dropped)
        self._forward = jax.jit(lambda p, ids, mask: self.model.apply(p, ids, mask))
        self._weights_hash = None

    @property
    def weights_hash(self) -> str:
        """sha256 (16 hex) of every weight, the word-piece vocabulary, max_len and the state
        format: a cache key part (change FORMAT when what a state means changes)."""
        if self._weights_hash is None:
            h = hashlib.sha256(f"format={FORMAT} max_len={self.max_len}".encode())
            h.update(self.tokenizer.to_str().encode())
            for leaf in jax.tree.leaves(self.params):
                h.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
            self._weights_hash = h.hexdigest()[:16]
        return self._weights_hash

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids ([CLS] ... [SEP]) per text, cut to max_len (counted)."""
        out = []
        for enc in self.tokenizer.encode_batch(list(texts)):
            ids = enc.ids
            if len(ids) > self.max_len:
                self.truncated += 1
                ids = ids[:self.max_len - 1] + ids[-1:]  # keep [SEP] last
            out.append(ids)
        return out

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, float32 [pieces, 384] states (same order as `texts`)."""
        ids = self.pieces(texts)
        out: list[np.ndarray | None] = [None] * len(ids)
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            length = minilm.bucket_length(max(len(ids[r]) for r in rows), self.max_len)
            padded = minilm.bucket_length(len(rows), self.batch_size, min_len=1)
            tok = np.zeros((padded, length), np.int32)
            mask = np.zeros((padded, length), np.int32)
            for j, r in enumerate(rows):
                tok[j, :len(ids[r])] = ids[r]
                mask[j, :len(ids[r])] = 1
            states = np.asarray(self._forward(self.params, jnp.asarray(tok), jnp.asarray(mask)))
            for j, r in enumerate(rows):
                out[r] = states[j, :len(ids[r])].astype(np.float32)
        return out  # type: ignore[return-value]
