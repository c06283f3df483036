"""Legacy lexical engine on hand-made titles, and the online A/B simulator."""
import numpy as np
import pytest

from configs.world import get_config
from onesearch_jax.world.legacy_engine import LegacyEngine, personalised_top, tokenize
from onesearch_jax.world.click_model import perturbed_config
from onesearch_jax.world.simulator import (legacy_search_fn, oracle_search_fn, result_pages,
                                          simulate_traffic)
from onesearch_jax.world.world import build_world


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
    assert out["ctr_lift_ci_low"] > 0 and out["page_ctr_lift_ci_low"] > 0
    for lift in ("ctr_lift", "orders_lift", "gmv_lift"):
        assert out[f"{lift}_ci_low"] <= out[lift] <= out[f"{lift}_ci_high"] and out[lift] > 0
    assert "ctr_lift/tail" in out and "gmv_per_search/tail" in out


def test_per_search_lifts_average_to_the_lifts_and_pair_across_arms(world):
    legacy, oracle = legacy_search_fn(world), oracle_search_fn(world)
    runs = []
    for fn in (oracle, legacy):
        searches = {}
        out = simulate_traffic(fn, world, num_events=400, seed=2, baseline_fn=legacy,
                               num_bootstrap=20, per_event=searches,
                               train_query_events=np.zeros(len(world.queries.texts)))
        runs.append((out, searches))
    (out, s), (same, s_legacy) = runs
    for lift in ("ctr_lift", "page_ctr_lift", "orders_lift", "gmv_lift"):
        assert np.mean(s["lifts"][lift]) == pytest.approx(out[lift], abs=1e-9)
        assert np.mean(s_legacy["lifts"][lift]) == pytest.approx(0.0, abs=1e-9)
        # Same traffic, same random numbers: the per-search difference is the lift difference.
        diff = s["lifts"][lift] - s_legacy["lifts"][lift]
        assert np.mean(diff) == pytest.approx(out[lift] - same[lift], abs=1e-9)
    tail = s["slices"]["tail"]
    # On a slice, against the whole baseline's mean (what a paired slice difference divides by).
    assert np.mean(s["lifts"]["ctr_lift"][tail]) == pytest.approx(
        out["ctr/tail"] / out["baseline/ctr"] - 1, rel=1e-6)
    np.testing.assert_array_equal(s["event_id"], s_legacy["event_id"])
    assert s["slices"]["unseen"].all() and len(s["event_id"]) == 400


def test_unknown_product_ids_get_no_clicks(world):
    out = simulate_traffic(lambda qs, us: [["nope"] * 10 for _ in qs], world, num_events=50, seed=0)
    assert out["ctr"] == 0.0 and out["gmv_per_search"] == 0.0


def test_search_fn_must_answer_every_query(world):
    with pytest.raises(ValueError, match="result lists"):
        simulate_traffic(lambda qs, us: [], world, num_events=10, seed=0)


def test_pages_are_distinct_known_items_filled_from_the_arm():
    index = {"a": 0, "b": 1, "c": 2, "d": 3}
    pages = result_pages([["a", "a", "x", "b"], ["c", "b", "a", "d", "c"]], index, k=3)
    np.testing.assert_array_equal(pages, [[0, 1, -1], [2, 1, 0]])


@pytest.fixture(scope="module")
def tricks(world):
    """The review's gaming tricks and the relevance oracle, each against the legacy engine."""
    oracle = oracle_search_fn(world)
    text_to_query = {t: i for i, t in enumerate(world.queries.texts)}
    pids, price = world.catalog.product_ids, world.catalog.price

    def price_sort(texts, users):  # within the best tiers, the most expensive first
        return [[pids[i] for i in np.lexsort((-price, -world.relevance(text_to_query[t])))[:10]]
                for t in texts]
    arms = {"oracle": oracle,
            "top_only": lambda t, u: [r[:1] for r in oracle(t, u)],
            "repeat_top": lambda t, u: [r[:1] * 10 for r in oracle(t, u)],
            "price_sort": price_sort}
    sensitive = lambda users: world.users.price_sensitivity[users] > 0.6  # noqa: E731
    return {name: simulate_traffic(fn, world, num_events=3000, seed=0, num_bootstrap=100,
                                   baseline_fn=legacy_search_fn(world), user_filter=sensitive)
            for name, fn in arms.items()}


def test_showing_fewer_or_repeated_items_gains_nothing_over_the_oracle(tricks):
    for trick in ("top_only", "repeat_top"):
        for metric in ("ctr", "page_ctr", "orders_per_search", "gmv_per_search"):
            assert tricks[trick][metric] <= tricks["oracle"][metric], (trick, metric)
    for metric in ("ctr", "orders_per_search", "gmv_per_search"):  # a page is deduplicated
        assert tricks["repeat_top"][metric] == tricks["top_only"][metric]


def test_price_sort_pays_only_as_far_as_price_sensitivity_lets_it(tricks):
    price, oracle = tricks["price_sort"], tricks["oracle"]
    # Price-sensitive users order less from the expensive page than from the oracle's ...
    assert price["orders_per_search/users"] < oracle["orders_per_search/users"]
    # ... and more so than everybody else does, so its GMV gain is smallest among them.
    drop = lambda r, s: r[f"orders_per_search{s}"] / oracle[f"orders_per_search{s}"]  # noqa: E731
    assert drop(price, "/users") < drop(price, "")
    assert price["gmv_lift/users"] < price["gmv_lift"]


def test_test_day_traffic_has_new_queries_and_train_days_none(world):
    fn = oracle_search_fn(world)
    test_day = simulate_traffic(fn, world, num_events=800, seed=0)
    train_day = simulate_traffic(fn, world, num_events=800, seed=0, day=0)
    assert test_day["num_events/new"] > 0 and train_day["num_events/new"] == 0


def test_perturbed_click_model_is_deterministic_and_keeps_tier_order(world):
    a, b = perturbed_config(world.config, 3), perturbed_config(world.config, 3)
    assert a.to_dict() == b.to_dict() and a.to_dict() != perturbed_config(world.config, 4).to_dict()
    assert a.attract_by_tier != world.config.attract_by_tier
    assert list(a.attract_by_tier) == sorted(a.attract_by_tier)
    out = simulate_traffic(oracle_search_fn(world), world, num_events=1500, seed=1, perturb_seed=3,
                           baseline_fn=legacy_search_fn(world), num_bootstrap=100)
    assert out["ctr_lift_ci_low"] > 0
