"""The log-memorisation baseline on a hand-built click log."""
import numpy as np
import pytest

from onesearch_jax.eval.memorization import LogMemorizer

#                 item:   0    1    2    3    4    5
POPULARITY = np.array([10.0, 50.0, 5.0, 50.0, 1.0, 30.0])


def fitted():
    keys = np.array(["drill", "drill", "drill", "drill", "saw", "saw", "paint"])
    items = np.array([2, 4, 2, 0, 4, 5, 1])
    weights = np.array([1.0, 3.0, 1.0, 2.0, 1.0, 1.0, 0.0])
    # drill: item 4 -> 3, item 2 -> 2, item 0 -> 2 (tie: item 0 is more popular).
    # saw: items 4 and 5 tie at 1 -> 5 first (more popular). paint: zero weight -> nothing.
    return LogMemorizer().fit(keys, items, weights, POPULARITY)


def test_memorised_items_then_popularity_fallback():
    mem = fitted()
    out = mem.search(["drill", "saw", "paint", "unseen"], k=5)
    # Popularity order with ties by lower id: 1, 3, 5, 0, 2, 4.
    np.testing.assert_array_equal(out, [[4, 0, 2, 1, 3],
                                        [5, 4, 1, 3, 0],
                                        [1, 3, 5, 0, 2],
                                        [1, 3, 5, 0, 2]])
    np.testing.assert_array_equal(mem.search(["drill"], k=2), [[4, 0]])


def test_pads_when_k_exceeds_catalogue_and_int_keys():
    mem = LogMemorizer().fit(np.array([7, 7]), np.array([1, 1]), np.array([1.0, 1.0]),
                             np.array([0.0, 2.0, 1.0]))
    np.testing.assert_array_equal(mem.search(np.array([7, 8]), k=4), [[1, 2, 0, -1],
                                                                      [1, 2, 0, -1]])
    np.testing.assert_allclose(mem.item_weights, [2.0])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="item_ids must lie"):
        LogMemorizer().fit(["a"], [3], [1.0], np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        LogMemorizer().fit(["a"], [0], [-1.0], np.ones(3))
    with pytest.raises(ValueError, match="one length"):
        LogMemorizer().fit(["a", "b"], [0], [1.0], np.ones(3))
    with pytest.raises(ValueError, match="before fit"):
        LogMemorizer().search(["a"], k=1)
