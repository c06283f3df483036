"""A (2,2,2) data/fsdp/tensor mesh trains exactly like one device."""

import chex
import jax
import numpy as np
import pytest

from train_helpers import train_on_mesh
from configs.sft import get_config
from onesearch_jax import sharding
from onesearch_jax.train.sft_step import make_train_step


def _config():
    c = get_config("tiny")
    c.model.update(vocab_size=64, d_model=32, mlp_dim=64, enc_layers=1, dec_layers=1)
    c.train.update(steps=3, warmup=1, lr=1e-2, batch_size=8)
    return c


def _batches(c, n):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        enc = rng.integers(1, c.model.vocab_size, (8, 12)).astype(np.int32)
        enc[:, 9:] = 0
        tgt = rng.integers(1, c.model.vocab_size, (8, 6)).astype(np.int32)
        out.append(
            dict(
                enc_tokens=enc,
                dec_inputs=np.concatenate([np.ones((8, 1), np.int32), tgt[:, :-1]], 1),
                dec_targets=tgt,
                dec_weights=rng.uniform(0, 2, (8, 6)).astype(np.float32),
            )
        )
    return out


def _train(mesh, c, batches):
    return train_on_mesh(mesh, c, batches, make_train_step)


def test_sharded_mesh_matches_single_device():
    assert jax.device_count() == 8
    c = _config()
    b0, b1 = _batches(c, 2)
    batches = [b0, b1, b0]
    mesh8 = sharding.make_mesh((2, 2, 2))
    mesh1 = sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    state8, losses8 = _train(mesh8, c, batches)
    state1, losses1 = _train(mesh1, c, batches)
    # Parameters really are split over the mesh.
    emb = state8.params["embed"]["embedding"]
    assert emb.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")
    assert len({str(s.index) for s in emb.addressable_shards}) == 4
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5, atol=1e-5)
    assert losses8[2] < losses8[0]  # two updates later, the same batch fits better
    chex.assert_trees_all_close(state8.params, state1.params, rtol=1e-5, atol=1e-5)
    assert int(state8.step) == 3


def test_mesh_shape_and_rules_validation():
    assert sharding.resolve_mesh_shape((-1, 2, 1), 8) == (4, 2, 1)
    with pytest.raises(ValueError, match="does not divide"):
        sharding.resolve_mesh_shape((-1, 3, 1), 8)
    with pytest.raises(ValueError, match="needs 4 devices"):
        sharding.resolve_mesh_shape((2, 2, 1), 8)
    with pytest.raises(ValueError, match="unknown mesh axes"):
        sharding.normalize_rules([("batch", ("data", "model"))])
    mesh = sharding.make_mesh((4, 2, 1))
    assert sharding.batch_shards(mesh, sharding.DEFAULT_RULES) == 8
    with pytest.raises(ValueError, match="divisible by the 8 batch shards"):
        sharding.shard_batch(
            {"enc_tokens": np.zeros((6, 3), np.int32)}, mesh, sharding.DEFAULT_RULES
        )
