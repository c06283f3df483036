"""Reciprocal-rank fusion checked on hand-computed scores."""
import numpy as np
import pytest

from onesearch_jax.eval.rank_fusion import rrf


def test_hand_computed_fusion():
    bm25 = [["a", "b", "c"]]
    model = [["c", "a", "d"]]
    # k=1: a = 1/2 + 1/3 = .833, c = 1/4 + 1/2 = .75, b = 1/3, d = 1/4.
    assert rrf([bm25, model], k=1) == [["a", "c", "b", "d"]]
    assert rrf([bm25, model], k=1, top=2) == [["a", "c"]]


def test_ties_prefer_better_rank_then_earlier_system():
    # x and y each appear once at rank 1; x comes from the earlier system.
    assert rrf([[["x"]], [["y"]]]) == [["x", "y"]]
    # k=0: p = 1 + 1/3; q = 1/2 + 1/2 = 1 ties r = 1/1, and r wins on its better best rank.
    assert rrf([[["p", "q"]], [["r", "q", "p"]]], k=0) == [["p", "r", "q"]]


def test_pad_and_repeats_are_skipped():
    a = [np.array([5, 5, -1])]
    b = [np.array([7, -1, -1])]
    assert rrf([a, b], k=60, pad=-1) == [[5, 7]]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="system 1"):
        rrf([[["a"]], [["a"], ["b"]]])
    with pytest.raises(ValueError, match="top"):
        rrf([[["a"]]], top=0)
