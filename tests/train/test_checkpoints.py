"""Resume equals an uninterrupted run; mismatched configs are refused; restores reshard."""

import os
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs.sft import get_config
from onesearch_jax.model.transformer import build_model
from onesearch_jax import checkpoint_params
from onesearch_jax import sharding
from onesearch_jax.train.checkpoints import Checkpointer, PreemptionGuard
from onesearch_jax.train.sft_step import make_train_step
from onesearch_jax.train.train_state import create_train_state, setup_train_state


def _config():
    c = get_config("tiny")
    c.model.update(vocab_size=64, d_model=32, mlp_dim=64, enc_layers=1, dec_layers=1)
    c.train.update(steps=4, warmup=1, lr=1e-2, batch_size=8)
    c.model.dropout_rate = 0.1  # dropout on: the resumed rng stream must match too
    return c


def _batch(c, i):
    rng = np.random.default_rng(i)
    tgt = rng.integers(1, c.model.vocab_size, (8, 6)).astype(np.int32)
    return dict(
        enc_tokens=rng.integers(1, c.model.vocab_size, (8, 10)).astype(np.int32),
        dec_inputs=np.concatenate([np.ones((8, 1), np.int32), tgt[:, :-1]], 1),
        dec_targets=tgt,
        dec_weights=np.ones((8, 6), np.float32),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    c = _config()
    mesh = sharding.make_mesh((8, 1, 1))
    model = build_model(c.model)
    setup = setup_train_state(model, c, mesh)
    step = make_train_step(model, c, setup)
    rng = jax.random.key(0)
    run = lambda s, i: step(s, sharding.shard_batch(_batch(c, i), mesh, setup.rules), rng)[0]

    straight = create_train_state(setup, c.train.seed)
    for i in range(4):
        straight = run(straight, i)

    directory = str(tmp_path_factory.mktemp("ckpt"))
    ckpt = Checkpointer(directory, save_every=2, keep=2)
    state = create_train_state(setup, c.train.seed)
    for i in range(2):
        state = run(state, i)
    ckpt.save(2, state, data_position=2, config=c)
    ckpt.close()
    del state
    ckpt = Checkpointer(directory, save_every=2, keep=2)
    resumed, meta = ckpt.restore(setup.abstract, c)
    assert int(resumed.step) == 2
    for i in range(meta["data_position"], 4):
        resumed = run(resumed, i)
    ckpt.close()
    return c, directory, straight, resumed


def test_resume_equals_uninterrupted(trained):
    c, directory, straight, resumed = trained
    assert int(straight.step) == int(resumed.step) == 4
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_meta_holds_position_and_config(trained):
    c, directory, _, _ = trained
    meta = Checkpointer(directory, save_every=2, keep=2).restore_meta()
    assert meta["step"] == 2 and meta["data_position"] == 2
    assert meta["config"]["model"]["d_model"] == 32
    assert meta["config"]["mesh"]["shape"] == [-1, 1, 1]


def test_different_model_config_is_refused(trained):
    c, directory, _, _ = trained
    other = _config()
    other.model.update(d_model=48, mlp_dim=96)
    other.model.dropout_rate = 0.0  # runtime-only: not a mismatch
    mesh = sharding.make_mesh((4, 2, 1))
    setup = setup_train_state(build_model(other.model), other, mesh)
    with pytest.raises(ValueError, match=r"mismatched keys: \['d_model', 'mlp_dim'\]"):
        Checkpointer(directory, save_every=2, keep=2).restore(setup.abstract, other)


def test_restore_reshards_onto_other_meshes_and_fewer_devices_with_identical_values(trained):
    """Written on (8, 1, 1); restored onto (2, 2, 2), (1, 2, 4) and a 4-device (2, 1, 2) mesh."""
    c, directory, _, _ = trained
    model = build_model(c.model)

    def restore(mesh):
        setup = setup_train_state(model, c, mesh)
        state, _ = Checkpointer(directory, save_every=2, keep=2).restore(setup.abstract, c)
        return setup, state

    _, written = restore(sharding.make_mesh((8, 1, 1)))
    for mesh in (sharding.make_mesh((2, 2, 2)), sharding.make_mesh((1, 2, 4)),
                 sharding.make_mesh((2, 1, 2), devices=jax.devices()[:4])):
        setup, state = restore(mesh)
        emb = state.params["embed"]["embedding"]
        assert emb.sharding == setup.shardings.params["embed"]["embedding"]
        assert set(emb.sharding.device_set) == set(mesh.devices.flat)
        for a, b in zip(jax.tree.leaves(written), jax.tree.leaves(state)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert emb.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")


def test_serving_reads_the_parameters_alone_onto_one_device(trained):
    c, directory, _, _ = trained
    model = build_model(c.model)
    setup = setup_train_state(model, c, sharding.make_mesh((8, 1, 1)))
    state, _ = Checkpointer(directory, save_every=2, keep=2).restore(setup.abstract, c)
    params = checkpoint_params.restore_params(directory, c.model,
                                              checkpoint_params.abstract_params(model))
    assert jax.tree.structure(params) == jax.tree.structure(state.params)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params)):
        assert len(b.sharding.device_set) == 1
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = _config()
    other.model.d_model = 48
    with pytest.raises(ValueError, match=r"mismatched keys: \['d_model'\]"):
        checkpoint_params.restore_params(directory, other.model,
                                         checkpoint_params.abstract_params(model))


def test_keeps_last_k(tmp_path):
    ckpt = Checkpointer(str(tmp_path), save_every=1, keep=2, async_save=False)
    for s in range(1, 5):
        ckpt.save(s, {"w": np.full(3, s, np.float32)}, data_position=s, config=_config())
    assert ckpt.all_steps() == [3, 4]
    ckpt.close()
    ckpt = Checkpointer(str(tmp_path), save_every=3, keep=2)
    assert ckpt.should_save(6) and not ckpt.should_save(7) and not ckpt.should_save(1)
    assert not ckpt.save(
        7, {"w": np.zeros(3, np.float32)}, data_position=7, config=_config(), force=False
    )
    ckpt.close()


def test_sigterm_sets_flag_instead_of_killing():
    with PreemptionGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.requested
    assert signal.getsignal(signal.SIGTERM) is not guard._handler


def test_relative_checkpoint_directory_works(tmp_path, monkeypatch):
    """`make demo` passes a relative workdir; orbax needs absolute paths underneath."""
    monkeypatch.chdir(tmp_path)
    ckpt = Checkpointer("rel/checkpoints", save_every=1, keep=1, async_save=False)
    state = {"w": np.arange(3.0, dtype=np.float32)}
    ckpt.manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    ckpt.wait()
    assert ckpt.latest_step() == 1 and (tmp_path / "rel" / "checkpoints" / "1").is_dir()
    ckpt.close()
