"""Legacy lexical engine on hand-made titles, and the online A/B simulator."""
import numpy as np
import pytest

from configs.world import get_config
from onesearch_jax.data.legacy_engine import LegacyEngine, personalised_top, tokenize
from onesearch_jax.data.simulator import legacy_search_fn, oracle_search_fn, simulate_traffic
from onesearch_jax.data.world import build_world


@pytest.fixture(scope="module")
def world():
    return build_world(get_config("tiny"))


def test_tokenize_splits_hyphens_and_case():
    assert tokenize("Caffeine-Free Energy Drinks 12 Pack") == ["caffeine", "free", "energy",
                                                              "drinks", "12", "pack"]


def test_lexical_engine_matches_the_negated_word():
    titles = ["Zenora Caffeine-Free Energy Drinks", "BrewHaus Energy Drinks with Caffeine",
              "PawPrime Dog Food", "Zenora Sparkling Water"]
    engine = LegacyEngine.build(titles, np.full(4, 0.25, np.float32), max_posting=10,
                                pop_weight=0.0)
    items, scores, match = engine.candidates(["energy drinks without caffeine"], k=4)
    # Both drinks match all known tokens equally well: lexical search cannot tell them apart.
    assert set(items[0, :2].tolist()) == {0, 1}
    assert items[0, 2] == -1 and items[0, 3] == -1
    np.testing.assert_allclose(match[0, :2], [1.0, 1.0])


def test_postings_truncated_to_most_popular():
    titles = ["red mug"] * 5
    pop = np.array([0.1, 0.4, 0.2, 0.25, 0.05], np.float32)
    engine = LegacyEngine.build(titles, pop, max_posting=2, pop_weight=0.0)
    items, _, _ = engine.candidates(["mug"], k=5)
    assert set(items[0][items[0] >= 0].tolist()) == {1, 3}


def test_personalised_top_prefers_liked_brand():
    scores = np.array([[3.0, 2.9, 1.0]])
    brands = np.array([[7, 8, 9]])
    order = personalised_top(scores, brands, np.array([[8]]), np.ones((1, 3), bool), k=2, bonus=1.0)
    np.testing.assert_array_equal(order, [[1, 0]])


def test_identical_arms_have_zero_lift(world):
    fn = legacy_search_fn(world)
    out = simulate_traffic(fn, world, num_events=300, seed=0, baseline_fn=fn, num_bootstrap=50)
    for key in ("ctr_lift", "ctr_lift_ci_low", "ctr_lift_ci_high", "gmv_lift", "orders_lift"):
        assert out[key] == 0.0


def test_relevance_oracle_beats_legacy_engine(world):
    out = simulate_traffic(oracle_search_fn(world), world, num_events=1500, seed=1,
                           baseline_fn=legacy_search_fn(world), num_bootstrap=200)
    assert out["ctr_lift_ci_low"] > 0
    assert out["ctr_lift_ci_low"] <= out["ctr_lift"] <= out["ctr_lift_ci_high"]
    assert "ctr_lift/tail" in out and "gmv_per_search/tail" in out


def test_unknown_product_ids_get_no_clicks(world):
    out = simulate_traffic(lambda qs, us: [["nope"] * 10 for _ in qs], world, num_events=50, seed=0)
    assert out["ctr"] == 0.0 and out["gmv_per_search"] == 0.0


def test_search_fn_must_answer_every_query(world):
    with pytest.raises(ValueError, match="result lists"):
        simulate_traffic(lambda qs, us: [], world, num_events=10, seed=0)
