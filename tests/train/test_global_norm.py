"""Clipping's global norm over same-role parameters stacked: optax's arithmetic, optax's state,
no data moved between devices."""

import collections
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.sft import get_config
from onesearch_jax import sharding
from onesearch_jax.model import transformer
from onesearch_jax.model.transformer import build_model
from onesearch_jax.train import global_norm
from onesearch_jax.train.sft_step import make_train_step
from onesearch_jax.train.train_state import make_optimizer, setup_train_state


def _tree():
    # Leaves in key order: dec_0/b, dec_0/k, dec_1/b, dec_1/k, dec_2/k (another shape), emb,
    # enc_0/k (bfloat16: another dtype than dec_*/k, and another role).
    return {
        "dec_0": {"k": jnp.full((2, 3), 1.0), "b": jnp.full((3,), 2.0)},
        "dec_1": {"k": jnp.full((2, 3), -1.0), "b": jnp.full((3,), 0.5)},
        "dec_2": {"k": jnp.full((4, 3), 3.0)},
        "emb": jnp.arange(10.0).reshape(5, 2),
        "enc_0": {"k": jnp.full((2, 3), 2.0, jnp.bfloat16)},
    }


def test_role_groups_join_layers_of_one_shape_and_dtype():
    assert global_norm.role_groups(_tree()) == [[0, 2], [1, 3], [4], [5], [6]]
    # The number is starred anywhere in the path, the role (the rest of it) still separates.
    t = {"layer_0": {"q": jnp.ones(2), "k": jnp.ones(2)}, "layer_11": {"q": jnp.ones(2)}}
    assert global_norm.role_groups(t) == [[0], [1, 2]]


def test_global_norm_by_hand_and_as_optax():
    # dec b: 3*4 + 3*0.25; dec k: 6 + 6; dec_2: 12*9; emb: sum(i^2, i<10) = 285; enc: 6*4.
    expected = np.sqrt(12 + 0.75 + 12 + 108 + 285 + 24)
    np.testing.assert_allclose(global_norm.global_norm(_tree()), expected, rtol=1e-6)
    np.testing.assert_allclose(global_norm.global_norm(_tree()), optax.tree.norm(_tree()),
                               rtol=1e-6)


def test_clip_matches_optax_below_and_above_the_bound():
    tree = jax.tree.map(lambda x: x.astype(jnp.float32), _tree())
    for bound in (1.0, 100.0):  # the norm is ~21.0: clipped, then passed through
        ours = global_norm.clip_by_global_norm(bound, "stacked")
        theirs = optax.clip_by_global_norm(bound)
        assert ours.init(tree) == theirs.init(tree)
        got, _ = jax.jit(ours.update)(tree, ours.init(tree))
        want, _ = theirs.update(tree, theirs.init(tree))
        chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(optax.tree.norm(got), optax.tree.norm(tree), rtol=1e-6)
    clipped, _ = global_norm.clip_by_global_norm(1.0, "stacked").update(tree, optax.EmptyState())
    np.testing.assert_allclose(optax.tree.norm(clipped), 1.0, rtol=1e-6)


def test_auto_stacks_for_a_gpu_only():
    assert global_norm.resolve("auto", "gpu") == "stacked"
    assert global_norm.resolve("auto", "tpu") == global_norm.resolve("auto", "cpu") == "per_leaf"
    assert global_norm.resolve("per_leaf", "gpu") == "per_leaf"
    # Decided when the step is traced, for the target of an ahead-of-time compile.
    assert global_norm.resolve("auto") == "per_leaf"  # this CPU
    with transformer.target_platform("gpu"):
        assert global_norm.resolve("auto") == "stacked"
    c = _tiny_config()
    c.train.grad_norm = "stacks"
    with pytest.raises(ValueError, match="train.grad_norm must be one of"):
        make_optimizer(c.train)


def _tiny_config():
    c = get_config("tiny")
    c.model.update(vocab_size=64, d_model=32, mlp_dim=64, enc_layers=2, dec_layers=2)
    c.train.update(steps=3, warmup=1, lr=1e-2, batch_size=8, clip=0.5)
    return c


def test_optimizer_state_and_steps_match_the_unstacked_norm():
    c = _tiny_config()
    params = {f"dec_{i}": {"k": jnp.full((3, 2), float(i + 1)), "b": jnp.ones(2)}
              for i in range(3)}
    grads = jax.tree.map(lambda p: jnp.sin(3.0 * p) * 5.0, params)  # norm ~ 9: clipped
    runs = []
    for layout in ("stacked", "per_leaf"):
        c.train.grad_norm = layout
        tx = make_optimizer(c.train)
        state, p = tx.init(params), params
        for _ in range(3):
            updates, state = jax.jit(tx.update)(grads, state, p)
            p = optax.apply_updates(p, updates)
        runs.append((p, state))
    # The same state tree: a checkpoint of either restores into the other.
    assert jax.tree.structure(runs[0][1]) == jax.tree.structure(runs[1][1])
    chex.assert_trees_all_close(runs[0], runs[1], rtol=1e-6, atol=1e-7)
    assert not np.allclose(runs[0][0]["dec_0"]["k"], params["dec_0"]["k"])


def _collectives(layout: str) -> collections.Counter:
    c = _tiny_config()
    c.train.grad_norm = layout
    mesh = sharding.make_mesh((2, 2, 2))
    model = build_model(c.model)
    setup = setup_train_state(model, c, mesh)
    batch_sharding = sharding.batch_sharding(mesh, setup.rules)
    batch = {k: jax.ShapeDtypeStruct((8, n), dt, sharding=batch_sharding)
             for k, n, dt in (("enc_tokens", 12, jnp.int32), ("dec_inputs", 6, jnp.int32),
                              ("dec_targets", 6, jnp.int32), ("dec_weights", 6, jnp.float32))}
    rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=sharding.replicated(mesh))
    hlo = make_train_step(model, c, setup).lower(setup.abstract, batch, rng).compile().as_text()
    return collections.Counter(re.findall(
        r"= \S+ (all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)", hlo))


def test_stacking_moves_no_data_on_a_sharded_mesh():
    """Same-role leaves share their sharding, so the stacks need no collective the per-leaf
    norm does not (here: one all-reduce fewer)."""
    assert jax.device_count() == 8
    stacked, per_leaf = _collectives("stacked"), _collectives("per_leaf")
    for kind in set(stacked) | set(per_leaf):
        assert stacked[kind] <= per_leaf[kind], (kind, stacked, per_leaf)
