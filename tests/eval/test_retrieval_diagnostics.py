"""Seen/unseen recall and gold-prefix survival, by hand."""
import numpy as np

from onesearch_jax.eval.retrieval_diagnostics import prefix_survival, split_recall


def test_split_recall_averages_over_queries_with_each_kind():
    ranked = [["a", "b", "x"], ["c", "y"], ["z"]]
    targets = [{"a", "u"}, {"c", "d"}, {"u2"}]
    seen = {"a", "c", "d"}
    out = split_recall(ranked, targets, seen, k=2)
    # seen: query 0 -> {a} found 1/1; query 1 -> {c, d} found 1/2; query 2 has none.
    assert out["recall@2/seen_targets"] == 0.75 and out["num_queries/seen_targets"] == 2
    # unseen: query 0 -> {u} 0/1; query 2 -> {u2} 0/1.
    assert out["recall@2/unseen_targets"] == 0.0 and out["num_queries/unseen_targets"] == 2
    assert np.isnan(split_recall([["a"]], [{"a"}], {"a"})["recall@10/unseen_targets"])


def test_prefix_survival_counts_the_levels_each_gold_sid_keeps():
    beams = np.array([[[1, 2, 3], [1, 4, 0], [9, 9, 9]]])      # 1 query, 3 beams, L = 3
    valid = np.array([[True, True, False]])
    gold = [np.array([[1, 2, 3],     # survives all 3 levels
                      [1, 4, 5],     # 2 levels
                      [9, 9, 9]])]   # only in the invalid beam: none
    np.testing.assert_allclose(prefix_survival(beams, valid, gold), [2 / 3, 2 / 3, 1 / 3])
