"""Serving on a mesh (parameters sharded as in training, queries split over the batch axes)
returns what serving on one device returns."""
import functools

import flax.linen as nn
import jax
import numpy as np
import pytest

from onesearch_jax import sharding
from onesearch_jax.decode.retrieve import SidRetriever
from onesearch_jax.model import presets
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab

TEXT_VOCAB, LEVEL_SIZES, QUERIES = 40, (8, 6, 5, 4, 4), 11


@functools.lru_cache(maxsize=None)
def setup():
    vocab = SidVocab(TEXT_VOCAB, LEVEL_SIZES)
    d = presets.get_preset("tiny")
    d.update(vocab_size=vocab.vocab_size, vocab_multiple=128, dropout_rate=0.0)
    model = build_model(presets.TransformerConfig(**d))
    rng = np.random.default_rng(0)
    enc = rng.integers(3, TEXT_VOCAB, (QUERIES, 9)).astype(np.int32)
    enc[1, 5:] = 0
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), enc[:2], enc[:2, :5])["params"])
    params = jax.tree.map(lambda x: 3 * x, params)  # sharp preferences: well-separated beams
    codes = np.stack([rng.integers(0, s, 150) for s in LEVEL_SIZES], axis=1)
    return vocab, model, params, enc, SidTrie.build(codes, LEVEL_SIZES)


@pytest.mark.parametrize("shape", [(2, 2, 2), (1, 2, 4), (8, 1, 1)])
def test_sharded_search_equals_one_device(shape):
    vocab, model, params, enc, trie = setup()
    one = SidRetriever(model, params, vocab, trie, beam_size=6, batch_size=8).search(enc)
    mesh = sharding.make_mesh(shape)
    retriever = SidRetriever(model, params, vocab, trie, beam_size=6, batch_size=8, mesh=mesh,
                             rules=sharding.DEFAULT_RULES)
    split = [leaf.sharding.spec for leaf in jax.tree.leaves(retriever.params)]
    if shape[1] * shape[2] > 1:  # fsdp or tensor axes: the parameters really are split
        assert any(any(axis is not None for axis in spec) for spec in split)
    out = retriever.search(enc)  # 11 queries: a full batch of 8 and a padded one
    np.testing.assert_array_equal(out.codes, one.codes)
    np.testing.assert_array_equal(out.leaves, one.leaves)
    np.testing.assert_allclose(out.scores, one.scores, rtol=1e-3, atol=1e-4)  # f32 sums reordered
    assert out.valid.all()


def test_a_batch_that_does_not_split_over_the_mesh_is_padded():
    vocab, model, params, enc, trie = setup()
    one = SidRetriever(model, params, vocab, trie, beam_size=6, batch_size=1).search(enc[:3])
    retriever = SidRetriever(model, params, vocab, trie, beam_size=6, batch_size=1,
                             mesh=sharding.make_mesh((2, 2, 2)))
    assert retriever.batch_size == 4  # the 4 batch shards of (data 2, fsdp 2)
    out = retriever.search(enc[:3])
    np.testing.assert_array_equal(out.codes, one.codes)
    np.testing.assert_allclose(out.scores, one.scores, rtol=1e-3, atol=1e-4)
