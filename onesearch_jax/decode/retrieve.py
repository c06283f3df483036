"""From encoder inputs to ranked items: jitted beam search over SIDs, then SID -> items.

Batches are padded to a fixed size so one compiled program serves every call. Colliding SIDs
expand to all their items (most popular first), in beam order, until k items are listed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.data.text_tokenizer import BOS_ID
from onesearch_jax.decode.beam_search import beam_search
from onesearch_jax.decode.cot_search import cot_beam_search
from onesearch_jax.model.transformer import EncoderDecoder, make_cached_logits_fn
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab


class SidRetriever:
    """`retrieve(enc_tokens)` -> (codes [B,K,L], scores [B,K], valid [B,K]) as numpy."""

    def __init__(
        self,
        model: EncoderDecoder,
        params,
        vocab: SidVocab,
        trie: SidTrie,
        *,
        beam_size: int,
        constrained: bool = True,
        batch_size: int = 32,
        cot_keyword_len: int = 0,
    ):
        """`cot_keyword_len` > 0: a direct-CoT model, which writes that many keyword tokens
        before the SID (decode/cot_search.py; no KV cache, the reference decoder path)."""
        self.model, self.params, self.vocab, self.trie = model, params, vocab, trie
        self.beam_size, self.constrained, self.batch_size = beam_size, constrained, batch_size
        self.cot_keyword_len = int(cot_keyword_len)
        self._search = jax.jit(self._cot_search_impl if self.cot_keyword_len else self._search_impl)

    def _cot_search_impl(self, params, trie, enc_tokens):
        result, _ = cot_beam_search(self.model, params, enc_tokens,
                                    keyword_len=self.cot_keyword_len, vocab=self.vocab, trie=trie,
                                    beam_size=self.beam_size, constrained=self.constrained)
        return result

    def _search_impl(self, params, trie, enc_tokens):
        enc_out, enc_mask = self.model.apply(
            {"params": params}, enc_tokens, method=EncoderDecoder.encode
        )
        logits_fn, cache = make_cached_logits_fn(
            self.model,
            params,
            enc_out,
            enc_mask,
            zip(self.vocab.level_offsets, self.vocab.level_sizes),
        )
        return beam_search(
            logits_fn,
            cache,
            batch_size=enc_tokens.shape[0],
            beam_size=self.beam_size,
            bos_id=BOS_ID,
            level_offsets=self.vocab.level_offsets,
            level_sizes=self.vocab.level_sizes,
            trie=trie,
            constrained=self.constrained,
            level_logits=True,
        )

    def retrieve(self, enc_tokens: np.ndarray):
        enc_tokens = np.asarray(enc_tokens, np.int32)
        n = len(enc_tokens)
        codes, scores, valid = [], [], []
        for lo in range(0, n, self.batch_size):
            chunk = enc_tokens[lo : lo + self.batch_size]
            pad = self.batch_size - len(chunk)
            padded = np.pad(chunk, ((0, pad), (0, 0))) if pad else chunk
            padded[len(chunk) :, 0] = BOS_ID  # keep padded rows non-empty (no all-masked attention)
            out = jax.device_get(self._search(self.params, self.trie, jnp.asarray(padded)))
            codes.append(out.codes[: len(chunk)])
            scores.append(out.scores[: len(chunk)])
            valid.append(out.valid[: len(chunk)])
        if not codes:
            depth = self.vocab.num_levels
            return (
                np.zeros((0, self.beam_size, depth), np.int32),
                np.zeros((0, self.beam_size), np.float32),
                np.zeros((0, self.beam_size), bool),
            )
        return np.concatenate(codes), np.concatenate(scores), np.concatenate(valid)


def items_from_beams(
    trie: SidTrie, codes: np.ndarray, valid: np.ndarray, k: int
) -> list[list[int]]:
    """Per query, up to k item indices: each valid beam's items in beam order, no repeats."""
    out = []
    for row_codes, row_valid in zip(codes, valid):
        items, seen = [], set()
        good = row_codes[row_valid]
        for sid_items in trie.sid_items(good) if len(good) else []:
            for i in sid_items.tolist():
                if i not in seen:
                    seen.add(i)
                    items.append(i)
            if len(items) >= k:
                break
        out.append(items[:k])
    return out
