"""Where the SID tokens sit in a decoder target row, found from the targets themselves.

A row's targets may start with SID tokens (the SFT tasks) or carry text first (direct CoT:
keywords, then the SID). Level l's tokens occupy their own vocabulary range, so position p
predicts SID token l exactly when targets[p] lies in level l's range: distillation and GRPO
take their per-level log-probs there, never from the weights (which also cover text tokens).
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp


def level_ranges(level_offsets: Sequence[int], level_sizes: Sequence[int]) -> tuple:
    """((start, size), ...) per SID level, as plain ints (static under jit)."""
    return tuple((int(o), int(s)) for o, s in zip(level_offsets, level_sizes))


def sid_positions(targets, ranges) -> tuple:
    """targets int[B, T] -> (positions int32[B, L], codes int32[B, L], found float32[B, L]).

    positions[b, l]: the first decoder position whose target is a level-l token; codes: that
    token's level-local code; found: 1 where row b has a level-l target (0 on text-only rows,
    whose positions/codes are 0 and must be masked).
    """
    targets = jnp.asarray(targets)
    positions, codes, found = [], [], []
    for start, size in ranges:
        hit = (targets >= start) & (targets < start + size)
        p = jnp.argmax(hit, axis=1).astype(jnp.int32)
        f = jnp.any(hit, axis=1)
        positions.append(jnp.where(f, p, 0))
        code = jnp.take_along_axis(targets, p[:, None], axis=1)[:, 0] - start
        codes.append(jnp.where(f, code, 0).astype(jnp.int32))
        found.append(f.astype(jnp.float32))
    return jnp.stack(positions, 1), jnp.stack(codes, 1), jnp.stack(found, 1)
