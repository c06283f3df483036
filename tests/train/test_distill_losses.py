"""Self-distillation losses against numbers computed independently in numpy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.train.fgm import fgm_perturb_tree, fgm_perturbation
from onesearch_jax.train.train_state import ema_update
from onesearch_jax.train.distill_losses import (
    focal_loss,
    sid_cross_entropy,
    symmetric_kl,
    tempered_kl,
)


# ---------------------------------------------------------------- numpy refs
def np_softmax_loop(row, tau=1.0):
    """Softmax of one row by explicit loops (float64), pads at -inf/-1e9 -> 0."""
    vals = [float(v) / tau for v in row]
    m = max(vals)
    exps = [math.exp(v - m) for v in vals]
    z = sum(exps)
    return [e / z for e in exps]


def np_kl_loop(t_row, s_row, tau=1.0):
    p = np_softmax_loop(t_row, tau)
    q = np_softmax_loop(s_row, tau)
    total = 0.0
    for pk, qk in zip(p, q):
        if pk > 0:
            total += pk * (math.log(pk) - math.log(qk))
    return total


def np_tempered_kl(t, s, mask, tau=1.0):
    num, den = 0.0, 0.0
    for b in range(t.shape[0]):
        for pos in range(t.shape[1]):
            if mask[b, pos] > 0:
                num += mask[b, pos] * np_kl_loop(t[b, pos], s[b, pos], tau)
                den += mask[b, pos]
    return tau * tau * num / max(den, 1e-8)


# 2x2x3 example; position (1, 1) is masked out.
T = np.array(
    [[[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], [[2.0, 2.0, -2.0], [5.0, 0.0, 0.0]]], np.float32
)
S = np.array(
    [[[0.5, 1.0, 1.0], [1.0, 0.0, 2.0]], [[0.0, 3.0, -1.0], [-4.0, 1.0, 2.0]]], np.float32
)
MASK = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32)


# ---------------------------------------------------------------- tempered_kl
def test_tempered_kl_single_position_hand_value():
    t = np.array([[[0.0, np.log(3.0), 0.0]]], np.float32)  # p = [.2, .6, .2]
    s = np.array([[[0.0, 0.0, 0.0]]], np.float32)  # q = [1/3] * 3
    m = np.ones((1, 1), np.float32)
    expected = 0.2 * np.log(0.2 * 3) + 0.6 * np.log(0.6 * 3) + 0.2 * np.log(0.2 * 3)
    np.testing.assert_allclose(tempered_kl(t, s, m), expected, rtol=1e-5)


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_tempered_kl_matches_loops(tau):
    expected = np_tempered_kl(T, S, MASK, tau)
    got = tempered_kl(jnp.asarray(T), jnp.asarray(S), jnp.asarray(MASK), tau=tau)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_tempered_kl_tau_squared_factor():
    # tau=2 equals 4 * (tau=1 KL of the halved logits).
    k2 = tempered_kl(T, S, MASK, tau=2.0)
    k1_half = tempered_kl(T / 2.0, S / 2.0, MASK, tau=1.0)
    np.testing.assert_allclose(k2, 4.0 * k1_half, rtol=1e-5)
    raw = np_tempered_kl(T, S, MASK, 2.0) / 4.0
    np.testing.assert_allclose(k2 / 4.0, raw, rtol=1e-5)


def test_tempered_kl_accepts_log_probs():
    log_t = jax.nn.log_softmax(T, axis=-1)
    log_s = jax.nn.log_softmax(S, axis=-1)
    np.testing.assert_allclose(
        tempered_kl(log_t, log_s, MASK), tempered_kl(T, S, MASK), rtol=1e-5
    )


def test_tempered_kl_zero_when_equal():
    assert float(tempered_kl(T, T, MASK)) == pytest.approx(0.0, abs=1e-7)
    assert float(tempered_kl(T, T, MASK, tau=3.0)) == pytest.approx(0.0, abs=1e-6)


def test_tempered_kl_ignores_masked_positions():
    base = tempered_kl(T, S, MASK)
    t2, s2 = T.copy(), S.copy()
    t2[1, 1] = [100.0, -50.0, 7.0]
    s2[1, 1] = [-np.inf, -np.inf, -np.inf]  # even a fully padded row
    changed = tempered_kl(t2, s2, MASK)
    np.testing.assert_allclose(changed, base, rtol=0, atol=0)
    g = jax.grad(lambda s: tempered_kl(t2, s, MASK))(jnp.asarray(s2))
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[1, 1] == 0)


def test_tempered_kl_empty_mask_is_zero():
    assert float(tempered_kl(T, S, np.zeros_like(MASK))) == 0.0


@pytest.mark.parametrize("pad", [-1e9, -np.inf])
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_tempered_kl_padded_codes_finite(pad, tau):
    t, s = T.copy(), S.copy()
    t[:, :, 2] = pad
    s[:, :, 2] = pad
    value = tempered_kl(t, s, MASK, tau=tau)
    assert np.isfinite(value)
    # Padded code carries no mass: equal to the 2-code KL on the first two codes.
    expected = np_tempered_kl(T[:, :, :2], S[:, :, :2], MASK, tau)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    gt, gs = jax.grad(lambda a, b: tempered_kl(a, b, MASK, tau=tau), argnums=(0, 1))(
        jnp.asarray(t), jnp.asarray(s)
    )
    for g in (gt, gs):
        g = np.asarray(g)
        assert not np.any(np.isnan(g))
        assert np.all(g[:, :, 2] == 0)


def test_tempered_kl_grad_student_analytic():
    g = jax.grad(lambda s: tempered_kl(T, s, MASK))(jnp.asarray(S))
    expected = np.zeros_like(S, dtype=np.float64)
    for b in range(2):
        for pos in range(2):
            q = np_softmax_loop(S[b, pos])
            p = np_softmax_loop(T[b, pos])
            for k in range(3):
                expected[b, pos, k] = (q[k] - p[k]) * MASK[b, pos] / MASK.sum()
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


def test_tempered_kl_stop_gradient_teacher():
    def f(t, s):
        return tempered_kl(jax.lax.stop_gradient(t), s, MASK, tau=2.0)

    gt, gs = jax.grad(f, argnums=(0, 1))(jnp.asarray(T), jnp.asarray(S))
    assert np.all(np.asarray(gt) == 0.0)
    assert np.any(np.asarray(gs) != 0.0)
    # Without the caller's stop_gradient the teacher does receive gradient.
    gt_free = jax.grad(lambda t: tempered_kl(t, S, MASK))(jnp.asarray(T))
    assert np.any(np.asarray(gt_free) != 0.0)


def test_tempered_kl_bfloat16_inputs_computed_in_f32():
    got = tempered_kl(jnp.asarray(T, jnp.bfloat16), jnp.asarray(S, jnp.bfloat16), MASK)
    assert got.dtype == jnp.float32
    expected = np_tempered_kl(
        np.asarray(jnp.asarray(T, jnp.bfloat16), np.float32),
        np.asarray(jnp.asarray(S, jnp.bfloat16), np.float32),
        MASK,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_tempered_kl_shape_errors():
    with pytest.raises(ValueError):
        tempered_kl(T, S[:, :, :2], MASK)
    with pytest.raises(ValueError):
        tempered_kl(T, S, MASK[:, :1])
    with pytest.raises(ValueError):
        tempered_kl(T, S, MASK, tau=0.0)


# ---------------------------------------------------------------- symmetric_kl
def test_symmetric_kl_hand_value_and_symmetry():
    num, den = 0.0, 0.0
    for b in range(2):
        for pos in range(2):
            if MASK[b, pos] > 0:
                kab = np_kl_loop(T[b, pos], S[b, pos])
                kba = np_kl_loop(S[b, pos], T[b, pos])
                num += MASK[b, pos] * 0.5 * (kab + kba)
                den += MASK[b, pos]
    expected = num / den
    ab = symmetric_kl(T, S, MASK)
    ba = symmetric_kl(S, T, MASK)
    np.testing.assert_allclose(ab, expected, rtol=1e-5)
    np.testing.assert_allclose(ab, ba, rtol=1e-6)
    assert float(symmetric_kl(T, T, MASK)) == pytest.approx(0.0, abs=1e-7)


def test_symmetric_kl_grad_flows_to_both():
    ga, gb = jax.grad(lambda a, b: symmetric_kl(a, b, MASK), argnums=(0, 1))(
        jnp.asarray(T), jnp.asarray(S)
    )
    ga, gb = np.asarray(ga), np.asarray(gb)
    assert np.any(ga != 0) and np.any(gb != 0)
    assert np.all(ga[1, 1] == 0) and np.all(gb[1, 1] == 0)  # masked position
    # Finite differences on one coordinate of b.
    eps = 1e-3
    bp, bm = S.astype(np.float64).copy(), S.astype(np.float64).copy()
    bp[0, 1, 2] += eps
    bm[0, 1, 2] -= eps

    def ref(b):
        total = 0.0
        for i, j in [(0, 0), (0, 1), (1, 0)]:
            total += 0.5 * (np_kl_loop(T[i, j], b[i, j]) + np_kl_loop(b[i, j], T[i, j]))
        return total / 3.0

    fd = (ref(bp) - ref(bm)) / (2 * eps)
    np.testing.assert_allclose(gb[0, 1, 2], fd, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("pad", [-1e9, -np.inf])
def test_symmetric_kl_padded_codes(pad):
    a, b = T.copy(), S.copy()
    a[:, :, 0] = pad
    b[:, :, 0] = pad
    value = symmetric_kl(a, b, MASK)
    assert np.isfinite(value)
    ga, gb = jax.grad(lambda x, y: symmetric_kl(x, y, MASK), argnums=(0, 1))(
        jnp.asarray(a), jnp.asarray(b)
    )
    assert not np.any(np.isnan(np.asarray(ga))) and not np.any(np.isnan(np.asarray(gb)))


# ---------------------------------------------------------------- focal / CE
# 1x2x3: position 0 p = [.5, .3, .2] target 0; position 1 p = [.1, .6, .3] target 2.
P_FOCAL = np.array([[[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]], np.float64)
LOGP_FOCAL = np.log(P_FOCAL).astype(np.float32)
TARGETS_FOCAL = np.array([[0, 2]], np.int32)


def test_focal_loss_hand_value():
    w = np.array([[1.0, 2.0]], np.float32)
    gamma, alpha = 2.0, 0.25
    t0 = -alpha * (1 - 0.5) ** gamma * np.log(0.5)
    t1 = -alpha * (1 - 0.3) ** gamma * np.log(0.3)
    expected = (1.0 * t0 + 2.0 * t1) / 3.0
    loss, m = focal_loss(LOGP_FOCAL, TARGETS_FOCAL, w, gamma=gamma, alpha=alpha)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(m["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(m["nll"], (-np.log(0.5) - 2 * np.log(0.3)) / 3.0, rtol=1e-5)
    assert float(m["accuracy"]) == 0.5  # pos 0 right, pos 1 argmax=1 != 2
    assert float(m["num_tokens"]) == 2.0 and float(m["weight_sum"]) == 3.0


def test_focal_gamma0_equals_ce():
    w = np.array([[0.5, 3.0]], np.float32)
    f_loss, f_m = focal_loss(LOGP_FOCAL, TARGETS_FOCAL, w, gamma=0.0, alpha=1.0)
    c_loss, c_m = sid_cross_entropy(LOGP_FOCAL, TARGETS_FOCAL, w)
    expected = (0.5 * -np.log(0.5) + 3.0 * -np.log(0.3)) / 3.5
    np.testing.assert_allclose(c_loss, expected, rtol=1e-6)
    assert float(f_loss) == float(c_loss)
    assert float(c_m["nll"]) == float(c_loss)
    for key in ("loss", "nll", "accuracy", "num_tokens", "weight_sum"):
        assert float(f_m[key]) == float(c_m[key])


def test_focal_weights_respected_and_padding_safe():
    logp = LOGP_FOCAL.copy()
    logp[0, 1, :] = [-np.inf, 0.0, -np.inf]  # target log-prob -inf at an ignored token
    targets = np.array([[0, -1]], np.int32)  # pad id at the ignored token
    w = np.array([[2.0, 0.0]], np.float32)
    loss, m = focal_loss(logp, targets, w, gamma=2.0, alpha=1.0)
    np.testing.assert_allclose(loss, -(0.5**2) * np.log(0.5), rtol=1e-5)
    assert float(m["num_tokens"]) == 1.0 and float(m["accuracy"]) == 1.0
    g = jax.grad(lambda x: focal_loss(x, targets, w)[0])(jnp.asarray(logp))
    assert np.all(np.isfinite(np.asarray(g)))
    # Zero weight everywhere -> zero loss, no NaN.
    loss0, _ = sid_cross_entropy(logp, targets, np.zeros_like(w))
    assert float(loss0) == 0.0


def test_focal_confident_token_grad_finite():
    logp = np.array([[[0.0, -np.inf, -np.inf]]], np.float32)  # p = 1 on the target
    for gamma in (0.0, 0.5, 2.0):
        g = jax.grad(lambda x: focal_loss(x, np.zeros((1, 1), np.int32), np.ones((1, 1)),
                                          gamma=gamma)[0])(jnp.asarray(logp))
        assert not np.any(np.isnan(np.asarray(g)))


# ---------------------------------------------------------------- FGM
def test_fgm_perturbation_norm_and_direction():
    g = np.array([[3.0, -4.0], [0.0, 12.0]], np.float32)  # ||g|| = 13
    r = np.asarray(fgm_perturbation(jnp.asarray(g), 0.5))
    np.testing.assert_allclose(np.sqrt(np.sum(r.astype(np.float64) ** 2)), 0.5, atol=1e-6)
    np.testing.assert_allclose(r, 0.5 * g / 13.0, rtol=1e-6)
    cos = np.sum(r * g) / (np.linalg.norm(r) * np.linalg.norm(g))
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)


def test_fgm_perturbation_extreme_scales():
    for scale in (1e-30, 1e25):
        g = np.array([1.0, 2.0, 2.0], np.float32) * np.float32(scale)
        r = np.asarray(fgm_perturbation(g, 1.0))
        np.testing.assert_allclose(r, [1 / 3, 2 / 3, 2 / 3], rtol=1e-5)


def test_fgm_perturbation_zero_grad():
    r = fgm_perturbation(jnp.zeros((2, 3)), 1.0)
    assert np.all(np.asarray(r) == 0.0) and not np.any(np.isnan(np.asarray(r)))
    r_jit = jax.jit(fgm_perturbation)(jnp.zeros((2, 3)), 1.0)
    assert np.all(np.asarray(r_jit) == 0.0)


def _tree():
    return {
        "embed": {"embedding": jnp.array([[1.0, 2.0], [3.0, 4.0]])},
        "dense": {"kernel": jnp.array([0.5, -0.5]), "bias": jnp.array(1.0)},
    }


def test_fgm_perturb_tree_changes_only_path():
    params = _tree()
    grads = {
        "embed": {"embedding": jnp.array([[0.0, 3.0], [0.0, 4.0]])},
        "dense": {"kernel": jnp.array([1.0, 1.0]), "bias": jnp.array(2.0)},
    }
    out = fgm_perturb_tree(params, grads, ("embed", "embedding"), 1.0)
    np.testing.assert_allclose(out["embed"]["embedding"], [[1.0, 2.6], [3.0, 4.8]], rtol=1e-6)
    assert out["dense"]["kernel"] is params["dense"]["kernel"]
    assert out["dense"]["bias"] is params["dense"]["bias"]
    # Input tree untouched; output is a new dict.
    np.testing.assert_array_equal(params["embed"]["embedding"], [[1.0, 2.0], [3.0, 4.0]])
    assert out is not params and out["embed"] is not params["embed"]
    # The perturbation is a constant: d(out)/d(grads) == 0.
    dg = jax.grad(
        lambda gr: jnp.sum(fgm_perturb_tree(params, gr, ("embed", "embedding"), 1.0)
                           ["embed"]["embedding"])
    )(grads)
    assert np.all(np.asarray(dg["embed"]["embedding"]) == 0.0)


def test_fgm_perturb_tree_bad_path():
    params = _tree()
    with pytest.raises(KeyError, match="missing"):
        fgm_perturb_tree(params, params, ("embed", "nope"), 1.0)
    with pytest.raises(KeyError, match="nope"):
        fgm_perturb_tree(params, params, ("nope",), 1.0)
    with pytest.raises(KeyError, match="grads"):
        fgm_perturb_tree(params, {"embed": {}}, ("embed", "embedding"), 1.0)


# ---------------------------------------------------------------- EMA
def test_ema_update_values():
    ema = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array(10.0)}}
    new = {"a": jnp.array([3.0, 0.0]), "b": {"c": jnp.array(0.0)}}
    out = ema_update(ema, new, 0.9)
    np.testing.assert_allclose(out["a"], [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 0], rtol=1e-6)
    np.testing.assert_allclose(out["b"]["c"], 9.0, rtol=1e-6)
    same = ema_update(ema, new, 1.0)
    np.testing.assert_array_equal(same["a"], ema["a"])
    copy = ema_update(ema, new, 0.0)
    np.testing.assert_array_equal(copy["a"], new["a"])


@pytest.mark.parametrize("decay", [-0.1, 1.5, float("nan")])
def test_ema_update_bad_decay(decay):
    with pytest.raises(ValueError):
        ema_update({"a": jnp.ones(2)}, {"a": jnp.ones(2)}, decay)
