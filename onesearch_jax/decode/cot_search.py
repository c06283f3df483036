"""Direct-CoT decoding: write the keywords greedily, then beam-search the SID after them.

The direct-CoT variant (configs/distill.py:*:direct_cot) is trained to emit exactly K keyword
tokens (EOS-padded) before the SID, so every row's SID starts at position K. Serving it costs K
extra sequential decoder steps per query, the latency V2's self-distillation avoids.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from onesearch_jax.data.text_tokenizer import BOS_ID
from onesearch_jax.decode.beam_search import BeamResult, beam_search
from onesearch_jax.model.transformer import EncoderDecoder


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
