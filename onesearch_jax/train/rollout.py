"""On-policy rollouts for the RL stages: G SIDs per query from the KV-cached decoder, then their
log-probs recomputed teacher-forced with the SID-slice function every update uses.

The sampler's own log-probs come from the incremental decode path; the policy ratio must compare
like with like, so `old_logp` (and the frozen reference's `ref_logp`) are recomputed here with
`group_sid_log_probs`, the function the loss differentiates: at the first (and, with one update
per rollout, every) update the ratio is 1. Only the L sampled positions are projected, each onto
its level's slice: never [B, G, L, V].

Which distribution (`POLICY_LOGPS`): `sampled` (default) is the one the SIDs were drawn from,
softmax(logits / T) renormalised inside the trie (the rollout hands the loss each position's
`allowed` mask), so the policy gradient and its ratio are those of the sampling policy and
probability never leaks to SIDs that are no item; `model` is the plain model at T = 1 over the
whole level (what this code did before: a sampled SID's log-prob then also counts the mass of
non-items and ignores the temperature).
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.data.text_tokenizer import BOS_ID
from onesearch_jax.decode.beam_search import beam_search
from onesearch_jax.decode.sampling import sample_sids
from onesearch_jax.model.transformer import EncoderDecoder, make_cached_logits_fn
from onesearch_jax.sid import trie as trie_lib

SAMPLERS = ("constrained", "free", "beam")
POLICY_LOGPS = ("sampled", "model")


def policy_log_probs(level_lp, allowed=None, temperature: float = 1.0):
    """The sampling distribution's log-probs [..., L, K] from the model's level log-probs
    `level_lp` [..., L, K]: log_softmax(where(allowed, level_lp / T, -inf)). A row whose mask
    allows nothing (a dead prefix) keeps the unmasked distribution. Pure."""
    z = level_lp.astype(jnp.float32) / float(temperature)
    if allowed is not None:
        allowed = jnp.logical_or(allowed, ~jnp.any(allowed, axis=-1, keepdims=True))
        z = jnp.where(allowed, z, -jnp.inf)
    return jax.nn.log_softmax(z, axis=-1)


def sampling_distribution(sampler: str, temperature: float, policy_logp: str):
    """(mask with the trie?, temperature) of the distribution whose log-probs RL trains: the
    sampler's for `sampled` (beam and greedy count as T = 1), the plain model's for `model`."""
    if policy_logp not in POLICY_LOGPS:
        raise ValueError(f"policy_logp={policy_logp!r}; valid: {POLICY_LOGPS}")
    if policy_logp == "model":
        return False, 1.0
    t = float(temperature) if sampler != "beam" and float(temperature) > 0 else 1.0
    return sampler != "free", t


def sid_decoder_inputs(codes, level_offsets: Sequence[int], bos_id: int = BOS_ID):
    """codes int[N, L] (level-local) -> teacher-forcing inputs int32[N, L]: BOS, then the
    vocabulary ids of codes 0..L-2."""
    tokens = codes + jnp.asarray(level_offsets, jnp.int32)[None, :]
    bos = jnp.full((codes.shape[0], 1), bos_id, jnp.int32)
    return jnp.concatenate([bos, tokens[:, :-1]], axis=1).astype(jnp.int32)


def _group_log_probs(module: EncoderDecoder, enc_tokens, dec_inputs, codes, ranges, group,
                     enc_states=None, allowed=None, temperature: float = 1.0):
    enc_out, enc_mask = module.encode(enc_tokens, False, enc_states)
    enc_out, enc_mask = jnp.repeat(enc_out, group, 0), jnp.repeat(enc_mask, group, 0)
    x = module.decode_hidden(enc_out, enc_mask, dec_inputs, False)
    n, depth = codes.shape
    positions = jnp.broadcast_to(jnp.arange(depth, dtype=jnp.int32), (n, depth))
    lp = module.level_log_probs_at(x, positions, ranges)  # [N, L, K]
    if allowed is not None or temperature != 1.0:
        lp = policy_log_probs(lp, allowed, temperature)
    return jnp.take_along_axis(lp, codes[..., None], axis=-1)[..., 0]


def group_sid_log_probs(model: EncoderDecoder, params, enc_tokens, codes, ranges: tuple,
                        enc_states=None, allowed=None, temperature: float = 1.0):
    """float32[B, G, L]: log pi(code_l | query, codes_<l) of each of G SIDs per query, each level
    normalised over its own slice (as decoding scores it), or over the trie's `allowed` codes
    bool[B, G, L, K] at `temperature` (`policy_log_probs`). Deterministic (no dropout): RL's
    ratio compares two evaluations of the same policy. One encoder pass per query."""
    b, g, depth = codes.shape
    flat = codes.reshape(b * g, depth).astype(jnp.int32)
    dec = sid_decoder_inputs(flat, [start for start, _ in ranges])
    if allowed is not None:
        allowed = allowed.reshape(b * g, depth, allowed.shape[-1])
    lp = model.apply({"params": params}, enc_tokens, dec, flat, ranges, g, enc_states, allowed,
                     float(temperature), method=_group_log_probs)
    return lp.reshape(b, g, depth)


def first_items(trie: trie_lib.SidTrie, codes):
    """int32[N]: the most popular item of each SID (codes int[N, L]); -1 where none."""
    leaf = trie_lib.leaf_ids(trie, codes)
    item = trie.item_order[trie.leaf_item_start[jnp.maximum(leaf, 0)]]
    return jnp.where(leaf >= 0, item, -1).astype(jnp.int32)


def make_rollout_fn(model: EncoderDecoder, vocab: SidVocab, *, group_size: int,
                    sampler: str = "constrained", temperature: float = 1.0,
                    with_reference: bool = False, policy_logp: str = "sampled") -> Callable:
    """Pure `rollout(sample_params, params, ref_params, trie, enc_tokens, rng) -> dict` for jit:
    `codes` int32[B, G, L] drawn from `sample_params` (the policy for GRPO; the frozen
    reference for offline DPO), `items` int32[B, G] (their most popular item, -1 if the SID is
    no real item), `valid` bool[B, G], `old_logp` [B, G, L] under `params`, and `ref_logp`
    under `ref_params` when `with_reference`, both of the distribution `policy_logp` names;
    `allowed` bool[B, G, L, K] (each position's trie mask) when that distribution is masked.

    sampler: `constrained` (temperature sampling inside the trie), `free` (unconstrained: the
    model may write SIDs that are no item), `beam` (the top-G constrained beams, deterministic).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown rollout sampler {sampler!r}; valid: {SAMPLERS}")
    ranges = tuple((int(o), int(s)) for o, s in zip(vocab.level_offsets, vocab.level_sizes))
    masked, policy_t = sampling_distribution(sampler, temperature, policy_logp)

    def rollout(sample_params, params, ref_params, trie, enc_tokens, rng, enc_states=None):
        b = enc_tokens.shape[0]
        enc_out, enc_mask = model.apply({"params": sample_params}, enc_tokens,
                                        enc_states=enc_states, method=EncoderDecoder.encode)
        logits_fn, cache = make_cached_logits_fn(model, sample_params, enc_out, enc_mask, ranges)
        common = dict(bos_id=BOS_ID, level_offsets=vocab.level_offsets,
                      level_sizes=vocab.level_sizes, trie=trie, level_logits=True)
        if sampler == "beam":
            out = beam_search(logits_fn, cache, batch_size=b, beam_size=group_size,
                              constrained=True, **common)
            codes = jnp.maximum(out.codes, 0)
        else:
            out = sample_sids(logits_fn, cache, rng, batch_size=b, group_size=group_size,
                              temperature=temperature, constrained=sampler == "constrained",
                              **common)
            codes = out.codes
        flat = codes.reshape(b * group_size, -1)
        items = first_items(trie, flat).reshape(b, group_size)
        result = {"codes": codes, "items": items, "valid": items >= 0}
        if masked:
            result["allowed"] = trie_lib.path_masks(trie, flat).reshape(
                b, group_size, flat.shape[1], -1)
        logp = functools.partial(group_sid_log_probs, model, enc_tokens=enc_tokens, codes=codes,
                                 ranges=ranges, enc_states=enc_states,
                                 allowed=result.get("allowed"), temperature=policy_t)
        result["old_logp"] = logp(params)
        if with_reference:
            result["ref_logp"] = logp(ref_params)
        return result

    return rollout
