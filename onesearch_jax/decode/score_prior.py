"""Per-level additive scores for beam search: a prior on a decoder's logits, or the whole model.

`tables[l]` float[B, P_l, k_l] scores level l's codes per query (P_l = 1, or the previous level's
size when the score depends on the parent code), e.g. the ADC tables of `sid/adc.py`. Beam rows are
b * R + r (R rows per query), so a row's query is row // R; its parent code is the token it chose
at the previous level.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def table_scores(tables, tokens: jax.Array, step: int, level_offsets: Sequence[int],
                 batch_size: int) -> jax.Array:
    """float32 [N, k_step]: each row's scores of the codes of level `step`.

    tokens int32[N, step + 1]: BOS then the SID tokens chosen so far (vocabulary ids)."""
    table = jnp.asarray(tables[step])
    rows = tokens.shape[0]
    if rows % batch_size:
        raise ValueError(f"{rows} beam rows are not a multiple of batch_size {batch_size}")
    query = jnp.arange(rows) // (rows // batch_size)
    if table.shape[1] > 1:
        if step == 0:
            raise ValueError("the first SID level has no parent: its table must be [B, 1, k]")
        parent = tokens[:, step] - int(level_offsets[step - 1])
    else:
        parent = jnp.zeros((rows,), jnp.int32)
    return table[query, parent].astype(jnp.float32)


def with_prior(logits_fn, tables, weight: float, level_offsets: Sequence[int], batch_size: int):
    """A level-logits function (`level_logits=True`) returning logits + weight * table scores."""

    def fn(state, tokens, step: int):
        logits, state = logits_fn(state, tokens, step)
        prior = table_scores(tables, tokens, step, level_offsets, batch_size)
        return logits.astype(jnp.float32) + weight * prior, state

    return fn


def tables_only(tables, level_offsets: Sequence[int], batch_size: int):
    """A level-logits function that is the tables alone (beam search with `score_over='raw'`
    then ranks SIDs by their summed scores: ADC retrieval with no model)."""

    def fn(state, tokens, step: int):
        return table_scores(tables, tokens, step, level_offsets, batch_size), state

    return fn
