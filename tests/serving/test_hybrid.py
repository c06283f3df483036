import numpy as np
import pytest

from onesearch_jax.eval.bm25 import BM25Index
from onesearch_jax.serving.hybrid import HybridRanker, hybrid_scores

TITLES = ["red drill", "blue drill bits", "red paint", "garden hose"]
VECTORS = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 2.0], [-1.0, 0.0]])  # normalised inside


def test_hybrid_scores_by_hand():
    np.testing.assert_allclose(hybrid_scores([0.5, 0.2], [2.0, 4.0], 4.0, 0.5), [0.75, 0.7])
    np.testing.assert_allclose(hybrid_scores([0.5, 0.2], [0.0, 0.0], 0.0, 0.5), [0.5, 0.2])


def test_search_equals_hand_computed_scores_over_the_catalog():
    ranker = HybridRanker(TITLES, VECTORS, weight=0.5)
    q = np.array([[0.0, 1.0]])
    bm25 = BM25Index(TITLES).score_matrix(["red drill"]).toarray()[0]
    cosine = np.array([0.0, 0.6, 1.0, 0.0])
    expect = cosine + 0.5 * bm25 / bm25.max()
    order = np.lexsort((np.arange(4), -expect))
    assert ranker.search(["red drill"], q, k=4) == [order.tolist()]
    assert ranker.search(["red drill"], q, k=2) == [order[:2].tolist()]
    # Over a candidate set the same scores order the candidates (BM25 still divided by the
    # query's best over the whole catalog, so both rankings agree on shared items).
    cands = [3, 1, 0]
    sub = sorted(cands, key=lambda i: -expect[i])
    assert ranker.rerank(["red drill"], q, [cands, []], k=3)[0] == sub
    assert ranker.rerank(["red drill", "x"], np.vstack([q, q]), [cands, []], k=3)[1] == []


def test_weight_zero_is_dense_and_bad_inputs_are_named():
    q = np.array([[1.0, 0.0]])
    assert HybridRanker(TITLES, VECTORS, 0.0).search(["garden hose"], q, k=1) == [[0]]
    with pytest.raises(ValueError, match="BM25 weight"):
        HybridRanker(TITLES, VECTORS, -1.0)
    with pytest.raises(ValueError, match="4 titles but 3"):
        HybridRanker(TITLES, VECTORS[:3], 0.5)
