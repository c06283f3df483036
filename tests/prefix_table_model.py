"""A toy decoder whose exact distribution over SIDs is enumerable, to check decoders against.

Its next-token logits are a random table looked up by (query, SID prefix so far). The prefix is
carried in the decoding ``state`` and also re-derived from ``tokens``; where the two disagree
(a decoder that re-gathered state rows or tokens wrongly) the logits become NaN, which poisons
the decoder's scores so tests notice.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class PrefixTableModel(NamedTuple):
    tables: tuple[jax.Array, ...]  # [l] float32[B, prod(level_sizes[:l]), V]
    level_offsets: tuple[int, ...]
    level_sizes: tuple[int, ...]

    @classmethod
    def random(
        cls,
        seed: int,
        batch_size: int,
        level_offsets: Sequence[int],
        level_sizes: Sequence[int],
        vocab_size: int,
        scale: float = 2.0,
    ):
        if vocab_size < max(o + s for o, s in zip(level_offsets, level_sizes)):
            raise ValueError(f"vocab_size {vocab_size} does not cover the SID token ranges")
        rng = np.random.default_rng(seed)
        tables = tuple(
            jnp.asarray(
                scale
                * rng.standard_normal((batch_size, int(np.prod(level_sizes[:l])), vocab_size)),
                dtype=jnp.float32,
            )
            for l in range(len(level_sizes))
        )
        return cls(tables, tuple(level_offsets), tuple(level_sizes))

    def initial_state(self) -> dict:
        """State with leading axis batch_size (decoders tile it per beam / sample)."""
        b = self.tables[0].shape[0]
        return {"query": jnp.arange(b, dtype=jnp.int32), "prefix": jnp.zeros((b,), jnp.int32)}

    def logits_fn(self, state: dict, tokens: jax.Array, step: int):
        """The decoder interface: (state, tokens int32[N, step+1], step) -> (logits[N, V], state)."""
        prefix = state["prefix"]
        if step > 0:
            last = tokens[:, -1] - self.level_offsets[step - 1]
            prefix = prefix * self.level_sizes[step - 1] + last
        from_tokens = jnp.zeros_like(prefix)
        for l in range(step):
            from_tokens = (
                from_tokens * self.level_sizes[l] + tokens[:, l + 1] - self.level_offsets[l]
            )
        logits = self.tables[step][state["query"], prefix]
        logits = jnp.where((from_tokens == prefix)[:, None], logits, jnp.nan)
        return logits, {"query": state["query"], "prefix": prefix}

    def exact_log_probs(self, score_over: str = "level", temperature: float = 1.0):
        """(all SIDs int[M, L] in lexicographic order, log-prob float64[B, M]) by enumeration."""
        sids = np.array(list(itertools.product(*[range(s) for s in self.level_sizes])))
        total = np.zeros((self.tables[0].shape[0], len(sids)))
        prefix = np.zeros(len(sids), dtype=np.int64)
        for l, (off, size) in enumerate(zip(self.level_offsets, self.level_sizes)):
            logits = (
                np.asarray(self.tables[l], dtype=np.float64)[:, prefix] / temperature
            )  # [B, M, V]
            if score_over == "level":
                logits = logits[:, :, off : off + size]
                code = sids[:, l]
            else:
                code = sids[:, l] + off
            logp = logits - _logsumexp(logits)
            total += np.take_along_axis(logp, code[None, :, None], axis=2)[:, :, 0]
            prefix = prefix * size + sids[:, l]
        return sids, total


def _logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
