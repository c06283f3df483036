"""The supervised (V1 / SFT) train and eval steps: pure functions plus jitted wrappers.

`train_step(state, batch, rng)` is pure: dropout randomness is
`fold_in(rng, state.step)`, so a resumed run replays the same stream. The
`make_*` helpers jit it with explicit shardings and donate the old state.
Later stages (distillation, GRPO) write their own pure step and reuse
`jit_step` to get the same sharding treatment.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from onesearch_jax.train import sharding as sharding_lib
from onesearch_jax.train.losses import weighted_cross_entropy
from onesearch_jax.train.train_state import PRETRAINED_KEY, StateSetup, learning_rate_schedule

BATCH_KEYS = ("enc_tokens", "dec_inputs", "dec_targets", "dec_weights")


def check_batch(batch) -> None:
    """Raises ValueError naming a missing key or a shape mismatch of the batch contract."""
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"batch is missing keys {missing}; expected {list(BATCH_KEYS)}")
    t_shape = batch["dec_inputs"].shape
    for k in ("dec_targets", "dec_weights"):
        if batch[k].shape != t_shape:
            raise ValueError(f"batch[{k!r}] has shape {batch[k].shape}, dec_inputs has {t_shape}")
    if batch["enc_tokens"].shape[0] != t_shape[0]:
        raise ValueError(
            f"enc_tokens batch size {batch['enc_tokens'].shape[0]} != "
            f"dec_inputs batch size {t_shape[0]}"
        )


def sft_loss(
    params,
    model: nn.Module,
    batch,
    dropout_rng,
    *,
    train: bool,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
):
    """(loss, metrics) of teacher-forced decoding on one batch."""
    logits = model.apply(
        {"params": params},
        batch["enc_tokens"],
        batch["dec_inputs"],
        train=train,
        rngs={"dropout": dropout_rng} if train else None,
    )
    return weighted_cross_entropy(
        logits,
        batch["dec_targets"],
        batch["dec_weights"],
        label_smoothing=label_smoothing,
        z_loss=z_loss,
    )


def train_step(
    state,
    batch,
    rng,
    *,
    model: nn.Module,
    schedule: optax.Schedule | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    frozen: tuple[str, ...] = (),
):
    """One AdamW update. Returns (new_state, metrics of the batch before the update).

    `frozen` top-level param subtrees are not differentiated (zero gradients, and no backward
    pass through them: a frozen pretrained encoder costs its forward pass only).
    """
    dropout_rng = jax.random.fold_in(rng, state.step)
    fixed = {k: v for k, v in state.params.items() if k in frozen}
    trainable = {k: v for k, v in state.params.items() if k not in frozen}

    def loss_fn(trainable_params):
        return sft_loss(
            {**trainable_params, **fixed},
            model,
            batch,
            dropout_rng,
            train=True,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
        )

    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    grads = {**grads, **jax.tree.map(jnp.zeros_like, fixed)}
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
    if schedule is not None:
        metrics["learning_rate"] = schedule(state.step)
    return state.apply_gradients(grads=grads), metrics


def eval_step(params, batch, *, model: nn.Module):
    """Sums (not means) without dropout or smoothing, so batches aggregate exactly.

    Takes params, not the TrainState, so any caller can jit it without the optimizer.
    """
    _, m = sft_loss(params, model, batch, None, train=False)
    return {
        "nll_sum": m["nll"] * m["weight_sum"],
        "weight_sum": m["weight_sum"],
        "correct": m["accuracy"] * m["num_tokens"],
        "num_tokens": m["num_tokens"],
    }


def jit_step(step_fn: Callable, setup: StateSetup, *, has_rng: bool, donate: bool) -> Callable:
    """Jits `step_fn(state, batch[, rng])` with explicit shardings.

    The returned callable enters the mesh and logical-rule contexts (needed for the
    model's activation constraints) and exposes the jitted function as `.jitted`
    for ahead-of-time lowering.
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

    call.jitted = jitted
    return call


def make_train_step(model: nn.Module, config, setup: StateSetup) -> Callable:
    """Jitted `train_step(state, batch, rng) -> (state, metrics)`; the input state is donated."""
    step = functools.partial(
        train_step,
        model=model,
        schedule=learning_rate_schedule(config.train),
        label_smoothing=float(config.train.get("label_smoothing", 0.0)),
        z_loss=float(config.train.get("z_loss", 0.0)),
        frozen=frozen_subtrees(config.train),
    )
    return jit_step(step, setup, has_rng=True, donate=True)


def frozen_subtrees(train_cfg) -> tuple[str, ...]:
    """pretrained_lr_scale = 0 freezes the pretrained encoder (see make_optimizer)."""
    return (PRETRAINED_KEY,) if float(train_cfg.get("pretrained_lr_scale", 1.0)) == 0.0 else ()


def make_eval_fn(
    model: nn.Module,
    config,
    mesh: jax.sharding.Mesh,
    batches: Callable[[], Iterable[Mapping[str, np.ndarray]]],
) -> Callable:
    """`eval_fn(state, step) -> {nll, accuracy, num_tokens}` over `batches()`, for train_loop.

    Params keep whatever sharding the state has; batches are split like training ones.
    """
    rules = sharding_lib.normalize_rules(config.mesh.logical_axis_rules)
    batch_sh = sharding_lib.batch_sharding(mesh, rules)
    step_fn = functools.partial(eval_step, model=model)
    compiled: dict = {}

    def eval_fn(state, step):
        del step
        if "fn" not in compiled:
            param_sh = jax.tree.map(lambda x: x.sharding, state.params)
            compiled["fn"] = jax.jit(
                step_fn,
                in_shardings=(param_sh, batch_sh),
                out_shardings=sharding_lib.replicated(mesh),
            )
        totals: dict[str, float] = {}
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            for batch in batches():
                sums = compiled["fn"](state.params, sharding_lib.shard_batch(batch, mesh, rules))
                for k, v in jax.device_get(sums).items():
                    totals[k] = totals.get(k, 0.0) + float(v)
        if not totals:
            raise ValueError("eval batches() yielded no batches")
        return {
            "nll": totals["nll_sum"] / max(totals["weight_sum"], 1e-8),
            "accuracy": totals["correct"] / max(totals["num_tokens"], 1.0),
            "num_tokens": totals["num_tokens"],
        }

    return eval_fn
