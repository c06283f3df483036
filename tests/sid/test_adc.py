"""ADC tables: their sum is q . x_hat, the beam search over them finds the exact best SIDs, and
the prior lookup picks each beam row's query and parent."""
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.decode.retrieve import SidRetriever, rerank_by_vectors
from onesearch_jax.decode.score_prior import table_scores
from onesearch_jax.sid import adc
from onesearch_jax.sid.codebooks import KHQEConfig
from onesearch_jax.sid.khqe import fit_and_encode_khqe
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(300, 8)).astype(np.float32)
    cfg = KHQEConfig(level_sizes=(6, 4, 3), opq_subspaces=2, opq_codes=4, iters=5, opq_iters=3)
    khqe, codes = fit_and_encode_khqe(items, cfg)
    return khqe, codes, rng.normal(size=(5, 8)).astype(np.float32)


@pytest.mark.parametrize("suffix", ["opq", "dedup"])
def test_table_sums_equal_query_dot_reconstruction(suffix):
    rng = np.random.default_rng(1)
    items = rng.normal(size=(200, 8)).astype(np.float32)
    cfg = KHQEConfig(level_sizes=(5, 3, 2), suffix=suffix, opq_subspaces=2, opq_codes=4,
                     iters=5, opq_iters=3)
    khqe, codes = fit_and_encode_khqe(items, cfg)
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    tables = adc.level_score_tables(khqe, queries)
    assert [t.shape[2] for t in tables] == list(khqe.level_sizes)
    assert adc.parent_levels(khqe) == (False, False, True, False, False)
    assert tables[2].shape[1] == 3  # the per-parent level is indexed by the level-2 code
    np.testing.assert_allclose(adc.sid_scores(tables, codes, adc.parent_levels(khqe)),
                               queries @ khqe.decode(codes).T, rtol=1e-4, atol=1e-4)


def test_table_scores_pick_row_query_and_parent():
    # 2 queries, level 1 (index 1) depends on the level-0 code: table[b, parent, code].
    t0 = np.array([[[1.0, 2.0]], [[3.0, 4.0]]], np.float32)              # [2, 1, 2]
    t1 = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)          # [2, 2, 3]
    offsets = (10, 12)
    # 2 beams per query: rows 0,1 -> query 0, rows 2,3 -> query 1; token 11 = level-0 code 1.
    tokens = jnp.array([[0, 10], [0, 11], [0, 11], [0, 10]], jnp.int32)
    got = np.asarray(table_scores([t0, t1], tokens, 1, offsets, batch_size=2))
    np.testing.assert_array_equal(got, [t1[0, 0], t1[0, 1], t1[1, 1], t1[1, 0]])
    first = np.asarray(table_scores([t0, t1], tokens[:2, :1], 0, offsets, batch_size=2))
    np.testing.assert_array_equal(first, [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="multiple of batch_size"):
        table_scores([t0, t1], tokens[:3], 1, offsets, batch_size=2)


def test_adc_beam_search_with_every_beam_is_exhaustive(fitted):
    khqe, codes, queries = fitted
    vocab = SidVocab(8, khqe.level_sizes)
    trie = SidTrie.build(codes, vocab.level_sizes)
    sids = np.asarray(trie.all_sids())
    exact = adc.sid_scores(adc.level_score_tables(khqe, queries), sids, adc.parent_levels(khqe))
    retriever = SidRetriever(None, None, vocab, trie, beam_size=len(sids), batch_size=2,
                             khqe=khqe)
    enc = np.ones((len(queries), 3), np.int32)
    got, scores, valid = retriever.retrieve(enc, queries)
    assert valid.all()
    for b in range(len(queries)):
        order = np.argsort(-exact[b], kind="stable")
        np.testing.assert_allclose(scores[b], exact[b][order], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="query_vectors"):
        retriever.retrieve(enc)


def test_adc_beam_search_narrow_beam_is_real_and_sorted(fitted):
    khqe, codes, queries = fitted
    vocab = SidVocab(8, khqe.level_sizes)
    trie = SidTrie.build(codes, vocab.level_sizes)
    retriever = SidRetriever(None, None, vocab, trie, beam_size=4, batch_size=5, khqe=khqe)
    got, scores, valid = retriever.retrieve(np.ones((5, 2), np.int32), queries)
    real = {tuple(c) for c in codes.tolist()}
    assert valid.all() and all(tuple(c) in real for c in got.reshape(-1, 5).tolist())
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_rerank_by_vectors_orders_candidates_by_dot_product():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], np.float32)
    q = np.array([[0.0, 1.0], [1.0, 0.1]], np.float32)
    assert rerank_by_vectors([[0, 1, 2], [1, 2], []], np.vstack([q, q[:1]]), items, k=2) == [
        [1, 2], [2, 1], []]


def test_rerank_fusion_blends_beam_order_and_dense_order():
    # Beam order [0, 1, 2]; dense order [2, 1, 0]. RRF(k=0 is degenerate; use k=1):
    # item 0: 1/1 + 1/3, item 1: 1/2 + 1/2, item 2: 1/3 + 1/1 -> ties 0 and 2 keep beam order.
    items = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]], np.float32)
    q = np.array([[1.0, 0.0]], np.float32)
    assert rerank_by_vectors([[0, 1, 2]], q, items, k=3, fuse_k=1.0) == [[0, 2, 1]]
    assert rerank_by_vectors([[0, 1, 2]], q, items, k=3) == [[2, 1, 0]]


def test_rerank_beams_by_vectors_adds_weighted_cosine_to_each_items_beam_score():
    from onesearch_jax.decode.beam_search import BeamResult
    from onesearch_jax.decode.retrieve import items_from_beams, rerank_beams_by_vectors
    from onesearch_jax.sid.trie import LeafItems

    # Leaves: 0 -> items [3, 0] (colliding SID, most popular first), 1 -> [1], 2 -> [2].
    table = LeafItems(np.array([0, 2, 3, 4]), np.array([3, 0, 1, 2]))
    items = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.0, 0.0]], np.float32)
    q = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    leaves = np.array([[0, 1, 2], [2, -1, -1]])
    result = BeamResult(codes=np.zeros((2, 3, 2), np.int32),
                        scores=np.array([[-1.0, -1.5, -3.0], [-0.5, -9.0, -9.0]], np.float32),
                        valid=leaves >= 0, leaves=leaves)
    # Weight 0: exactly the beam order.
    assert rerank_beams_by_vectors(table, result, q, items, np.zeros(2), k=10) == \
        items_from_beams(table, leaves, 10)
    # Weight 1, query 0: item 3 -1 + 0, item 0 -1 + 0, item 1 -1.5 + 1 = -0.5, item 2 -3 + 0.8.
    assert rerank_beams_by_vectors(table, result, q, items, np.array([1.0, 1.0]), k=3) == [
        [1, 3, 0], [2]]
    # Weight 3: item 2 scores -3 + 2.4 = -0.6, above items 3 and 0 (-1), below item 1 (1.5).
    assert rerank_beams_by_vectors(table, result, q, items, np.array([3.0, 0.0]), k=4) == [
        [1, 2, 3, 0], [2]]
