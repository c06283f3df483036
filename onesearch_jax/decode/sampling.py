"""Temperature sampling of SIDs, ``group_size`` rollouts per query (the GRPO stage's samples).

Same model interface and fixed-shape, unrolled-over-L design as ``beam_search``. At each position
the code is drawn from softmax(level logits / temperature), restricted to the trie's allowed codes
when constrained (masking before the softmax renormalises over real continuations, so a
constrained sample is always a real item's SID). ``temperature == 0`` means greedy (argmax).

``draw_logprobs`` are the log-probs of the drawn codes under the distribution they were drawn
from (tempered, inside the trie when constrained; greedy counts as temperature 1): what RL's
policy ratio compares (`train/rollout.policy_log_probs` recomputes them teacher-forced).
``token_logprobs`` are the *model's* log-probs at temperature 1 without the trie mask
(``score_over`` as in ``sid_steps``).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from onesearch_jax.decode import sid_steps
from onesearch_jax.sid import trie as trie_lib


class SampleResult(NamedTuple):
    codes: jax.Array  # int32[B, G, L] level-local SID codes
    token_logprobs: jax.Array  # float32[B, G, L] model log-prob of each drawn code (T = 1)
    draw_logprobs: jax.Array  # float32[B, G, L] log-prob under the tempered, masked draw
    valid: jax.Array  # bool[B, G] real item's SID (all True when trie is None)


def sample_sids(
    logits_fn,
    state: Any,
    rng: jax.Array,
    *,
    batch_size: int,
    group_size: int,
    temperature: float,
    bos_id: int,
    level_offsets: Sequence[int],
    level_sizes: Sequence[int],
    trie: trie_lib.SidTrie | None = None,
    constrained: bool = True,
    score_over: str = "level",
    level_logits: bool = False,
) -> SampleResult:
    """Draws ``group_size`` SIDs per query. Meant to run inside ``jax.jit``.

    ``state`` has leading axis batch_size (repeated per sample, rows b*G + g) or
    batch_size*group_size. ``trie`` with ``constrained=False`` samples freely and only fills
    ``valid``; with ``trie=None`` validity is unknown and ``valid`` is all True.
    ``level_logits`` as in ``beam_search`` (a KV-cached ``logits_fn`` scoring one level).
    """
    level_offsets, level_sizes = sid_steps.check_sid_layout(
        level_offsets, level_sizes, trie, bos_id, score_over
    )
    sid_steps.check_level_logits(level_logits, score_over)
    if batch_size <= 0 or group_size <= 0:
        raise ValueError(
            f"batch_size and group_size must be positive, got {batch_size}, {group_size}"
        )
    temperature = float(temperature)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    b, g, depth = batch_size, group_size, len(level_sizes)
    n = b * g
    use_mask = trie is not None and constrained

    state = sid_steps.tile_rows(state, b, g)
    tokens = jnp.full((n, 1), bos_id, dtype=jnp.int32)
    node = trie_lib.root_state(trie, n) if use_mask else None
    codes, logprobs, draw_logprobs = [], [], []
    draw_temperature = temperature if temperature > 0 else 1.0
    for level, key in zip(range(depth), jax.random.split(rng, depth)):
        logits, state = sid_steps.call_model(logits_fn, state, tokens, level, n)
        offset, size = level_offsets[level], level_sizes[level]
        model_logp = sid_steps.level_log_probs(
            logits, offset, size, score_over, level_logits=level_logits
        )
        draw_logits = sid_steps.level_slice(logits, offset, size, level_logits).astype(jnp.float32)
        if use_mask:
            runs = trie_lib.child_runs(trie, node, level)
            draw_logits = jnp.where(trie_lib.runs_mask(runs), draw_logits, -jnp.inf)
        if temperature == 0.0:
            code = jnp.argmax(draw_logits, axis=-1)
        else:
            code = jax.random.categorical(key, draw_logits / temperature, axis=-1)
        code = code.astype(jnp.int32)
        codes.append(code)
        logprobs.append(jnp.take_along_axis(model_logp, code[:, None], axis=1)[:, 0])
        draw_lp = jax.nn.log_softmax(draw_logits / draw_temperature, axis=-1)
        draw_logprobs.append(jnp.take_along_axis(draw_lp, code[:, None], axis=1)[:, 0])
        tokens = jnp.concatenate([tokens, (offset + code)[:, None]], axis=1)
        if use_mask:
            node = trie_lib.follow(runs, code)

    codes = jnp.stack(codes, axis=1)
    if use_mask:  # the last step's nodes are the leaves
        valid = node >= 0
    else:
        valid = trie_lib.is_valid(trie, codes) if trie is not None else jnp.ones((n,), bool)
    return SampleResult(
        codes=codes.reshape(b, g, depth),
        token_logprobs=jnp.stack(logprobs, axis=1).reshape(b, g, depth),
        draw_logprobs=jnp.stack(draw_logprobs, axis=1).reshape(b, g, depth),
        valid=valid.reshape(b, g),
    )
