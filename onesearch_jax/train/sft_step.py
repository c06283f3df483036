"""The supervised (V1 / SFT) stage: its loss and its batch contract.

The update itself is the stage-generic `step.train_step` (dropout stream, frozen subtrees,
grad norm, schedule, sharded jit); this module only supplies the SFT loss.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn

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
        f32_logits=False,  # the CE upcasts inside its fusions
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


def make_train_step(model: nn.Module, config, setup: StateSetup) -> Callable:
    """Jitted SFT `train_step(state, batch, rng) -> (state, metrics)`; the state is donated."""
    loss_fn = sft_loss_fn(model, label_smoothing=float(config.train.get("label_smoothing", 0.0)),
                          z_loss=float(config.train.get("z_loss", 0.0)))
    return step_lib.make_train_step(config, setup, loss_fn)
