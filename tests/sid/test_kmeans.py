"""k-means: hand-checkable 1-D case, blob recovery, chunking, empty-cluster repair, batching."""
import numpy as np
import pytest

from onesearch_jax.sid import kmeans
from onesearch_jax.sid.assign import assign


def _blobs(n_per, centers, scale, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.asarray(centers, np.float32)
    labels = np.repeat(np.arange(len(centers)), n_per)
    x = centers[labels] + scale * rng.normal(size=(len(labels), centers.shape[1]))
    return x.astype(np.float32), labels


def test_one_dimensional_by_hand():
    x = np.array([[0.0], [1.0], [10.0], [11.0]], np.float32)
    c = kmeans.fit_kmeans(x, 2, iters=5)
    assert sorted(c[:, 0].tolist()) == [0.5, 10.5]
    codes, dist = assign(x, c)
    assert codes[0] == codes[1] != codes[2] == codes[3]
    np.testing.assert_allclose(dist, [0.25] * 4, atol=1e-6)


def test_assign_by_hand_and_chunking_is_invisible():
    codes, dist = assign(np.array([[0, 0], [3, 4]], np.float32),
                                np.array([[0, 0], [3, 0]], np.float32))
    assert codes.tolist() == [0, 1]
    np.testing.assert_allclose(dist, [0.0, 16.0])
    rng = np.random.default_rng(1)
    x, c = rng.normal(size=(100, 4)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
    small_codes, small_dist = assign(x, c, chunk=8)
    big_codes, big_dist = assign(x, c)
    brute = ((x[:, None] - c[None]) ** 2).sum(-1)
    assert (small_codes == big_codes).all() and (big_codes == brute.argmin(1)).all()
    np.testing.assert_allclose(small_dist, brute.min(1), rtol=1e-4, atol=1e-5)


def test_well_separated_blobs_recovered_exactly():
    centers = np.eye(8, dtype=np.float32)[:5] * 10.0
    x, labels = _blobs(80, centers, 0.1)
    c = kmeans.fit_kmeans(x, 5, iters=10, seed=3)
    codes, _ = assign(x, c)
    # Each true blob maps to exactly one cluster and vice versa.
    pairs = set(zip(labels.tolist(), codes.tolist()))
    assert len(pairs) == 5 and len({p for _, p in pairs}) == 5
    for label, code in pairs:
        np.testing.assert_allclose(c[code], x[labels == label].mean(0), atol=1e-4)


def test_seeded_and_deterministic():
    x, _ = _blobs(50, np.random.default_rng(0).normal(size=(6, 4)), 1.0)
    a = kmeans.fit_kmeans(x, 6, iters=3, seed=7)
    b = kmeans.fit_kmeans(x, 6, iters=3, seed=7)
    np.testing.assert_array_equal(a, b)


def test_sample_cap_uses_at_most_max_points_per_centroid():
    # 2 points per centroid allowed: with k=2 only 4 rows train, so k-means still runs and
    # returns 2 distinct centroids from the data range.
    x, _ = _blobs(100, [[0.0], [10.0]], 0.1)
    c = kmeans.fit_kmeans(x, 2, iters=3, max_points_per_centroid=2)
    assert c.shape == (2, 1) and abs(c[0, 0] - c[1, 0]) > 5


def test_empty_cluster_reseeded_at_farthest_point():
    # Centroid 1 at 1000 attracts nothing; it is moved onto the farthest point (10), while
    # centroid 0 becomes the mean of all three points. One more step splits them by hand.
    x = np.array([[[0.0], [1.0], [10.0]]], np.float32)
    w = np.ones((1, 3), np.float32)
    c0 = np.array([[[0.0], [1000.0]]], np.float32)
    valid = np.ones((1, 2), bool)
    c1 = kmeans.refine_batched(x, w, c0, valid, iters=1)
    np.testing.assert_allclose(c1[0, :, 0], [11.0 / 3.0, 10.0], rtol=1e-6)
    c2 = kmeans.refine_batched(x, w, c0, valid, iters=2)
    np.testing.assert_allclose(c2[0, :, 0], [0.5, 10.0], rtol=1e-6)


def test_batched_problems_respect_padding_and_k_valid():
    a = np.array([[0.0], [1.0], [10.0], [11.0]], np.float32)
    b = np.array([[5.0], [7.0], [99.0], [99.0]], np.float32)   # last two rows are padding
    w = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.float32)
    c, valid = kmeans.fit_kmeans_batched(np.stack([a, b]), w, np.array([2, 1]), k_max=2, iters=5)
    assert valid.tolist() == [[True, True], [True, False]]
    assert sorted(c[0, :, 0].tolist()) == [0.5, 10.5]
    assert c[1, 0, 0] == pytest.approx(6.0) and c[1, 1, 0] == 0.0


def test_bad_input_raises():
    with pytest.raises(ValueError, match="k <= number of points"):
        kmeans.fit_kmeans(np.ones((3, 2), np.float32), 4)
    x = np.ones((5, 2), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        kmeans.fit_kmeans(x, 2)
    with pytest.raises(ValueError, match="dimension mismatch"):
        assign(np.ones((2, 3), np.float32), np.ones((2, 4), np.float32))
