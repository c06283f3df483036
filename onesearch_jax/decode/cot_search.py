"""Direct-CoT decoding: write the keywords greedily, then beam-search the SID after them.

The direct-CoT variant (configs/distill.py:*:direct_cot) is trained to emit exactly K keyword
tokens (EOS-padded) before the SID, so every row's SID starts at position K. Serving it costs K
extra sequential decoder steps per query, the latency V2's self-distillation avoids.
`cached_cot_beam_search` (serving) runs them on the KV cache, as V1's search runs; the
full-prefix `cot_beam_search` is the reference it is tested against.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from onesearch_jax.data.text_tokenizer import BOS_ID
from onesearch_jax.decode.beam_search import BeamResult, beam_search
from onesearch_jax.decode.score_prior import with_prior
from onesearch_jax.model.transformer import EncoderDecoder, empty_self_cache


def greedy_keywords(model: EncoderDecoder, params, enc_out, enc_mask, num_tokens: int,
                    text_vocab_size: int):
    """int32[B, num_tokens] keyword tokens, argmax over text tokens only, one step at a time."""
    seq = jnp.full((enc_out.shape[0], 1), BOS_ID, jnp.int32)
    for _ in range(num_tokens):
        logits = model.apply({"params": params}, enc_out, enc_mask, seq,
                             method=EncoderDecoder.decode)[:, -1, :text_vocab_size]
        seq = jnp.concatenate([seq, jnp.argmax(logits, -1).astype(jnp.int32)[:, None]], 1)
    return seq[:, 1:]


def cot_beam_search(model: EncoderDecoder, params, enc_tokens, *, keyword_len: int, vocab,
                    trie, beam_size: int, constrained: bool = True,
                    enc_states=None) -> tuple[BeamResult, jax.Array]:
    """(SID beams after the model's own keywords, those keywords int32[B, keyword_len])."""
    enc_out, enc_mask = model.apply({"params": params}, enc_tokens, enc_states=enc_states,
                                    method=EncoderDecoder.encode)
    prefix = greedy_keywords(model, params, enc_out, enc_mask, keyword_len, vocab.text_vocab_size)

    def logits_fn(state, tokens, step):
        out, mask, kw = state
        inputs = jnp.concatenate([tokens[:, :1], kw, tokens[:, 1:]], 1)
        logits = model.apply({"params": params}, out, mask, inputs, method=EncoderDecoder.decode)
        return logits[:, keyword_len + step], state

    result = beam_search(logits_fn, (enc_out, enc_mask, prefix), batch_size=enc_tokens.shape[0],
                         beam_size=beam_size, bos_id=BOS_ID, level_offsets=vocab.level_offsets,
                         level_sizes=vocab.level_sizes, trie=trie, constrained=constrained)
    return result, prefix


def cached_cot_beam_search(model: EncoderDecoder, params, enc_tokens, *, keyword_len: int,
                           vocab, trie, beam_size: int, constrained: bool = True,
                           enc_states=None, tables=None,
                           prior_weight: float = 0.0) -> tuple[BeamResult, jax.Array]:
    """`cot_beam_search` on the KV cache: each keyword step decodes one position over the text
    tokens, and the SID's beams start from the keywords' cache (tiled per beam by the search).
    `tables` (adc.level_score_tables): the SID-geometry prior added to each level's logits with
    `prior_weight`, as V1's serving adds it."""
    enc_out, enc_mask = model.apply({"params": params}, enc_tokens, enc_states=enc_states,
                                    method=EncoderDecoder.encode)
    cross = model.apply({"params": params}, enc_out, method=EncoderDecoder.cross_cache)

    def step(tokens, position, cache, logit_range):
        return model.apply({"params": params}, tokens, position, cache, cross, enc_mask,
                           logit_range, method=EncoderDecoder.decode_step)

    # Position t's logits give keyword t; its input is BOS, then keyword t-1.
    token = jnp.full((enc_out.shape[0],), BOS_ID, jnp.int32)
    cache, keywords = empty_self_cache(model.cfg, enc_out.shape[0]), []
    for position in range(keyword_len):
        logits, cache = step(token, position, cache, (0, vocab.text_vocab_size))
        token = jnp.argmax(logits, -1).astype(jnp.int32)
        keywords.append(token)
    ranges = tuple(zip(vocab.level_offsets, vocab.level_sizes))

    def logits_fn(state, tokens, level: int):
        # SID level l is read at position K + l, whose input is the last keyword (l = 0) or
        # the SID token before it (the search's tokens[:, l], after its BOS).
        cache, last_keyword = state
        inputs = last_keyword if level == 0 else tokens[:, level]
        logits, cache = step(inputs, keyword_len + level, cache, ranges[level])
        return logits, (cache, last_keyword)

    if tables is not None:
        logits_fn = with_prior(logits_fn, tables, prior_weight, vocab.level_offsets,
                               enc_tokens.shape[0])
    result = beam_search(logits_fn, (cache, token), batch_size=enc_tokens.shape[0],
                         beam_size=beam_size, bos_id=BOS_ID, level_offsets=vocab.level_offsets,
                         level_sizes=vocab.level_sizes, trie=trie, constrained=constrained,
                         level_logits=True)
    return result, jnp.stack(keywords, 1)
