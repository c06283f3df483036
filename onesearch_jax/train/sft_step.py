"""The supervised (V1 / SFT) stage: its loss, its batch contract and its eval step.

The update itself is the stage-generic `step.train_step` (dropout stream, frozen subtrees,
grad norm, schedule, sharded jit); this module only supplies the SFT loss.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Mapping

import flax.linen as nn
import jax
import numpy as np
import optax

from onesearch_jax import sharding as sharding_lib
from onesearch_jax.train.losses import weighted_cross_entropy
from onesearch_jax.train import step as step_lib
from onesearch_jax.train.train_state import StateSetup

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
        enc_states=batch.get("enc_states"),
        rngs={"dropout": dropout_rng} if train else None,
    )
    return weighted_cross_entropy(
        logits,
        batch["dec_targets"],
        batch["dec_weights"],
        label_smoothing=label_smoothing,
        z_loss=z_loss,
    )


def sft_loss_fn(model: nn.Module, *, label_smoothing: float = 0.0, z_loss: float = 0.0):
    """The SFT stage's `loss_fn(params, batch, rng)` for the generic step."""
    return functools.partial(_sft_objective, model=model, label_smoothing=label_smoothing,
                             z_loss=z_loss)


def _sft_objective(params, batch, rng, *, model, label_smoothing, z_loss):
    return sft_loss(params, model, batch, rng, train=True, label_smoothing=label_smoothing,
                    z_loss=z_loss)


def train_step(state, batch, rng, *, model: nn.Module, schedule: optax.Schedule | None = None,
               label_smoothing: float = 0.0, z_loss: float = 0.0, frozen: tuple[str, ...] = ()):
    """One SFT update (the generic `step.train_step` with the SFT loss)."""
    return step_lib.train_step(
        state, batch, rng, loss_fn=sft_loss_fn(model, label_smoothing=label_smoothing,
                                               z_loss=z_loss),
        schedule=schedule, frozen=frozen)


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


def make_train_step(model: nn.Module, config, setup: StateSetup) -> Callable:
    """Jitted SFT `train_step(state, batch, rng) -> (state, metrics)`; the state is donated."""
    loss_fn = sft_loss_fn(model, label_smoothing=float(config.train.get("label_smoothing", 0.0)),
                          z_loss=float(config.train.get("z_loss", 0.0)))
    return step_lib.make_train_step(config, setup, loss_fn)


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
