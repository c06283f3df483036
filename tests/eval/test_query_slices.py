"""Query slices flag the query kinds they name, on hand-picked Home Depot-like queries."""
import numpy as np
import pytest

from onesearch_jax.eval.query_slices import real_query_slices, title_vocabulary

TITLES = ["Simpson Strong-Tie 12-Gauge Angle", "Custom Building Products 50 lb. Thinset Mortar",
          "Charlotte Pipe 3/4 in. PVC Sch. 40 Pipe"]


def test_title_vocabulary_uses_bm25_words():
    vocab = title_vocabulary(TITLES)
    assert {"simpson", "strong", "tie", "12", "gauge", "thinset", "mortar", "3", "4"} <= vocab
    assert "Simpson" not in vocab


def test_slices_flag_digits_length_and_unknown_words():
    queries = ["thinset morter", "3/4 pvc pipe", "angle", "simpson strong tie 12 gauge angle",
               "Thinset Mortar"]
    masks = real_query_slices(queries, title_vocabulary(TITLES))
    assert set(masks) == {"has_digit", "long", "short", "oov"}
    np.testing.assert_array_equal(masks["has_digit"], [False, True, False, True, False])
    np.testing.assert_array_equal(masks["long"], [False, False, False, True, False])
    np.testing.assert_array_equal(masks["short"], [True, False, True, False, True])
    np.testing.assert_array_equal(masks["oov"], [True, False, False, False, False])
    assert all(m.dtype == bool and m.shape == (5,) for m in masks.values())


def test_bad_input_raises():
    vocab = title_vocabulary(TITLES)
    with pytest.raises(ValueError, match="list of strings"):
        real_query_slices("angle", vocab)
    with pytest.raises(ValueError, match="set of words"):
        real_query_slices(["angle"], TITLES)
    with pytest.raises(ValueError, match="empty"):
        real_query_slices(["angle"], set())
    with pytest.raises(ValueError, match="query 1"):
        real_query_slices(["angle", None], vocab)
