"""TPMA / GRPO advantages, the policy loss, the k3 KL and list-wise DPO against hand values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from onesearch_jax.train import advantages as adv
from onesearch_jax.train import rl_losses

S3 = np.sqrt(3.0)


def _rollout():
    """One query, G = 3 samples, L = 5; targets t1, t2 and a masked t3 that o3 would match."""
    targets = np.array([[[1, 2, 3, 4, 5], [1, 7, 3, 4, 6], [9, 9, 9, 9, 9]]])
    codes = np.array([[[1, 2, 3, 0, 5], [1, 7, 0, 4, 6], [9, 9, 9, 9, 9]]])
    return dict(codes=jnp.asarray(codes), targets=jnp.asarray(targets),
                target_mask=jnp.asarray([[1.0, 1.0, 0.0]]),
                item_reward=jnp.asarray([[3.0, 1.0, 2.0]]), valid=jnp.ones((1, 3), bool))


def test_position_weights_default_and_ablations():
    np.testing.assert_array_equal(adv.position_weights(5), [2, 2, 1, 1, 0])
    np.testing.assert_array_equal(adv.position_weights(5, last_zero=False), [2, 2, 1, 1, 1])
    np.testing.assert_array_equal(adv.position_weights(5, "flat"), [1, 1, 1, 1, 0])
    with pytest.raises(ValueError, match="unknown position weight scheme 'steep'"):
        adv.position_weights(5, "steep")


def test_prefix_rewards_take_the_best_unmasked_target():
    r = _rollout()
    prefix, unweighted = adv.prefix_matches(r["codes"], r["targets"], r["target_mask"],
                                            adv.position_weights(5))
    # o1 vs t1 hits 1,1,1,0,1; o2 vs t2 hits 1,1,0,1,1; o3 matches only the masked t3.
    np.testing.assert_array_equal(prefix[0], [[2, 4, 5, 5, 5], [2, 4, 4, 5, 5], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(unweighted[0], [[1, 2, 3, 3, 4], [1, 2, 2, 3, 4],
                                                  [0, 0, 0, 0, 0]])


def test_tpma_advantages_and_gates_by_hand():
    a, g = adv.tpma_advantages(_rollout(), {})
    # Marginal rewards per position: o1 [2,2,1,0,0], o2 [2,2,0,1,0], o3 zeros; z-scored per
    # position over the group with the sample std.
    want = np.array([[1 / S3, 1 / S3, 2 / S3, -1 / S3, 0],
                     [1 / S3, 1 / S3, -1 / S3, 2 / S3, 0],
                     [-2 / S3, -2 / S3, -1 / S3, -1 / S3, 0]])
    np.testing.assert_allclose(a[0], want, rtol=1e-6, atol=1e-7)
    # g_1 = 1, g_l = clamp(U_{l-1} / (l-1), 0, 1).
    np.testing.assert_allclose(g[0], [[1, 1, 1, 1, 0.75], [1, 1, 1, 2 / 3, 0.75],
                                      [1, 0, 0, 0, 0]], rtol=1e-6)


def test_tpma_ablations_change_what_they_name():
    r = _rollout()
    _, g = adv.tpma_advantages(r, {"gate": False})
    np.testing.assert_array_equal(g, np.ones((1, 3, 5)))
    a_last, _ = adv.tpma_advantages(r, {"last_zero": False})
    # With w_5 = 1 the last marginals are o1 1, o2 1, o3 0 -> z = 1/sqrt3, 1/sqrt3, -2/sqrt3.
    np.testing.assert_allclose(a_last[0, :, 4], [1 / S3, 1 / S3, -2 / S3], rtol=1e-6)
    a_item, _ = adv.tpma_advantages(r, {"w_item": 0.5})
    a0, _ = adv.tpma_advantages(r, {})
    z_item = np.array([1.0, -1.0, 0.0])  # rewards 3, 1, 2: mean 2, sample std 1
    np.testing.assert_allclose(a_item - a0, 0.5 * np.broadcast_to(z_item[:, None], (3, 5))[None],
                               rtol=1e-6, atol=1e-7)


def test_zero_variance_groups_give_zero_advantage_not_nan():
    same = dict(_rollout(), codes=jnp.asarray(np.tile([[[1, 2, 3, 4, 5]]], (1, 3, 1))),
                item_reward=jnp.full((1, 3), 2.0))
    for name in adv.ADVANTAGES:
        a, g = adv.get_advantage(name)(same, {})
        assert np.all(np.isfinite(a)) and np.all(a == 0), name
    np.testing.assert_array_equal(adv.group_zscore(jnp.ones((2, 1))), np.zeros((2, 1)))


def test_grpo_advantage_is_the_group_zscore_of_the_item_reward_everywhere():
    a, g = adv.grpo_advantages(_rollout(), {})
    np.testing.assert_allclose(a[0], np.broadcast_to(np.array([1.0, -1.0, 0.0])[:, None],
                                                     (3, 5)), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(g, np.ones((1, 3, 5)))
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'"):
        adv.get_advantage("ppo")


def test_k3_kl_value_and_gradient():
    logp, ref = jnp.log(0.5), jnp.log(0.25)
    # e^(ref - logp) - (ref - logp) - 1 = 0.5 + log 2 - 1
    np.testing.assert_allclose(rl_losses.k3_kl(logp, ref), 0.5 + np.log(2) - 1, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(rl_losses.k3_kl)(logp, ref), 1 - 0.5, rtol=1e-6)
    # At ratio 1 (policy == reference) the KL and its gradient vanish.
    assert float(rl_losses.k3_kl(logp, logp)) == 0.0
    assert float(jax.grad(rl_losses.k3_kl)(logp, logp)) == 0.0


def test_policy_loss_ratio_one_clipping_and_kl_term():
    logp = jnp.log(jnp.array([[[0.5, 0.2]]]))
    a = jnp.array([[[1.0, -2.0]]])
    g = jnp.array([[[1.0, 0.5]]])
    loss, m = rl_losses.policy_loss(logp, logp, a, g)
    np.testing.assert_allclose(loss, -(1.0 * 1.0 + 0.5 * -2.0) / 2, atol=1e-7)
    assert float(m["ratio_max_abs_dev"]) == 0.0
    # d loss / d logp = -g * A / n at ratio 1 (the policy gradient).
    grad = jax.grad(lambda lp: rl_losses.policy_loss(lp, logp, a, g)[0])(logp)
    np.testing.assert_allclose(grad, [[[-0.5, 0.5]]], rtol=1e-6)
    # ratio 1.5 with eps 0.2: a positive advantage is clipped at 1.2 (no gradient), a negative
    # one keeps the unclipped (more pessimistic) 1.5.
    old = logp - jnp.log(1.5)
    loss_c, m_c = rl_losses.policy_loss(logp, old, a, jnp.ones_like(a), epsilon=0.2)
    np.testing.assert_allclose(loss_c, -(1.2 * 1.0 + 1.5 * -2.0) / 2, rtol=1e-6)
    grad_c = jax.grad(lambda lp: rl_losses.policy_loss(lp, old, a, jnp.ones_like(a),
                                                       epsilon=0.2)[0])(logp)
    np.testing.assert_allclose(grad_c, [[[0.0, 1.5]]], rtol=1e-6)
    assert float(m_c["clip_fraction"]) == 1.0
    ref = logp + jnp.log(0.5)
    loss_kl, m_kl = rl_losses.policy_loss(logp, logp, a, g, ref_logp=ref, beta=0.1)
    kl = 0.5 + np.log(2) - 1
    np.testing.assert_allclose(loss_kl, loss + 0.1 * kl, rtol=1e-6)
    np.testing.assert_allclose(m_kl["kl"], kl, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown loss aggregation 'max'"):
        rl_losses.policy_loss(logp, logp, a, g, aggregation="max")


def test_listwise_dpo_loss_by_hand():
    policy = jnp.array([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = jnp.array([[-1.5, -1.0, -2.0], [-2.0, -2.0, -2.0]])
    rewards = jnp.array([[2.0, 6.0, 3.0], [4.0, 4.0, 4.0]])  # row 2: no preference
    loss, m = rl_losses.listwise_dpo_loss(policy, ref, rewards, beta=0.5)
    # Row 1: chosen = candidate 1 (reward 6, D_w = -1); rejected 0 (D 0.5) and 2 (D -1).
    w0, w2 = (6 - 2) ** -1.5 + 1, (6 - 3) ** -1.5 + 1
    lse = np.log(np.exp(w0 * 0.5 * (0.5 + 1)) + np.exp(w2 * 0.5 * (-1 + 1)))
    want = np.log1p(np.exp(lse))  # -log sigmoid(-lse)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    assert float(m["dpo_rows"]) == 1.0
    # A tie with the chosen one is not a rejected candidate.
    tie = jnp.array([[2.0, 6.0, 6.0]])
    loss_tie, _ = rl_losses.listwise_dpo_loss(policy[:1], ref[:1], tie, beta=0.5)
    np.testing.assert_allclose(loss_tie, np.log1p(np.exp(w0 * 0.5 * 1.5)), rtol=1e-6)
    # Within min_gap of the chosen reward is a tie too, and the gap weight is bounded.
    near = jnp.array([[2.0, 6.0, 5.8]])
    loss_near, _ = rl_losses.listwise_dpo_loss(policy[:1], ref[:1], near, beta=0.5, min_gap=0.5)
    np.testing.assert_allclose(loss_near, np.log1p(np.exp(w0 * 0.5 * 1.5)), rtol=1e-6)
    np.testing.assert_allclose(rl_losses.reward_gap_weights(jnp.array([6.0]), jnp.array([5.99]),
                                                            min_gap=0.5), [[0.5 ** -1.5 + 1]])
    # The loss falls as the policy prefers the chosen candidate more than the reference does.
    grad = jax.grad(lambda p: rl_losses.listwise_dpo_loss(p, ref, rewards, beta=0.5)[0])(policy)
    assert grad[0, 1] < 0 and grad[0, 0] > 0 and np.all(grad[1] == 0)


def test_per_position_zscores_cancel_position_weights_when_the_best_target_is_fixed():
    """With one target, dR_{i,l} = w_l * hit_{i,l}: the per-position z-score divides w_l out,
    so `flat` and `paper` weights give the same advantages (what the ablation measured)."""
    r = dict(_rollout(), target_mask=jnp.asarray([[1.0, 0.0, 0.0]]))
    a_paper, _ = adv.tpma_advantages(r, {})
    a_flat, _ = adv.tpma_advantages(r, {"position_weights": "flat"})
    np.testing.assert_allclose(a_paper, a_flat, rtol=1e-6, atol=1e-7)
