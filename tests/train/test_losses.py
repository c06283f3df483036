"""weighted_cross_entropy against numbers computed by hand."""

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
