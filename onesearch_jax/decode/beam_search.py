"""Beam search over the L positions of a semantic ID, optionally constrained to real items.

All SIDs have the same length L, so there is no EOS and no finished-beam bookkeeping: the loop
over positions is unrolled in Python (L is 5) inside one ``jax.jit``, with fixed shapes
(N = batch_size * beam_size rows). Each step scores only level l's token range (see
``sid_steps`` for ``score_over``), masks with the trie, and keeps the top ``beam_size`` of the
``beam_size * level_size`` continuations per query with a two-stage top-k (per beam, then
across beams) so beam 512 x level 4096 stays cheap.

Model interface: ``logits_fn(state, tokens, step) -> (logits float[N, V], new_state)``, where
``tokens`` int32[N, step+1] is BOS followed by the SID tokens chosen so far (vocabulary ids) and
``state`` is any pytree with leading axis N; the returned ``new_state`` is re-gathered along the
chosen parent beams. The ``state`` passed to ``beam_search`` may have leading axis batch_size
(it is repeated per beam, rows b*K + k) or already batch_size*beam_size.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from onesearch_jax.decode import sid_steps
from onesearch_jax.sid import trie as trie_lib

LogitsFn = Callable[[Any, jax.Array, int], tuple[jax.Array, Any]]


class BeamResult(NamedTuple):
    codes: jax.Array  # int32[B, K, L] level-local SID codes, best first
    scores: jax.Array  # float32[B, K] sum of per-level log-probs (divided by L**length_penalty)
    valid: jax.Array  # bool[B, K] finite score and (when a trie is given) a real item's SID
    # int32[B, K] each beam's leaf id in the trie (-1: not a real SID, or no trie), so serving
    # maps beams to items with a host lookup and no trie walk or device copy per query.
    leaves: jax.Array | None = None


def _top_k_continuations(cand: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top k of cand float[B, K, S] per query -> (scores [B,k], beam [B,k], code [B,k])."""
    b, beams, size = cand.shape
    if size > k:  # a query's top k takes at most k codes from any one beam
        per_beam, code = jax.lax.top_k(cand, k)  # [B, K, k]
        scores, flat = jax.lax.top_k(per_beam.reshape(b, beams * k), k)
        beam = flat // k
        code = jnp.take_along_axis(code.reshape(b, beams * k), flat, axis=1)
    else:
        scores, flat = jax.lax.top_k(cand.reshape(b, beams * size), k)
        beam, code = flat // size, flat % size
    return scores, beam.astype(jnp.int32), code.astype(jnp.int32)


