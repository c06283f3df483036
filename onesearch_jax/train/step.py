"""The stage-generic update: one pure `train_step` that any stage's loss plugs into.

A stage supplies `loss_fn(params, batch, rng, **state_inputs) -> (loss, metrics)` (pure); this
module owns what every stage shares: the dropout stream (`fold_in(rng, state.step)`, so a
resumed run replays it), frozen subtrees, the optional FGM adversarial pass on the embeddings,
grad norm, learning rate, and jitting with explicit shardings.
"""
from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from onesearch_jax import sharding as sharding_lib
from onesearch_jax.train.fgm import fgm_perturb_tree
from onesearch_jax.train.train_state import (PRETRAINED_KEY, StateSetup, learning_rate_schedule,
                                             params_ema)

LossFn = Callable[..., tuple]
EMBEDDING_PATH = ("embed", "embedding")  # the (tied) token embedding table FGM perturbs


def train_step(state, batch, rng, *, loss_fn: LossFn, schedule: optax.Schedule | None = None,
               frozen: tuple[str, ...] = (), fgm_epsilon: float = 0.0,
               fgm_path: tuple[str, ...] = EMBEDDING_PATH,
               state_inputs: Callable | None = None):
    """One optimizer update. Returns (new_state, metrics of the batch before the update).

    `frozen` top-level subtrees get zero gradients and no backward pass. `fgm_epsilon` > 0 adds
    FGM (Miyato et al.): a second pass with the embedding table moved by eps * g/||g|| along its
    own gradient, whose gradients are added. `state_inputs(state)` -> kwargs for `loss_fn`
    (e.g. the EMA teacher's parameters, which live in the optimizer state).
    """
    dropout_rng = jax.random.fold_in(rng, state.step)
    fixed = {k: v for k, v in state.params.items() if k in frozen}
    trainable = {k: v for k, v in state.params.items() if k not in frozen}
    extra = state_inputs(state) if state_inputs is not None else {}

    def objective(trainable_params):
        return loss_fn({**trainable_params, **fixed}, batch, dropout_rng, **extra)

    value_and_grad = jax.value_and_grad(objective, has_aux=True)
    (_, metrics), grads = value_and_grad(trainable)
    metrics = dict(metrics)
    if fgm_epsilon > 0:
        attacked = fgm_perturb_tree(trainable, grads, fgm_path, fgm_epsilon)
        (adv_loss, _), adv_grads = value_and_grad(attacked)
        grads = jax.tree.map(jnp.add, grads, adv_grads)
        metrics["fgm_loss"] = adv_loss
    grads = {**grads, **jax.tree.map(jnp.zeros_like, fixed)}
    metrics["grad_norm"] = optax.tree.norm(grads)
    if schedule is not None:
        metrics["learning_rate"] = schedule(state.step)
    return state.apply_gradients(grads=grads), metrics


def jit_step(step_fn: Callable, setup: StateSetup, *, has_rng: bool, donate: bool) -> Callable:
    """Jits `step_fn(state, batch[, rng])` with explicit shardings.

    The returned callable enters the mesh and logical-rule contexts (needed for the
    model's activation constraints); `.lower(*abstract_args)` lowers ahead of time inside the
    same contexts (lowering `.jitted` outside them drops the activation constraints).
    """
    batch_sh = sharding_lib.batch_sharding(setup.mesh, setup.rules)
    rep = sharding_lib.replicated(setup.mesh)
    in_sh = (setup.shardings, batch_sh, rep) if has_rng else (setup.shardings, batch_sh)
    out_sh = (setup.shardings, rep) if donate else rep
    jitted = jax.jit(
        step_fn, in_shardings=in_sh, out_shardings=out_sh, donate_argnums=(0,) if donate else ()
    )

    def call(*args):
        with jax.set_mesh(setup.mesh), nn.logical_axis_rules(setup.rules):
            return jitted(*args)

    def lower(*args):
        with jax.set_mesh(setup.mesh), nn.logical_axis_rules(setup.rules):
            return jitted.lower(*args)

    call.jitted, call.lower = jitted, lower
    return call


def frozen_subtrees(train_cfg) -> tuple[str, ...]:
    """pretrained_lr_scale = 0 freezes the pretrained encoder (see make_optimizer)."""
    return (PRETRAINED_KEY,) if float(train_cfg.get("pretrained_lr_scale", 1.0)) == 0.0 else ()


def make_train_step(config, setup: StateSetup, loss_fn: LossFn, *,
                    state_inputs: Callable | None = None) -> Callable:
    """Jitted `train_step(state, batch, rng) -> (state, metrics)` for `loss_fn`, configured from
    config.train (schedule, frozen subtrees, fgm_epsilon); the input state is donated."""
    step = functools.partial(
        train_step,
        loss_fn=loss_fn,
        schedule=learning_rate_schedule(config.train),
        frozen=frozen_subtrees(config.train),
        fgm_epsilon=float(config.train.get("fgm_epsilon", 0.0)),
        state_inputs=state_inputs,
    )
    return jit_step(step, setup, has_rng=True, donate=True)


def ema_teacher_inputs(state) -> dict:
    """state_inputs for an EMA teacher: its parameters, tracked in the optimizer state."""
    return {"teacher_params": params_ema(state.opt_state)}
