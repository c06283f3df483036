"""Hand-computed checks of the ranking metrics and their aggregation."""
import math

import numpy as np
import pytest

from onesearch_jax.eval.metrics import aggregate, per_query_metrics, valid_sid_rate


def test_binary_metrics_match_hand_computation():
    ranked = [["a", "b", "c", "d"], ["x", "y"], ["p", "q"]]
    targets = [{"b", "d", "z"}, {"nothing"}, set()]
    m = per_query_metrics(ranked, targets, ks=(1, 3))
    # Query 0: hits at ranks 2 and 4; 3 targets.
    assert m["hr@1"][0] == 0.0 and m["hr@3"][0] == 1.0
    assert m["mrr@1"][0] == 0.0 and m["mrr@3"][0] == pytest.approx(0.5)
    assert m["recall@3"][0] == pytest.approx(1 / 3)
    assert m["precision@1"][0] == 0.0 and m["precision@3"][0] == pytest.approx(1 / 3)
    dcg = 1 / math.log2(3)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@3"][0] == pytest.approx(dcg / idcg)
    assert m["ndcg@1"][0] == 0.0
    # Query 1: no hit.
    for name in ("hr@3", "mrr@3", "ndcg@3", "recall@3", "precision@3"):
        assert m[name][1] == 0.0
    # Query 2: empty targets -> NaN everywhere.
    assert all(np.isnan(m[name][2]) for name in m)


def test_ndcg_with_graded_gains_uses_ideal_over_all_gains():
    ranked = [[1, 2, 3]]
    gains = [{3: 3.0, 1: 1.0, 9: 2.0}]
    m = per_query_metrics(ranked, [{1, 3, 9}], ks=(2, 3), gains=gains)
    dcg3 = 1.0 + 3.0 / math.log2(4)
    idcg3 = 3.0 + 2.0 / math.log2(3) + 1.0 / math.log2(4)
    assert m["ndcg@3"][0] == pytest.approx(dcg3 / idcg3)
    assert m["ndcg@2"][0] == pytest.approx(1.0 / (3.0 + 2.0 / math.log2(3)))


def test_repeated_item_counts_once_and_keeps_positions():
    m = per_query_metrics([["a", "a", "b"]], [{"a", "b"}], ks=(3,))
    assert m["recall@3"][0] == 1.0
    dcg = 1.0 + 1.0 / math.log2(4)  # "a" at rank 1, "b" at rank 3; the repeat earns nothing.
    assert m["ndcg@3"][0] == pytest.approx(dcg / (1.0 + 1.0 / math.log2(3)))


def test_short_ranked_list_and_numpy_ids():
    m = per_query_metrics([np.array([5, -1, -1])], [{np.int64(7), 5}], ks=(10,))
    assert m["hr@10"][0] == 1.0 and m["mrr@10"][0] == 1.0 and m["recall@10"][0] == 0.5


def test_aggregate_names_slices_and_counts():
    per_query = {"hr@10": np.array([1.0, 0.0, np.nan, 1.0]),
                 "mrr@10": np.array([0.5, 0.0, np.nan, 1.0])}
    tail = np.array([True, True, True, False])
    neg = np.array([False, False, True, False])
    out = aggregate(per_query, {"tail": tail, "negation": neg}, prefix="rel_")
    assert out["rel_hr@10"] == pytest.approx(2 / 3)
    assert out["rel_mrr@10"] == pytest.approx(0.5)
    assert out["rel_count"] == 3
    assert out["rel_hr@10/tail"] == pytest.approx(0.5)
    assert out["rel_mrr@10/tail"] == pytest.approx(0.25)
    assert out["rel_count/tail"] == 2
    assert np.isnan(out["rel_hr@10/negation"]) and out["rel_count/negation"] == 0
    assert set(out) == {"rel_hr@10", "rel_mrr@10", "rel_count", "rel_hr@10/tail",
                        "rel_mrr@10/tail", "rel_count/tail", "rel_hr@10/negation",
                        "rel_mrr@10/negation", "rel_count/negation"}


def test_bad_input_raises():
    with pytest.raises(ValueError, match="targets"):
        per_query_metrics([[1]], [{1}, {2}])
    with pytest.raises(ValueError, match="positive integer"):
        per_query_metrics([[1]], [{1}], ks=(0,))
    with pytest.raises(ValueError, match="non-negative"):
        per_query_metrics([[1]], [{1}], gains=[{1: -1.0}])
    with pytest.raises(ValueError, match="slice 'tail'"):
        aggregate({"hr@10": np.zeros(3)}, {"tail": np.array([1, 0, 1])})
    with pytest.raises(ValueError, match="bool"):
        valid_sid_rate(np.array([1, 0]))


def test_valid_sid_rate():
    assert valid_sid_rate(np.array([[True, False], [True, True]])) == 0.75
