"""weighted_cross_entropy against numbers computed by hand, and its hand-written gradient
against autodiff of the textbook formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.train.losses import weighted_cross_entropy

# One sequence of 3 tokens over a vocab of 2.
LOGITS = np.array(
    [
        [
            [0.0, np.log(3.0)],  # p = [1/4, 3/4]
            [np.log(3.0), 0.0],  # p = [3/4, 1/4]
            [0.0, 0.0],
        ]
    ],  # p = [1/2, 1/2]; padding below
    np.float32,
)
TARGETS = np.array([[1, 1, 0]], np.int32)


def test_plain_weighted_ce_and_metrics():
    weights = np.array([[1.0, 3.0, 0.0]], np.float32)
    loss, m = weighted_cross_entropy(LOGITS, TARGETS, weights)
    expected = (1.0 * -np.log(0.75) + 3.0 * -np.log(0.25)) / 4.0
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(m["nll"], expected, rtol=1e-6)
    assert m["num_tokens"] == 2 and m["weight_sum"] == 4.0
    assert m["accuracy"] == 0.5  # token 0 right (argmax 1), token 1 wrong; pad ignored
    assert m["z_loss"] == 0.0


def test_padding_is_ignored():
    weights = np.array([[1.0, 1.0, 0.0]], np.float32)
    poisoned = LOGITS.copy()
    poisoned[0, 2] = [50.0, -50.0]
    a, _ = weighted_cross_entropy(LOGITS, TARGETS, weights)
    b, _ = weighted_cross_entropy(poisoned, np.array([[1, 1, 1]], np.int32), weights)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_label_smoothing():
    weights = np.array([[1.0, 0.0, 0.0]], np.float32)
    eps = 0.2
    loss, m = weighted_cross_entropy(LOGITS, TARGETS, weights, label_smoothing=eps)
    # target dist = (1-eps)*[0,1] + eps/2 = [0.1, 0.9]
    expected = -(0.1 * np.log(0.25) + 0.9 * np.log(0.75))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(m["nll"], -np.log(0.75), rtol=1e-6)


def test_z_loss():
    weights = np.array([[1.0, 0.0, 0.0]], np.float32)
    loss, m = weighted_cross_entropy(LOGITS, TARGETS, weights, z_loss=0.5)
    log_z = np.log(1.0 + 3.0)
    np.testing.assert_allclose(m["z_loss"], 0.5 * log_z**2, rtol=1e-6)
    np.testing.assert_allclose(loss, -np.log(0.75) + 0.5 * log_z**2, rtol=1e-6)


def test_all_padding_gives_zero_not_nan():
    loss, m = weighted_cross_entropy(LOGITS, TARGETS, np.zeros((1, 3), np.float32))
    assert loss == 0.0 and m["accuracy"] == 0.0 and m["num_tokens"] == 0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="targets"):
        weighted_cross_entropy(LOGITS, TARGETS[:, :2], np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="logits"):
        weighted_cross_entropy(LOGITS[0], TARGETS, np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="label_smoothing"):
        weighted_cross_entropy(LOGITS, TARGETS, np.ones((1, 3), np.float32), label_smoothing=1.0)


def test_gradient_by_hand():
    """d loss / d logits = w/sum(w) * (softmax - onehot): token 0 (w 1/4) p = [1/4, 3/4], target
    1; token 1 (w 3/4) p = [3/4, 1/4], target 1; the padding token gets none."""
    weights = np.array([[1.0, 3.0, 0.0]], np.float32)
    grad = jax.grad(lambda x: weighted_cross_entropy(x, TARGETS, weights)[0])(LOGITS)
    expected = np.array([[[0.25 * 0.25, 0.25 * (0.75 - 1)], [0.75 * 0.75, 0.75 * (0.25 - 1)],
                          [0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(grad, expected, atol=1e-7)


def _reference_loss(logits, targets, weights, label_smoothing, z_loss):
    """The loss as log_softmax + take_along_axis, differentiated by JAX."""
    x = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(x, axis=-1)
    log_probs = x - log_z[..., None]
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    ce = (1 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)
    return jnp.sum(weights * (ce + z_loss * log_z**2)) / jnp.sum(weights)


@pytest.mark.parametrize("label_smoothing,z_loss,dtype", [
    (0.0, 0.0, jnp.float32), (0.1, 1e-3, jnp.float32), (0.1, 1e-3, jnp.bfloat16)])
def test_gradient_equals_autodiff_of_the_formula(label_smoothing, z_loss, dtype):
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(3, 5, 37)) * 3, dtype)
    targets = jnp.asarray(rng.integers(0, 37, (3, 5)), jnp.int32)
    weights = jnp.asarray(rng.random((3, 5)) * (rng.random((3, 5)) > 0.3), jnp.float32)
    ours = jax.value_and_grad(lambda x: weighted_cross_entropy(
        x, targets, weights, label_smoothing=label_smoothing, z_loss=z_loss)[0])(logits)
    ref = jax.value_and_grad(lambda x: _reference_loss(
        x, targets, weights, label_smoothing, z_loss))(logits)
    assert ours[1].dtype == dtype  # the gradient comes back in the logits' dtype
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-6)
    tol = 1e-7 if dtype == jnp.float32 else 4e-3  # bf16: both round the same f32 gradient
    np.testing.assert_allclose(np.asarray(ours[1], np.float32), np.asarray(ref[1], np.float32),
                               atol=tol)
