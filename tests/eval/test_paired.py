"""Paired comparisons against numbers worked out by hand."""
import math

import numpy as np
import pytest

from onesearch_jax.eval import paired


def test_differences_pair_events_and_seeds():
    np.testing.assert_array_equal(paired.paired_differences([0, 1, np.nan], [1, 1, 0]),
                                  [1, 0, np.nan])
    with pytest.raises(ValueError, match="one shape"):
        paired.paired_differences(np.zeros((2, 3)), np.zeros((3,)))


def test_bootstrap_mean_and_interval_by_hand():
    assert paired.paired_bootstrap([1.0, 1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    mean, lo, hi = paired.paired_bootstrap([0.0, 1.0, np.nan], num_boot=500)
    assert mean == 0.5 and 0.0 <= lo <= 0.5 <= hi <= 1.0
    # Two seeds: event 0 counts twice (1 and 3), event 1 once (1): (1 + 3 + 1) / 3.
    mean, _, _ = paired.paired_bootstrap([[1.0, np.nan], [3.0, 1.0]])
    assert mean == pytest.approx(5 / 3)
    # A slice: only the first two events.
    assert paired.paired_bootstrap([2.0, 2.0, -9.0], mask=[True, True, False])[0] == 2.0
    assert all(math.isnan(x) for x in paired.paired_bootstrap([np.nan, np.nan]))


def test_bootstrap_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    d = rng.choice([-1.0, 0.0, 1.0], size=4000, p=[0.2, 0.5, 0.3])
    mean, lo, hi = paired.paired_bootstrap(d, num_boot=4000)
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert mean == pytest.approx(d.mean())
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


def test_resolved_means_the_interval_excludes_zero():
    assert paired.resolved(0.1, 0.3) and paired.resolved(-0.3, -0.01)
    assert not paired.resolved(-0.1, 0.2) and not paired.resolved(float("nan"), 1.0)


def test_seed_spread_by_hand():
    mean, hw, n = paired.seed_spread([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert (mean, n) == (2.0, 3) and hw == pytest.approx(4.302653 / math.sqrt(3))
    assert math.isnan(paired.seed_spread([[1.0, 2.0]])[1])


def test_minimal_detectable_effect_and_the_events_it_needs():
    # (1.959964 + 0.841621) * 0.3 / sqrt(8000 * 3) = 0.0054252...
    assert paired.minimal_detectable_effect(0.3, 8000, 3) == pytest.approx(0.0054252, abs=1e-6)
    # ((2.801585 * 0.3 / 0.005) ** 2) / 3 = 9418.7 -> 9419 events per seed.
    assert paired.events_for_effect(0.3, 0.005, 3) == 9419
    with pytest.raises(ValueError):
        paired.events_for_effect(0.3, 0.0)


def test_compare_reports_every_metric_and_slice():
    a = {"rel_hr@10": np.array([0.0, 1.0, 1.0, 0.0])}
    b = {"rel_hr@10": np.array([1.0, 1.0, 1.0, 1.0]), "click_hr@10": np.zeros(4)}
    out = paired.compare(a, b, {"tail": np.array([True, False, False, False])}, ["rel_hr@10",
                                                                               "click_hr@10"])
    assert set(out) == {"rel_hr@10", "rel_hr@10/tail"}
    assert out["rel_hr@10"][0] == 0.5 and out["rel_hr@10/tail"] == [1.0, 1.0, 1.0]
