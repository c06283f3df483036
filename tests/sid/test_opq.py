"""OPQ (rotation + product codebooks) and the dedup-suffix alternative."""
import numpy as np
import pytest

from onesearch_jax.sid.dedup_suffix import dedup_index, dedup_suffix
from onesearch_jax.sid.codebooks import OPQ
from onesearch_jax.sid.opq import fit_opq, procrustes_rotation


def test_procrustes_recovers_a_known_rotation():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    x = rng.normal(size=(50, 6))
    np.testing.assert_allclose(procrustes_rotation(x, x @ q), q, atol=1e-5)


def test_encode_decode_by_hand():
    # Identity rotation, 2 sub-spaces of 1 dim with codewords {0, 1} and {10, 20}.
    opq = OPQ(rotation=np.eye(2, dtype=np.float32),
              codebooks=np.array([[[0.0], [1.0]], [[10.0], [20.0]]], np.float32))
    codes = opq.encode(np.array([[0.9, 11.0], [0.1, 19.0]], np.float32))
    assert codes.tolist() == [[1, 0], [0, 1]]
    np.testing.assert_allclose(opq.decode(codes), [[1.0, 10.0], [0.0, 20.0]])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        opq.encode(np.ones((1, 3), np.float32))


def _rotated_anisotropic(n=2000, d=8, seed=0):
    """Variance concentrated in a few directions, mixed across the two halves by a rotation."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return ((rng.normal(size=(n, d)) * np.linspace(3.0, 0.1, d)) @ q).astype(np.float32)


def test_learned_rotation_beats_plain_pq_and_stays_orthogonal():
    x = _rotated_anisotropic()
    plain = fit_opq(x, subspaces=2, codes=16, iters=1)          # identity rotation = PQ
    learned = fit_opq(x, subspaces=2, codes=16, iters=6)
    np.testing.assert_array_equal(plain.rotation, np.eye(8, dtype=np.float32))
    err = lambda m: float(np.mean(np.sum((m.decode(m.encode(x)) - x) ** 2, axis=1)))
    assert err(learned) < 0.95 * err(plain)
    r = learned.rotation
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-4)
    codes = learned.encode(x)
    assert codes.shape == (2000, 2) and codes.dtype == np.int32
    assert codes.min() >= 0 and codes.max() < 16


def test_fit_opq_bad_input():
    x = _rotated_anisotropic(n=100, d=8)
    with pytest.raises(ValueError, match="not divisible"):
        fit_opq(x, subspaces=3, codes=4)
    with pytest.raises(ValueError, match="at least codes=256"):
        fit_opq(x, subspaces=2, codes=256)


def test_dedup_suffix_by_hand():
    prefix = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [3, 4]])
    assert dedup_index(prefix).tolist() == [0, 1, 0, 2, 1]
    assert dedup_suffix(prefix, base=2).tolist() == [[0, 0], [0, 1], [0, 0], [1, 0], [0, 1]]
    with pytest.raises(ValueError, match="3 items share one prefix"):
        dedup_suffix(prefix, base=2, num_tokens=1)
