"""BM25 scores checked by hand on a 3-document corpus, and top-k against brute force."""
import math

import numpy as np
import pytest

from onesearch_jax.eval.bm25 import BM25Index, simple_tokenize

DOCS = ["Red apple", "green apple-pie", "red RED car"]  # lengths 2, 3, 3; avgdl = 8/3


def test_tokenizer_splits_on_non_alphanumerics():
    assert simple_tokenize("Two-Pack 3/4in. snake_case") == [
        "two", "pack", "3", "4in", "snake", "case"]


def test_scores_match_hand_computation():
    index = BM25Index(DOCS, k1=1.2, b=0.75)
    idf_red = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    norm_len2 = 1.2 * (0.25 + 0.75 * 2 / (8 / 3))  # 0.975
    norm_len3 = 1.2 * (0.25 + 0.75 * 3 / (8 / 3))  # 1.3125
    red_d0 = idf_red * 1 * 2.2 / (1 + norm_len2)
    red_d2 = idf_red * 2 * 2.2 / (2 + norm_len3)
    idx, scores = index.search(["red"], k=3)
    np.testing.assert_array_equal(idx, [[2, 0, -1]])
    np.testing.assert_allclose(scores, [[red_d2, red_d0, 0.0]])

    idf_pie = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    pie_d1 = (idf_red + idf_pie) * 2.2 / (1 + norm_len3)  # apple has the same df as red
    apple_d0 = idf_red * 2.2 / (1 + norm_len2)
    idx, scores = index.search(["APPLE pie", "zebra"], k=2)
    np.testing.assert_array_equal(idx, [[1, 0], [-1, -1]])
    np.testing.assert_allclose(scores, [[pie_d1, apple_d0], [0.0, 0.0]])


def test_top_k_matches_dense_brute_force_with_ties():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    docs = [" ".join(rng.choice(words, size=rng.integers(1, 8))) for _ in range(300)]
    docs += docs[:20]  # exact duplicates force score ties
    queries = [" ".join(rng.choice(words, size=rng.integers(1, 4))) for _ in range(40)]
    index = BM25Index(docs)
    dense = index.score_matrix(queries).toarray()
    idx, scores = index.search(queries, k=7, batch_size=16)
    for q in range(len(queries)):
        order = np.lexsort((np.arange(len(docs)), -dense[q]))
        order = order[dense[q][order] > 0][:7]
        np.testing.assert_array_equal(idx[q, :order.size], order)
        np.testing.assert_allclose(scores[q, :order.size], dense[q][order])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="at least one document"):
        BM25Index([])
    with pytest.raises(ValueError, match="k must be"):
        BM25Index(DOCS).search(["red"], k=0)
    with pytest.raises(ValueError, match="list of strings"):
        BM25Index(DOCS).search("red", k=1)
