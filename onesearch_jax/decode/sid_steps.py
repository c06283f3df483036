"""Pieces shared by beam search and sampling: argument checks, per-level scoring, state tiling.

Scoring choice (``score_over``): the model's logits cover the whole vocabulary, but at SID
position l only level l's token range ``[level_offsets[l], level_offsets[l] + level_sizes[l])``
can be emitted. ``"level"`` (default) takes log_softmax over that range only, so text tokens and
other levels' tokens never steal probability mass; ``"vocab"`` takes log_softmax over the full
vocabulary and then slices, i.e. the model's raw next-token log-probs (scores of a level then do
not sum to one); ``"raw"`` takes the level's logits as they are, unnormalised (additive
scores, e.g. ADC's q . x_hat terms from ``decode/score_prior.py``). Either way trie masking happens afterwards: a masked code gets -inf and the
remaining scores are *not* renormalised, so a constrained beam's score is its true model log-prob.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from onesearch_jax.model.transformer import targets_gpu

SCORE_OVER = ("level", "vocab", "raw")


def check_sid_layout(
    level_offsets: Sequence[int], level_sizes: Sequence[int], trie, bos_id: int, score_over: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validates the SID token layout and returns it as tuples of ints."""
    level_offsets = tuple(int(o) for o in level_offsets)
    level_sizes = tuple(int(s) for s in level_sizes)
    if len(level_offsets) != len(level_sizes) or not level_sizes:
        raise ValueError(
            f"level_offsets {level_offsets} and level_sizes {level_sizes} must be "
            "non-empty and of equal length"
        )
    if any(s <= 0 for s in level_sizes) or any(o < 0 for o in level_offsets):
        raise ValueError(
            f"level sizes must be positive and offsets non-negative, got "
            f"{level_offsets} / {level_sizes}"
        )
    if trie is not None and tuple(trie.level_sizes) != level_sizes:
        raise ValueError(f"trie.level_sizes {trie.level_sizes} != level_sizes {level_sizes}")
    if int(bos_id) < 0:
        raise ValueError(f"bos_id must be a vocabulary id, got {bos_id}")
    if score_over not in SCORE_OVER:
        raise ValueError(f"score_over must be one of {SCORE_OVER}, got {score_over!r}")
    return level_offsets, level_sizes


def tile_rows(state, batch_size: int, copies: int):
    """Repeats each query's state ``copies`` times (rows b*copies + k) unless already tiled."""

    def tile(x):
        if x.shape[0] == batch_size * copies:
            return jnp.asarray(x)  # numpy leaves could not be gathered with traced indices
        if x.shape[0] == batch_size:
            return jnp.repeat(x, copies, axis=0)
        raise ValueError(
            f"state leaf has leading axis {x.shape[0]}; expected batch_size "
            f"{batch_size} or batch_size*{copies} = {batch_size * copies}"
        )

    return jax.tree_util.tree_map(tile, state)


def check_level_logits(level_logits: bool, score_over: str) -> None:
    if level_logits and score_over == "vocab":
        raise ValueError(
            "level_logits=True (a logits_fn that returns only the current level's logits) "
            f"needs score_over='level' or 'raw', got {score_over!r}"
        )


def level_slice(logits: jax.Array, offset: int, size: int, level_logits: bool) -> jax.Array:
    """The current level's logits [N, size]: from full-vocab logits, or as given."""
    if level_logits:
        if logits.ndim != 2 or logits.shape[1] != size:
            raise ValueError(f"level logits must be [N, {size}], got {logits.shape}")
        return logits
    if logits.ndim != 2 or logits.shape[1] < offset + size:
        raise ValueError(f"logits must be [N, V] with V >= {offset + size}, got {logits.shape}")
    return logits[:, offset : offset + size]


def level_log_probs(
    logits: jax.Array,
    offset: int,
    size: int,
    score_over: str,
    temperature: float = 1.0,
    level_logits: bool = False,
) -> jax.Array:
    """float32[N, size] log-probs of level codes from full-vocab ``logits`` float[N, V] (or, with
    ``level_logits``, from the level's own logits [N, size])."""
    if score_over == "raw":
        return level_slice(logits, offset, size, level_logits).astype(jnp.float32) / temperature
    if level_logits:
        return jax.nn.log_softmax(
            level_slice(logits, offset, size, True).astype(jnp.float32) / temperature, axis=-1
        )
    if logits.ndim != 2 or logits.shape[1] < offset + size:
        raise ValueError(f"logits must be [N, V] with V >= {offset + size}, got {logits.shape}")
    logits = logits.astype(jnp.float32) / temperature
    if score_over == "vocab":
        return jax.nn.log_softmax(logits, axis=-1)[:, offset : offset + size]
    return jax.nn.log_softmax(logits[:, offset : offset + size], axis=-1)


def call_model(logits_fn, state, tokens, step: int, num_rows: int):
    """Calls ``logits_fn`` and checks the shapes it returns.

    One row on a GPU (a batch-1 query's first step) runs as two, the second a copy dropped
    after: XLA rewrites every one-row matmul into a multiply that writes the product out and a
    reduction, two kernels each, 25 more in a 1x16 search of ~450 (docs/scaling.md); elsewhere
    one row runs as itself, so CPU results stay bit for bit."""
    pad = num_rows == 1 and targets_gpu()
    if pad:
        state = jax.tree_util.tree_map(lambda x: jnp.concatenate([x, x]), state)
        tokens = jnp.concatenate([tokens, tokens])
    logits, new_state = logits_fn(state, tokens, step)
    if logits.shape[0] != num_rows * (2 if pad else 1):
        raise ValueError(
            f"logits_fn returned {logits.shape[0]} rows at step {step}, expected {num_rows}"
        )
    if pad:
        logits, new_state = logits[:1], jax.tree_util.tree_map(lambda x: x[:1], new_state)
    return logits, new_state
