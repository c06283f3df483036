"""Token-level losses shared by every training stage (pure functions)."""

from __future__ import annotations

import functools

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


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def token_cross_entropy(logits, targets, label_smoothing: float = 0.0):
    """Per-token softmax cross-entropy over the last axis, computed in float32 whatever the
    logits' dtype: (ce, nll, log_z), each float32[B, T], with ce against the smoothed target
    (1-eps)*onehot + eps/V and nll against the one-hot alone.

    Why a custom gradient: autodiff of log_softmax + take_along_axis writes several float32
    [B, T, V] buffers (the log-probs, a scatter-added one-hot cotangent, the softmax); this
    backward writes one, softmax * (sum of the cotangents) - target weights, in the logits'
    dtype, which is the size the vocabulary projection's gradient reads anyway (the target logit
    is gathered forward only: no scatter-add of its cotangent)."""
    return _token_cross_entropy_fwd(logits, targets, label_smoothing)[0]


def _one_hot(targets, vocab: int):
    return targets[..., None].astype(jnp.int32) == jnp.arange(vocab, dtype=jnp.int32)


def _token_cross_entropy_fwd(logits, targets, label_smoothing):
    x = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(x, axis=-1)
    target_logit = jnp.take_along_axis(x, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    nll = log_z - target_logit
    ce = nll
    if label_smoothing:
        ce = log_z - (1.0 - label_smoothing) * target_logit - label_smoothing * jnp.mean(x, -1)
    return (ce, nll, log_z), (logits, targets, log_z)


def _token_cross_entropy_bwd(label_smoothing, residuals, cotangents):
    logits, targets, log_z = residuals
    g_ce, g_nll, g_log_z = cotangents
    x = logits.astype(jnp.float32)
    probs = jnp.exp(x - log_z[..., None])
    on_target = (1.0 - label_smoothing) * g_ce + g_nll
    grad = (probs * (g_ce + g_nll + g_log_z)[..., None]
            - jnp.where(_one_hot(targets, x.shape[-1]), on_target[..., None], 0.0)
            - (label_smoothing / x.shape[-1]) * g_ce[..., None])
    return grad.astype(logits.dtype), None


token_cross_entropy.defvjp(_token_cross_entropy_fwd, _token_cross_entropy_bwd)


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
    weights = weights.astype(jnp.float32)
    ce, nll, log_z = token_cross_entropy(logits, targets, float(label_smoothing))
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
