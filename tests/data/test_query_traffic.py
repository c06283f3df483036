"""Head / torso / tail / unseen of the training logs' traffic, by hand."""
import numpy as np
import pytest

from onesearch_jax.data import query_traffic as qt


def test_slices_follow_the_cumulative_traffic_share():
    # Total 20: query 2 (10 searches) starts at share 0 -> head; query 0 (6) at 0.5 -> torso;
    # query 3 (2) at 0.8 -> tail; query 4 (2) at 0.9 -> tail; query 1 never searched -> unseen.
    counts = np.array([6, 0, 10, 2, 2])
    np.testing.assert_array_equal(qt.traffic_slices(counts),
                                  [qt.TORSO, qt.UNSEEN, qt.HEAD, qt.TAIL, qt.TAIL])
    assert (qt.traffic_slices(np.zeros(3)) == qt.UNSEEN).all()
    with pytest.raises(ValueError, match="non-negative"):
        qt.traffic_slices(np.array([1, -1]))


def test_slice_weights_pick_one_weight_per_query():
    w = qt.slice_weights([qt.HEAD, qt.UNSEEN, qt.TAIL], (0.0, 10.0, 30.0, 50.0))
    np.testing.assert_array_equal(w, [0.0, 50.0, 30.0])
    with pytest.raises(ValueError, match="4 values"):
        qt.slice_weights([0], (1.0, 2.0))
