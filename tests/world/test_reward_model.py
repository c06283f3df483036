"""The learned reward: logistic regression, AUC and calibration error by hand, and a reward model
fitted on a tiny world's training logs that ranks and calibrates on the valid day."""
import numpy as np
import pytest
from scipy import optimize

from configs.world import get_config
from onesearch_jax import artifacts
from onesearch_jax.workdir import reward_model_path
from onesearch_jax.pipeline.world_build import build_reward_model, build_world_workdir
from onesearch_jax.world.reward_model import (RewardModel, auc, expected_calibration_error,
                                              fit_logistic, sigmoid)


def test_auc_by_hand():
    # pairs (pos, neg): (0.9,0.1) win, (0.9,0.5) win, (0.4,0.1) win, (0.4,0.5) loss -> 3/4.
    assert auc(np.array([0.9, 0.4, 0.1, 0.5]), np.array([1, 1, 0, 0])) == pytest.approx(0.75)
    assert auc(np.array([0.3, 0.3]), np.array([1, 0])) == pytest.approx(0.5)  # a tie counts half
    assert np.isnan(auc(np.array([0.3, 0.2]), np.array([1, 1])))


def test_calibration_error_by_hand():
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 0, 1, 0])
    # two bins: |0.1 - 0| * 0.5 + |0.9 - 0.5| * 0.5 = 0.25
    assert expected_calibration_error(p, y, bins=2) == pytest.approx(0.25)


def test_logistic_regression_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = rng.random(400) < sigmoid(x @ np.array([1.5, -2.0, 0.3]) + 0.5)
    w = fit_logistic(x, y, l2=2.0)

    def loss(v):
        z = x @ v[:3] + v[3]
        return np.sum(np.logaddexp(0, z) - y * z) + 1.0 * np.sum(v[:3] ** 2)
    ref = optimize.minimize(loss, np.zeros(4), method="BFGS").x
    np.testing.assert_allclose(w, ref, atol=1e-4)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("reward"))
    world = build_world_workdir(get_config("tiny"), workdir)
    metrics = build_reward_model(world, workdir)  # what build_world records, with the ceiling
    return world, artifacts.load_reward_model(workdir), metrics, workdir


def test_reward_model_ranks_like_the_true_click_model_and_is_calibrated(fitted):
    _, _, m, _ = fitted
    for name in ("ctr_auc_valid", "ctr_auc_valid_top", "ctr_auc_valid_with_position",
                 "order_auc_valid"):
        assert m[f"reward/{name}"] > m[f"reward/true_{name}"] - 0.03, name
    assert m["reward/ctr_auc_valid_with_position"] > 0.68
    assert m["reward/ctr_ece_valid"] < 0.03


def test_reward_learns_position_bias_and_relevance(fitted):
    _, model, _, _ = fitted
    assert model.position_bias[0] == 0 and np.all(np.diff(model.position_bias) < 0.1)
    assert model.position_bias[-1] < -1.0          # lower slots are seen less
    tier1, tier2, tier3 = model.ctr_w[:3]
    assert tier3 > tier2 > 0 and tier3 > tier1


def test_reward_scores_pairs_never_logged(fitted, tmp_path):
    world, model, _, _ = fitted
    items = np.array([world.oracle_ranking(5, 10), [0, 1, 2, 3, 4, 5, 6, 7, 8, -1]])
    ctr = model.ctr(world, np.array([5, 5]), items, np.array([3, 3]))
    order = model.order_given_click(world, np.array([5, 5]), items, np.array([3, 3]))
    for p in (ctr, order):
        assert p.shape == (2, 10) and (p >= 0).all() and (p <= 1).all()
    assert ctr[1, -1] == 0.0                       # an empty slot gets nothing
    at_slots = model.ctr(world, np.array([5]), items[:1], np.array([3]), positions=np.arange(10))
    assert at_slots[0, 0] == pytest.approx(ctr[0, 0]) and (at_slots[0, 1:] < ctr[0, 1:]).all()
    assert ctr[0].mean() > ctr[1, :9].mean()       # relevant items beat arbitrary ones
    path = str(tmp_path / "rm.npz")
    model.save(path)
    np.testing.assert_array_equal(RewardModel.load(path).ctr(world, np.array([5]), items[:1],
                                                             np.array([3])), ctr[:1])
    with pytest.raises(FileNotFoundError, match="build_world"):
        RewardModel.load(str(tmp_path / "missing.npz"))
    assert reward_model_path("W").endswith("world/reward_model.npz")
