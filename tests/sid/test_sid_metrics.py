"""SID metrics on constructed codes with hand-computed answers."""
import numpy as np
import pytest

from onesearch_jax.sid import sid_metrics as m

# Four items, sizes (4, 2, 4); rows 0 and 1 share a SID.
CODES = np.array([[0, 0, 0],
                  [0, 0, 0],
                  [0, 1, 1],
                  [1, 0, 1]])
SIZES = (4, 2, 4)


def test_codebook_utilization_global_and_per_parent():
    np.testing.assert_allclose(m.codebook_utilization(CODES, SIZES), [2 / 4, 2 / 2, 2 / 4])
    # Level 2 per parent (parent = level-1 code): pairs (0,0), (0,1), (1,1) over 2 parents x 4.
    np.testing.assert_allclose(m.codebook_utilization(CODES, SIZES, per_parent_levels=(2,)),
                               [0.5, 1.0, 3 / 8])


def test_prefix_utilization():
    # prefixes: {0, 1} / 4; {(0,0), (0,1), (1,0)} / 8; 3 distinct SIDs / 32.
    np.testing.assert_allclose(m.prefix_utilization(CODES, SIZES), [2 / 4, 3 / 8, 3 / 32])


def test_icr_collision_rate_and_table():
    assert m.icr(CODES) == 0.5
    assert m.collision_rate(CODES) == 0.25
    assert m.collision_table(CODES) == {(0, 0, 0): [0, 1]}
    unique = np.array([[0, 1], [1, 0]])
    assert m.icr(unique) == 1.0 and m.collision_rate(unique) == 0.0
    assert m.collision_table(unique) == {}
    triple = np.array([[5], [5], [5], [6]])
    assert m.icr(triple) == 0.25 and m.collision_rate(triple) == 0.5
    assert m.collision_table(triple) == {(5,): [0, 1, 2]}


def test_reconstruction_error():
    x = np.array([[1.0, 0.0], [0.0, 0.0]])
    x_hat = np.array([[0.0, 0.0], [0.0, 2.0]])
    assert m.reconstruction_error(x, x_hat) == pytest.approx(2.5)


def test_bad_input():
    with pytest.raises(ValueError, match="level sizes"):
        m.codebook_utilization(CODES, (4, 2))
    with pytest.raises(ValueError, match="integers"):
        m.icr(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        m.icr(np.zeros((0, 5), np.int32))
    with pytest.raises(ValueError, match="shapes"):
        m.reconstruction_error(np.zeros((2, 2)), np.zeros((2, 3)))
