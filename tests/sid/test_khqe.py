"""KHQE end to end on a small clustered set: shapes, ICR, save/load, queries, bad input."""
import ml_collections
import numpy as np
import pytest

from onesearch_jax.sid import sid_metrics
from onesearch_jax.sid.codebooks import KHQE, KHQEConfig, khqe_preset
from onesearch_jax.sid.khqe import fit_and_encode_khqe, fit_khqe


def _clustered(n=2000, d=32, centers=50, intrinsic=8, seed=0):
    """Gaussian mixture whose within-cluster spread lives in a low-dimensional subspace."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(centers, d))
    basis = rng.normal(size=(intrinsic, d))
    x = mu[rng.integers(0, centers, n)] + 0.5 * rng.normal(size=(n, intrinsic)) @ basis
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


CFG = khqe_preset("tiny", level_sizes=(32, 16, 8), iters=5, opq_iters=3)


@pytest.fixture(scope="module")
def fitted():
    x = _clustered()
    model, codes = fit_and_encode_khqe(x, CFG)
    return x, model, codes


def test_codes_shape_ranges_and_uniqueness(fitted):
    x, model, codes = fitted
    assert model.level_sizes == (32, 16, 8, 16, 16)
    assert model.per_parent_levels == (2,)
    assert codes.shape == (2000, 5) and codes.dtype == np.int32
    assert (codes >= 0).all() and (codes < np.array(model.level_sizes)).all()
    assert sid_metrics.icr(codes) >= 0.98
    assert sid_metrics.icr(codes) > sid_metrics.icr(codes[:, :3]) + 0.3   # OPQ separates
    cur = sid_metrics.codebook_utilization(codes, model.level_sizes, model.per_parent_levels)
    assert cur[0] == 1.0 and cur.min() > 0.5
    # Prefix + OPQ reconstruct the embeddings better than the prefix alone.
    prefix_only = model.rq.decode(codes[:, :3])
    assert (sid_metrics.reconstruction_error(x, model.decode(codes))
            < sid_metrics.reconstruction_error(x, prefix_only))


def test_encode_matches_fit_and_queries_encode_alone(fitted):
    x, model, codes = fitted
    np.testing.assert_array_equal(model.encode(x), codes)
    np.testing.assert_array_equal(model.encode(x[7:8]), codes[7:8])


def test_save_load_round_trip(fitted, tmp_path):
    x, model, codes = fitted
    path = tmp_path / "khqe.npz"
    model.save(path)
    loaded = KHQE.load(path)
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.encode(x), codes)


def test_dedup_suffix_makes_every_sid_unique(fitted):
    x, _, _ = fitted
    model, codes = fit_and_encode_khqe(x, CFG.to_dict() | {"suffix": "dedup"})
    assert model.opq is None and sid_metrics.icr(codes) == 1.0
    # Suffix = rank among items sharing the prefix, in row order: the first of each is (0, 0).
    _, first = np.unique(codes[:, :3], axis=0, return_index=True)
    assert (codes[first, 3:] == 0).all()
    np.testing.assert_array_equal(model.encode(x), codes)


def test_config_round_trips_through_dicts_and_config_dicts():
    cfg = ml_collections.ConfigDict(CFG.to_dict())
    cfg.suffix = "dedup"
    parsed = KHQEConfig.from_dict(cfg.to_dict())
    assert parsed.suffix == "dedup" and parsed.level_sizes == (32, 16, 8)
    with pytest.raises(ValueError, match="unknown KHQE config keys"):
        KHQEConfig.from_dict({"levels": (4, 2)})
    with pytest.raises(ValueError, match="suffix"):
        KHQEConfig(suffix="tiger")
    with pytest.raises(ValueError, match="last_level"):
        KHQEConfig(last_level="balanced")
    with pytest.raises(ValueError, match="unknown KHQE preset"):
        khqe_preset("huge")


def test_bad_input_raises(fitted):
    x, model, _ = fitted
    with pytest.raises(ValueError, match="fewer than the 32 level-1 centroids"):
        fit_khqe(x[:20], CFG)
    bad = x[:100].copy()
    bad[42, 3] = np.nan
    with pytest.raises(ValueError, match="row 42"):
        fit_khqe(bad, CFG)
    bad = x[:100].copy()
    bad[17] = 0.0
    with pytest.raises(ValueError, match="row 17 is all zeros"):
        model.encode(bad)
    with pytest.raises(ValueError, match="dimension 16 does not match"):
        model.encode(x[:5, :16])
