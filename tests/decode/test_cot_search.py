"""Direct-CoT decoding on the KV cache (serving) returns what the full-prefix reference returns:
the same greedy keywords, then the same SID beams after them."""

import functools

import jax
import numpy as np
import pytest

from onesearch_jax.decode.cot_search import cached_cot_beam_search, cot_beam_search
from onesearch_jax.decode.retrieve import SidRetriever
from tiny_decoder import tiny_decoder

TEXT_VOCAB, LEVEL_SIZES, BATCH, KEYWORDS = 40, (8, 6, 5, 4), 3, 5


@functools.lru_cache(maxsize=None)
def setup():
    return tiny_decoder(TEXT_VOCAB, LEVEL_SIZES, BATCH, seed=1, pad_row=2, pad_from=4, items=90)


@functools.partial(jax.jit, static_argnames=("search", "beams", "constrained"))
def _run(trie, search, beams, constrained):
    vocab, model, params, enc, _ = setup()
    fn = {"full": cot_beam_search, "cached": cached_cot_beam_search}[search]
    return fn(model, params, enc, keyword_len=KEYWORDS, vocab=vocab, trie=trie,
              beam_size=beams, constrained=constrained)


@pytest.mark.parametrize("beams,constrained", [(1, True), (6, True), (6, False)])
def test_cached_cot_search_equals_the_full_prefix_reference(constrained, beams):
    trie = setup()[4]
    (full, full_kw), (cached, cached_kw) = (_run(trie, s, beams, constrained)
                                            for s in ("full", "cached"))
    np.testing.assert_array_equal(cached_kw, full_kw)
    assert cached_kw.shape == (BATCH, KEYWORDS) and int(cached_kw.max()) < TEXT_VOCAB
    assert len(np.unique(np.asarray(cached_kw))) > 1  # not a degenerate constant prefix
    np.testing.assert_array_equal(cached.codes, full.codes)
    np.testing.assert_allclose(cached.scores, full.scores, rtol=5e-4, atol=1e-4)
    np.testing.assert_array_equal(cached.valid, full.valid)
    if constrained:
        assert bool(np.all(cached.valid))


def test_keywords_change_the_sid_beams():
    """The SID is read after the model's keywords: the same model with the keyword phase cut
    to one token searches other beams (the prefix is not ignored)."""
    vocab, model, params, enc, trie = setup()
    five = _run(trie, "cached", 6, True)[0]
    one = cached_cot_beam_search(model, params, enc, keyword_len=1, vocab=vocab, trie=trie,
                                 beam_size=6)[0]
    assert not np.array_equal(np.asarray(five.codes), np.asarray(one.codes))


def test_retriever_serves_direct_cot_on_the_cache():
    vocab, model, params, enc, trie = setup()
    retriever = SidRetriever(model, params, vocab, trie, beam_size=6, batch_size=2,
                             cot_keyword_len=KEYWORDS)
    codes, scores, valid = retriever.retrieve(enc)  # 3 queries over batches of 2 (padding)
    ref = _run(trie, "full", 6, True)[0]
    np.testing.assert_array_equal(codes, ref.codes)
    np.testing.assert_allclose(scores, ref.scores, rtol=5e-4, atol=1e-4)
    assert valid.all()


def test_the_sid_geometry_prior_is_added_to_each_level():
    """With per-level tables (as adc.level_score_tables makes) the search adds weight x table
    score per level: a weight of 0 changes nothing, a dominant weight ranks by the tables."""
    vocab, model, params, enc, trie = setup()
    rng = np.random.default_rng(2)
    tables = [rng.normal(size=(BATCH, 1, k)).astype(np.float32) for k in LEVEL_SIZES]
    search = functools.partial(cached_cot_beam_search, model, params, enc, keyword_len=KEYWORDS,
                               vocab=vocab, trie=trie, beam_size=6)
    plain = search()[0]
    zero = search(tables=tables, prior_weight=0.0)[0]
    np.testing.assert_array_equal(zero.codes, plain.codes)
    np.testing.assert_allclose(zero.scores, plain.scores, rtol=1e-6, atol=1e-6)
    big = search(tables=tables, prior_weight=1e4)[0]
    prior = sum(np.take_along_axis(t[:, 0], np.asarray(big.codes)[:, :, l], axis=1)
                for l, t in enumerate(tables))  # [B, beams]: each beam's summed table score
    assert np.all(np.diff(prior, axis=1) <= 1e-5)  # beams in the tables' order
    assert not np.array_equal(np.asarray(big.codes), np.asarray(plain.codes))
