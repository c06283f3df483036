"""The KV-cached decoder (the serving path) returns what the full-prefix decoder returns."""

import functools

import jax
import numpy as np
import pytest

from onesearch_jax.decode.beam_search import beam_search
from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.decode.sampling import sample_sids
from onesearch_jax.model.transformer import (EncoderDecoder, make_cached_logits_fn,
                                              make_logits_fn, target_platform)
from tiny_decoder import tiny_decoder

TEXT_VOCAB, LEVEL_SIZES, BOS, BATCH = 40, (8, 6, 5, 4, 4), 2, 3


@functools.lru_cache(maxsize=None)
def setup():
    return tiny_decoder(TEXT_VOCAB, LEVEL_SIZES, BATCH, seed=0, pad_row=1, pad_from=5, items=120)


def _decoders():
    vocab, model, params, enc, _ = setup()
    enc_out, enc_mask = model.apply({"params": params}, enc, method=EncoderDecoder.encode)
    full = (make_logits_fn(model, params), (enc_out, enc_mask), False)
    ranges = zip(vocab.level_offsets, vocab.level_sizes)
    cached_fn, cache = make_cached_logits_fn(model, params, enc_out, enc_mask, ranges)
    return {"full": full, "cached": (cached_fn, cache, True)}


@functools.partial(jax.jit, static_argnames=("beams", "constrained"))
def _beams(trie, beams, constrained):
    vocab = setup()[0]
    out = {}
    for name, (fn, state, level_logits) in _decoders().items():
        out[name] = beam_search(
            fn,
            state,
            batch_size=BATCH,
            beam_size=beams,
            bos_id=BOS,
            level_offsets=vocab.level_offsets,
            level_sizes=vocab.level_sizes,
            trie=trie,
            constrained=constrained,
            level_logits=level_logits,
        )
    return out


@pytest.mark.parametrize("constrained", [True, False])
@pytest.mark.parametrize("beams", [1, 7])
def test_cached_beam_search_equals_full_prefix_decoding(constrained, beams):
    out = _beams(setup()[4], beams, constrained)
    full, cached = out["full"], out["cached"]
    np.testing.assert_array_equal(cached.codes, full.codes)
    np.testing.assert_allclose(cached.scores, full.scores, rtol=5e-4, atol=1e-4)
    np.testing.assert_array_equal(cached.valid, full.valid)
    if constrained:
        assert bool(np.all(cached.valid))


def test_cached_sampling_equals_full_prefix_sampling():
    vocab, _, _, _, trie = setup()
    group = 5

    @jax.jit
    def draw(key):
        return {
            name: sample_sids(
                fn,
                state,
                key,
                batch_size=BATCH,
                group_size=group,
                temperature=1.0,
                bos_id=BOS,
                level_offsets=vocab.level_offsets,
                level_sizes=vocab.level_sizes,
                trie=trie,
                level_logits=level_logits,
            )
            for name, (fn, state, level_logits) in _decoders().items()
        }

    out = draw(jax.random.key(3))
    np.testing.assert_array_equal(out["cached"].codes, out["full"].codes)
    np.testing.assert_allclose(
        out["cached"].token_logprobs, out["full"].token_logprobs, rtol=5e-4, atol=1e-4
    )
    assert bool(np.all(out["cached"].valid))


@pytest.mark.parametrize("beams", [1, 7])
def test_one_query_traced_for_a_gpu_finds_the_same_beams(beams):
    """A batch-1 search traced for a GPU (its first step's single row run as two, the two-pass
    decoding norms, the folded cross-attention) finds this CPU's beams; with one beam every
    step is a single row."""
    vocab, model, params, enc, trie = setup()
    one = enc[1:2]  # the row with padding

    def search(params, enc):
        enc_out, enc_mask = model.apply({"params": params}, enc, method=EncoderDecoder.encode)
        fn, cache = make_cached_logits_fn(model, params, enc_out, enc_mask,
                                          zip(vocab.level_offsets, vocab.level_sizes))
        return beam_search(fn, cache, batch_size=1, beam_size=beams, bos_id=BOS,
                           level_offsets=vocab.level_offsets, level_sizes=vocab.level_sizes,
                           trie=trie, level_logits=True)

    ref = jax.jit(search)(params, one)
    with target_platform("gpu"):
        gpu = jax.jit(search)(params, one)
    np.testing.assert_array_equal(gpu.codes, ref.codes)
    np.testing.assert_allclose(gpu.scores, ref.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(gpu.leaves, ref.leaves)


def test_retriever_uses_cached_decoder_with_same_results():
    vocab, model, params, enc, trie = setup()
    retriever = SidRetriever(model, params, vocab, trie, beam_size=7, batch_size=2)
    codes, scores, valid = retriever.retrieve(enc)  # 3 queries over batches of 2 (padding)
    ref = _beams(trie, 7, True)["full"]
    np.testing.assert_array_equal(codes, ref.codes)
    np.testing.assert_allclose(scores, ref.scores, rtol=5e-4, atol=1e-4)
    assert valid.all()


def test_level_logits_need_level_scoring():
    vocab, _, _, _, trie = setup()
    fn, state, _ = _decoders()["cached"]
    with pytest.raises(ValueError, match="score_over='level'"):
        beam_search(
            fn,
            state,
            batch_size=BATCH,
            beam_size=2,
            bos_id=BOS,
            level_offsets=vocab.level_offsets,
            level_sizes=vocab.level_sizes,
            trie=trie,
            score_over="vocab",
            level_logits=True,
        )
