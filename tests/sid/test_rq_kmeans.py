"""Residual k-means: hand-built two-level data, per-parent local codes, batching of parents."""
import numpy as np
import pytest

from onesearch_jax.sid.parent_batches import parent_batches
from onesearch_jax.sid.rq_kmeans import fit_residual_kmeans


def _two_level_data(seed=0):
    """Points at A_i + B_j: A in {(-10, 0), (10, 0)}, B in {(0, -1), (0, 1)}, tiny noise."""
    rng = np.random.default_rng(seed)
    a = np.array([[-10.0, 0.0], [10.0, 0.0]])
    b = np.array([[0.0, -1.0], [0.0, 1.0]])
    i, j = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    x = a[i] + b[j] + 0.01 * rng.normal(size=(400, 2))
    return x.astype(np.float32), i, j


def test_global_levels_recover_the_two_factors():
    x, i, j = _two_level_data()
    model, codes, residual = fit_residual_kmeans(x, (2, 2), last_level="global", iters=5)
    assert model.level_sizes == (2, 2)
    # Level 1 splits on the sign of x0, level 2 on the sign of x1: one code per factor value.
    assert len(set(zip(i.tolist(), codes[:, 0].tolist()))) == 2
    assert len(set(zip(j.tolist(), codes[:, 1].tolist()))) == 2
    assert np.abs(residual).max() < 0.1
    np.testing.assert_allclose(model.decode(codes) + residual, x, atol=1e-5)
    again, again_residual = model.encode(x)
    np.testing.assert_array_equal(again, codes)
    np.testing.assert_allclose(again_residual, residual, atol=1e-6)


def test_per_parent_codes_are_local_and_k_is_capped_by_parent_size():
    rng = np.random.default_rng(0)
    # Three level-1 clusters of 2, 60 and 60 points: the small parent can hold only 2 centroids.
    centers = np.array([[100.0, 0.0], [0.0, 100.0], [-100.0, -100.0]])
    sizes = [2, 60, 60]
    x = np.concatenate([c + rng.normal(size=(s, 2)) for c, s in zip(centers, sizes)])
    x = x.astype(np.float32)
    model, codes, residual = fit_residual_kmeans(x, (3, 4), last_level="per_parent", iters=5)
    assert model.level_sizes == (3, 4)
    assert codes[:, 1].min() >= 0 and codes[:, 1].max() < 4
    small_parent = codes[0, 0]
    assert model.parent_valid[small_parent].sum() == 2
    assert model.parent_valid.sum() == 2 + 4 + 4
    # Both points of the small parent sit on their own centroid: zero residual.
    np.testing.assert_allclose(residual[:2], 0.0, atol=1e-6)
    assert codes[0, 1] != codes[1, 1]
    np.testing.assert_allclose(model.decode(codes) + residual, x, atol=1e-4)
    np.testing.assert_array_equal(model.encode(x)[0], codes)


def test_many_parents_of_varied_sizes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    model, codes, _ = fit_residual_kmeans(x, (4, 12, 16), iters=3)
    counts = np.bincount(codes[:, 1], minlength=12)
    assert counts.min() < 16 < counts.max()   # some parents are capped, some are not
    for parent in range(12):
        used = np.unique(codes[codes[:, 1] == parent, 2])
        assert len(used) <= min(16, counts[parent])
        assert model.parent_valid[parent].sum() == min(16, counts[parent])
    np.testing.assert_array_equal(model.encode(x)[0], codes)


def test_parent_batches_cover_every_row_once_in_pow2_shapes():
    parents = np.array([5] * 3 + [2] * 20 + [9] * 1 + [7] * 17)
    batches = parent_batches(parents, k=4, dim=2)
    seen = np.concatenate([r for b in batches for r in b.rows])
    assert sorted(seen.tolist()) == list(range(len(parents)))
    for b in batches:
        assert b.n_pad & (b.n_pad - 1) == 0
        assert len(b.parent_ids) & (len(b.parent_ids) - 1) == 0
        for pid, rows in zip(b.parent_ids, b.rows):
            assert len(rows) <= b.n_pad
            assert (parents[rows] == pid).all()
    # Sizes 1, 3, 17 and 20 all fit the smallest (32-row) bucket.
    assert {b.n_pad for b in batches} == {32}
    # Small inputs share the largest shape (one compile) ...
    mixed = np.array([0] * 40 + [1] * 3)
    assert [b.n_pad for b in parent_batches(mixed, k=4, dim=2)] == [64]
    # ... large ones (here: k x dim centroids too big for one batch) get tight pow2 buckets.
    assert sorted(b.n_pad for b in parent_batches(mixed, k=4096, dim=4096)) == [32, 64]


def test_bad_input_raises():
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="fewer than the 16 centroids of level 1"):
        fit_residual_kmeans(x, (16, 2))
    with pytest.raises(ValueError, match="last_level"):
        fit_residual_kmeans(x, (2, 2), last_level="balanced")
    with pytest.raises(ValueError, match="per_parent last level"):
        fit_residual_kmeans(x, (2,), last_level="per_parent")
    model, _, _ = fit_residual_kmeans(x, (2, 2), last_level="global", iters=1)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        model.encode(x[:, :3])
