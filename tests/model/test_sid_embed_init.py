"""SID token embeddings from the codebooks: each level's rows carry its codes' vectors, projected
and scaled; the OPQ rows rebuild the suffix's reconstruction; text rows are untouched."""
import numpy as np
import pytest

from onesearch_jax.model.sid_embed_init import centroid_rows, code_vectors, init_sid_embeddings
from onesearch_jax.sid.codebooks import KHQEConfig
from onesearch_jax.sid.khqe import fit_and_encode_khqe


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(300, 8)).astype(np.float32)
    cfg = KHQEConfig(level_sizes=(6, 4, 3), opq_subspaces=2, opq_codes=4, iters=5, opq_iters=3)
    return fit_and_encode_khqe(items, cfg)


def test_code_vectors_are_the_codebooks(fitted):
    khqe, codes = fitted
    vectors = code_vectors(khqe)
    assert [len(v) for v in vectors] == list(khqe.level_sizes)
    np.testing.assert_allclose(vectors[0], khqe.rq.global_centroids[0])
    # The per-parent level: each code's centroid averaged over the parents that have it.
    pc, valid = khqe.rq.parent_centroids, khqe.rq.parent_valid
    code = 1
    expect = pc[valid[:, code], code].mean(0)
    np.testing.assert_allclose(vectors[2][code], expect, rtol=1e-5, atol=1e-6)
    # The two OPQ sub-codes' vectors add up to the suffix's reconstruction.
    suffix = codes[:, 3:]
    np.testing.assert_allclose(vectors[3][suffix[:, 0]] + vectors[4][suffix[:, 1]],
                               khqe.opq.decode(suffix), rtol=1e-4, atol=1e-5)


def test_projection_keeps_geometry_and_unit_scale(fitted):
    khqe, _ = fitted
    rows = centroid_rows(khqe, d_model=16, seed=0)
    vectors = code_vectors(khqe)
    for level_rows, v in zip(rows, vectors):
        assert level_rows.shape == (len(v), 16)
        np.testing.assert_allclose(np.sqrt(np.mean(level_rows ** 2)), 1.0, rtol=1e-5)
        # An orthonormal map (D=8 <= d_model) preserves dot products up to the level's scale.
        gram, projected = v @ v.T, level_rows @ level_rows.T
        scale = projected[0, 0] / gram[0, 0]
        np.testing.assert_allclose(projected, gram * scale, rtol=1e-4, atol=1e-4)


def test_init_sid_embeddings_changes_only_sid_rows(fitted):
    khqe, _ = fitted
    offsets = (20, 26, 30, 33, 37)
    table = np.random.default_rng(1).normal(size=(45, 16)).astype(np.float32)
    params = {"embed": {"embedding": table}, "dec_0": {"w": np.ones(3)}}
    out = init_sid_embeddings(params, khqe, offsets, seed=0)
    new = np.asarray(out["embed"]["embedding"])
    np.testing.assert_array_equal(new[:20], table[:20])
    np.testing.assert_array_equal(new[41:], table[41:])
    np.testing.assert_allclose(new[20:26], centroid_rows(khqe, 16, 0)[0], rtol=1e-6)
    assert out["dec_0"] is params["dec_0"]
    with pytest.raises(ValueError, match="exceed"):
        init_sid_embeddings({"embed": {"embedding": table[:30]}}, khqe, offsets)
