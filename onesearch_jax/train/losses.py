"""Token-level losses shared by every training stage (pure functions)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def check_token_shapes(scores, targets, weights, name: str, last_axis: str) -> None:
    """scores [batch, length, last_axis] with targets and weights [batch, length], or ValueError."""
    if scores.ndim != 3:
        raise ValueError(f"{name} must be [batch, length, {last_axis}], got shape {scores.shape}")
    if targets.shape != scores.shape[:2] or weights.shape != scores.shape[:2]:
        raise ValueError(
            f"targets {targets.shape} and weights {weights.shape} must both be "
            f"{scores.shape[:2]} to match {name}"
        )


def weighted_cross_entropy(
    logits, targets, weights, *, label_smoothing: float = 0.0, z_loss: float = 0.0
):
    """Weighted token cross-entropy.

    Args:
      logits: float[B, T, V].
      targets: int[B, T].
      weights: float[B, T]; 0 on padding, may carry relevance weights.
      label_smoothing: eps; the target distribution is (1-eps)*onehot + eps/V.
      z_loss: coefficient of log(Z)^2 (PaLM), keeps the softmax normaliser near 1.

    Returns:
      (loss, metrics): loss = sum(w * (ce + z_loss*logZ^2)) / sum(w).
      metrics: loss, nll (unsmoothed, weighted like the loss), z_loss, accuracy
      (over tokens with w > 0, unweighted), num_tokens (count of w > 0), weight_sum.
    """
    check_token_shapes(logits, targets, weights, "logits", "vocab")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if z_loss < 0:
        raise ValueError(f"z_loss must be >= 0, got {z_loss}")
    logits = logits.astype(jnp.float32)
    weights = weights.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    log_probs = logits - log_z[..., None]
    nll = -jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    ce = nll
    if label_smoothing:
        ce = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)
    z_term = z_loss * jnp.square(log_z)
    weight_sum = jnp.sum(weights)
    denom = jnp.maximum(weight_sum, 1e-8)
    loss = jnp.sum(weights * (ce + z_term)) / denom

    mask = (weights > 0).astype(jnp.float32)
    num_tokens = jnp.sum(mask)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    metrics = {
        "loss": loss,
        "nll": jnp.sum(weights * nll) / denom,
        "z_loss": jnp.sum(weights * z_term) / denom,
        "accuracy": jnp.sum(mask * correct) / jnp.maximum(num_tokens, 1.0),
        "num_tokens": num_tokens,
        "weight_sum": weight_sum,
    }
    return loss, metrics
