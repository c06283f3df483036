"""Exact cosine retrieval must agree with a brute-force sort and break ties deterministically."""
import numpy as np
import pytest

from onesearch_jax.eval.dense import DenseIndex


def test_search_matches_brute_force_cosine_across_chunks():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(300, 16)) * rng.uniform(0.1, 10, size=(300, 1))  # unnormalised
    queries = rng.normal(size=(37, 16))
    indices, scores = DenseIndex(docs, chunk_size=8).search(queries, k=10)
    unit_docs = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cosine = unit_queries @ unit_docs.T
    expected = np.argsort(-cosine, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(cosine, expected, 1), atol=1e-5)
    assert indices.shape == (37, 10) and indices.dtype == np.int64


def test_ties_go_to_lower_index_and_k_is_capped_at_corpus_size():
    docs = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    indices, scores = DenseIndex(docs).search(np.array([[1.0, 0.0]]), k=2)
    np.testing.assert_array_equal(indices, [[1, 2]])
    np.testing.assert_allclose(scores, [[1.0, 1.0]])
    indices, _ = DenseIndex(docs).search(np.array([[1.0, 0.0]]), k=10)
    np.testing.assert_array_equal(indices, [[1, 2, 0, 3]])


def test_zero_query_scores_zero_everywhere():
    indices, scores = DenseIndex(np.eye(3)).search(np.zeros((1, 3)), k=3)
    np.testing.assert_array_equal(indices, [[0, 1, 2]])
    np.testing.assert_array_equal(scores, np.zeros((1, 3)))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="2-D"):
        DenseIndex(np.ones(4))
    with pytest.raises(ValueError, match="at least one document"):
        DenseIndex(np.ones((0, 4)))
    with pytest.raises(ValueError, match="NaN"):
        DenseIndex(np.array([[np.nan, 1.0]]))
    index = DenseIndex(np.eye(4))
    with pytest.raises(ValueError, match="dim 3"):
        index.search(np.ones((1, 3)), k=1)
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.ones((1, 4)), k=0)
