"""Self-distillation losses for OneSearch-V2 (pure JAX functions, no state).

Shapes used throughout:
  * "level log-probs / logits": float[B, L, K] over one SID level's K codes at
    each of L SID positions. Padded codes may hold -inf or a very negative
    number (e.g. -1e9); every function here stays finite and NaN-free there.
  * mask / weights: float[B, L]; averages are sum(term * m) / max(sum(m), 1e-8).

All maths is done in float32 whatever the input dtype.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp

from onesearch_jax.train.losses import check_token_shapes

_EPS = 1e-8


def _masked_mean(values, mask):
    """sum(values * mask) / max(sum(mask), eps), ignoring NaN/inf at mask == 0."""
    mask = mask.astype(jnp.float32)
    values = jnp.where(mask > 0, values, 0.0)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), _EPS)


def _check_level_shapes(a, b, mask, names):
    if a.ndim != 3:
        raise ValueError(f"{names[0]} must be [batch, length, codes], got shape {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"{names[1]} shape {b.shape} must equal {names[0]} shape {a.shape}")
    if mask.shape != a.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} must be {a.shape[:2]}")


def _safe_log_softmax(x, mask, tau=1.0):
    """log_softmax(x / tau) over K, with masked-out rows replaced by zeros first.

    Replacing ignored rows *before* the softmax keeps fully padded rows (all
    -inf) from producing NaN in the forward pass or in the gradient.
    """
    x = x.astype(jnp.float32)
    x = jnp.where(mask[..., None] > 0, x, 0.0)
    return jax.nn.log_softmax(x / tau, axis=-1)


def kl_per_position(log_p, log_q):
    """KL(P || Q) summed over K, float[B, L], with the 0 * log 0 = 0 convention.

    Where P's probability is 0 (padded code: log_p = -inf, or exp(-1e9) == 0),
    the term is exactly 0; both logs are zeroed there *before* subtracting so
    neither -inf - -inf nor 0 * inf appears, forwards or backwards.
    """
    p = jnp.exp(log_p)
    support = p > 0
    safe_log_p = jnp.where(support, log_p, 0.0)
    safe_log_q = jnp.where(support, log_q, 0.0)
    terms = jnp.where(support, p * (safe_log_p - safe_log_q), 0.0)
    return jnp.sum(terms, axis=-1)


def tempered_kl(teacher_logits, student_logits, mask, *, tau=1.0):
    """tau^2 * masked mean over SID positions of KL(softmax(t/tau) || softmax(s/tau)).

    Why: the standard Hinton distillation term; softening by tau exposes the
    teacher's ranking over non-argmax codes, and tau^2 keeps the gradient scale
    independent of tau. Inputs may be logits or log-probs (log_softmax is
    re-applied after dividing by tau, so either gives the same result).

    The teacher is NOT stop-gradiented here: gradients flow to both arguments.
    Callers distilling from a fixed/EMA teacher must wrap it in
    jax.lax.stop_gradient themselves.

    Codes the teacher gives zero probability contribute exactly 0. A code the
    teacher supports but the student has at -inf gives an infinite KL (true
    value); use a finite pad value (e.g. -1e9) in both for padded codes.
    """
    if not isinstance(tau, jax.Array) and not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    _check_level_shapes(teacher_logits, student_logits, mask, ("teacher_logits", "student_logits"))
    mask = mask.astype(jnp.float32)
    log_t = _safe_log_softmax(teacher_logits, mask, tau)
    log_s = _safe_log_softmax(student_logits, mask, tau)
    tau = jnp.asarray(tau, jnp.float32)
    return jnp.square(tau) * _masked_mean(kl_per_position(log_t, log_s), mask)


def symmetric_kl(logits_a, logits_b, mask):
    """R-Drop consistency: 0.5 * (KL(Pa||Pb) + KL(Pb||Pa)), masked mean, tau = 1.

    Why: two dropout-perturbed passes of the same model should agree; the
    symmetric form treats both passes as student, so gradients flow to both.
    """
    _check_level_shapes(logits_a, logits_b, mask, ("logits_a", "logits_b"))
    mask = mask.astype(jnp.float32)
    log_a = _safe_log_softmax(logits_a, mask)
    log_b = _safe_log_softmax(logits_b, mask)
    per_pos = 0.5 * (kl_per_position(log_a, log_b) + kl_per_position(log_b, log_a))
    return _masked_mean(per_pos, mask)


def focal_loss(log_probs, targets, weights, *, gamma=2.0, alpha=1.0):
    """Weighted focal loss -alpha * (1 - p)^gamma * log p on level-local SID codes.

    Why: down-weights codes the model already predicts confidently so hard
    (ambiguous) SID positions dominate the gradient. gamma=0, alpha=1 is
    exactly plain weighted cross entropy.

    Args:
      log_probs: float[B, L, K], already normalised (log_softmax output).
      targets: int[B, L] level-local code ids (ignored where weights == 0).
      weights: float[B, L]; 0 on padding.

    Returns:
      (loss, metrics) with loss = sum(w * term) / max(sum(w), 1e-8) and metrics:
      loss, nll (plain -log p weighted the same way), accuracy (argmax == target
      over w > 0, unweighted), num_tokens (count of w > 0), weight_sum.
    """
    check_token_shapes(log_probs, targets, weights, "log_probs", "codes")
    if not isinstance(gamma, jax.Array) and not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    log_probs = log_probs.astype(jnp.float32)
    weights = weights.astype(jnp.float32)
    valid = weights > 0
    # Ignored tokens may carry pad ids (-1, out of range) or -inf target
    # log-probs; point them at code 0 and zero their log-prob so neither the
    # forward value nor the gradient sees NaN/inf.
    safe_targets = jnp.where(valid, targets, 0).astype(jnp.int32)
    logp = jnp.take_along_axis(log_probs, safe_targets[..., None], axis=-1)[..., 0]
    logp = jnp.where(valid, logp, 0.0)
    nll = -logp

    if isinstance(gamma, (int, float)) and gamma == 0:
        term = nll  # exact CE; avoids d/dx x^0 = 0 * x^-1 at p == 1
    else:
        one_minus_p = jnp.maximum(-jnp.expm1(logp), 0.0)  # 1 - p, accurate near p = 1
        positive = one_minus_p > 0
        safe_base = jnp.where(positive, one_minus_p, 1.0)
        modulator = jnp.where(positive, jnp.power(safe_base, gamma), 0.0)
        term = modulator * nll
    term = alpha * term

    weight_sum = jnp.sum(weights)
    denom = jnp.maximum(weight_sum, _EPS)
    loss = jnp.sum(jnp.where(valid, weights * term, 0.0)) / denom

    valid_f = valid.astype(jnp.float32)
    num_tokens = jnp.sum(valid_f)
    correct = (jnp.argmax(log_probs, axis=-1) == targets).astype(jnp.float32)
    metrics = {
        "loss": loss,
        "nll": jnp.sum(jnp.where(valid, weights * nll, 0.0)) / denom,
        "accuracy": jnp.sum(valid_f * correct) / jnp.maximum(num_tokens, 1.0),
        "num_tokens": num_tokens,
        "weight_sum": weight_sum,
    }
    return loss, metrics


def sid_cross_entropy(log_probs, targets, weights):
    """Plain weighted cross entropy on one SID level (focal_loss with gamma=0, alpha=1).

    Why: the baseline per-level SFT term; same metrics as focal_loss so the
    two are interchangeable in the training step.
    """
    return focal_loss(log_probs, targets, weights, gamma=0.0, alpha=1.0)