def beam_search(
    logits_fn: LogitsFn,
    state: Any,
    *,
    batch_size: int,
    beam_size: int,
    bos_id: int,
    level_offsets: Sequence[int],
    level_sizes: Sequence[int],
    trie: trie_lib.SidTrie | None = None,
    constrained: bool = True,
    length_penalty: float | None = None,
    score_over: str = "level",
    level_logits: bool = False,
) -> BeamResult:
    """Top-``beam_size`` SIDs per query by beam search. Meant to run inside ``jax.jit``; close
    over model params rather than putting them in ``state`` (state rows are re-gathered), e.g.
    ``jax.jit(lambda params, enc: beam_search(functools.partial(step_fn, params), enc, ...))``.

    ``trie`` with ``constrained=True`` masks every step so all valid results are real items;
    ``constrained=False`` decodes freely and uses the trie only to fill ``valid``; ``trie=None``
    decodes freely and ``valid`` only says the score is finite. Beams that could not be filled
    (fewer than ``beam_size`` allowed SIDs) have score -inf and ``valid`` False.
    ``length_penalty`` alpha divides scores by L**alpha (all SIDs have length L, so it rescales
    scores without changing the ranking; kept for score compatibility with length-normalised
    decoders). ``level_logits=True`` says ``logits_fn`` returns only the current level's logits
    [N, level_size] (the KV-cached decoder, ``make_cached_logits_fn``).
    """
    level_offsets, level_sizes = sid_steps.check_sid_layout(
        level_offsets, level_sizes, trie, bos_id, score_over
    )
    sid_steps.check_level_logits(level_logits, score_over)
    if batch_size <= 0 or beam_size <= 0:
        raise ValueError(
            f"batch_size and beam_size must be positive, got {batch_size}, {beam_size}"
        )
    b, k, depth = batch_size, beam_size, len(level_sizes)
    n = b * k
    use_mask = trie is not None and constrained

    # Only beam 0 is live at the start, so when the state is still per query, step 0 runs once
    # per query (not once per beam) and its top k seed the beams; otherwise every beam runs it
    # and beams 1.. start at -inf so that identical beams cannot pick the same code.
    state = jax.tree_util.tree_map(jnp.asarray, state)  # numpy leaves cannot take traced indices
    leaves = jax.tree_util.tree_leaves(state)
    first_per_query = k > 1 and all(x.shape[0] == b for x in leaves)
    if not first_per_query:
        state = sid_steps.tile_rows(state, b, k)
    tokens = jnp.full((n, 1), bos_id, dtype=jnp.int32)
    codes = jnp.zeros((b, k, 0), dtype=jnp.int32)
    scores = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)[None, :].repeat(b, axis=0)
    node = trie_lib.root_state(trie, n) if use_mask else None
    row_base = (jnp.arange(b, dtype=jnp.int32) * k)[:, None]

    for level in range(depth):
        size = level_sizes[level]
        if level == 0 and first_per_query:
            logits, state = sid_steps.call_model(logits_fn, state, tokens[:b], 0, b)
            logp = sid_steps.level_log_probs(
                logits, level_offsets[0], size, score_over, level_logits=level_logits
            )
            if use_mask:
                runs = trie_lib.child_runs(trie, node, 0)
                logp = jnp.where(trie_lib.runs_mask(runs), logp, -jnp.inf)
            cand = logp[:, None, :]
            if size < k:  # fewer first codes than beams: the rest stay dead (-inf)
                cand = jnp.pad(cand, ((0, 0), (0, 0), (0, k - size)), constant_values=-jnp.inf)
            scores, beam, code = _top_k_continuations(cand, k)
            code = jnp.minimum(code, size - 1)
            parent = jnp.repeat(jnp.arange(b, dtype=jnp.int32), k)
        else:
            logits, state = sid_steps.call_model(logits_fn, state, tokens, level, n)
            logp = sid_steps.level_log_probs(
                logits, level_offsets[level], size, score_over, level_logits=level_logits
            )
            if use_mask:
                runs = trie_lib.child_runs(trie, node, level)
                logp = jnp.where(trie_lib.runs_mask(runs), logp, -jnp.inf)
            cand = scores[:, :, None] + logp.reshape(b, k, size)
            scores, beam, code = _top_k_continuations(cand, k)
            parent = (row_base + beam).reshape(n)
        state = jax.tree_util.tree_map(lambda x: x[parent], state)
        flat_code = code.reshape(n)
        tokens = jnp.concatenate([tokens[parent], (level_offsets[level] + flat_code)[:, None]], 1)
        codes = jnp.concatenate(
            [jnp.take_along_axis(codes, beam[:, :, None], axis=1), code[:, :, None]], axis=2
        )
        if use_mask:  # the chosen child, read off this step's runs (no walk down the trie)
            node = trie_lib.follow(runs, flat_code, parent)

    valid = jnp.isfinite(scores)
    if trie is not None:  # masked: the last step's nodes are the leaves; free: walk the codes
        leaves = (node if use_mask else trie_lib.leaf_ids(trie, codes.reshape(n, depth))
                  ).reshape(b, k)
        valid &= leaves >= 0
        leaves = jnp.where(valid, leaves, -1)
    else:
        leaves = jnp.full((b, k), -1, jnp.int32)
    if length_penalty is not None:
        scores = scores / (float(depth) ** float(length_penalty))
    return BeamResult(codes=codes, scores=scores.astype(jnp.float32), valid=valid, leaves=leaves)
