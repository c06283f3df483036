"""The simulated world: config guards, determinism, relevance rules, click model, keywords, I/O."""
import numpy as np
import pytest

from configs.world import get_config
from onesearch_jax.world import click_model
from onesearch_jax.world import taxonomy as tx
from onesearch_jax.world.catalog import Catalog
from onesearch_jax.world.keyword_fields import render_keywords
from onesearch_jax.world.logs import iter_event_chunks, iter_search_events, split_of_day
from onesearch_jax.world.queries import Intent, make_typo, slices_from_freq
from onesearch_jax.world.relevance import relevance_tiers
from onesearch_jax.world.world import World, build_world, validate_config

SMALL = "tiny,num_items=800,num_queries=300,num_users=200,num_days=4,events_per_day=300"


@pytest.fixture(scope="module")
def world():
    return build_world(get_config("tiny"))


# --- config -------------------------------------------------------------------------------------
def test_unknown_preset_names_valid_ones():
    with pytest.raises(ValueError, match="tiny, small, base"):
        get_config("huge")


def test_unknown_config_key_names_valid_ones():
    with pytest.raises(ValueError, match="num_items"):
        get_config("tiny,num_itemz=5")
    cfg = get_config("tiny")
    cfg.bogus_knob = 1
    with pytest.raises(ValueError, match="bogus_knob"):
        validate_config(cfg)


def test_config_override_parses_types():
    cfg = get_config("small,num_items=1234,new_query_share=0.25")
    assert cfg.num_items == 1234 and cfg.new_query_share == 0.25 and cfg.preset == "small"


# --- determinism --------------------------------------------------------------------------------
def _events(world):
    return [chunk for chunk in iter_event_chunks(world)]


def test_same_seed_gives_identical_world_and_events():
    a, b = build_world(get_config(SMALL)), build_world(get_config(SMALL))
    assert a.catalog.titles == b.catalog.titles and a.queries.texts == b.queries.texts
    for name in ("leaf", "brand", "attrs", "functions", "components", "price", "popularity"):
        np.testing.assert_array_equal(getattr(a.catalog, name), getattr(b.catalog, name))
    np.testing.assert_array_equal(a.queries.freq, b.queries.freq)
    np.testing.assert_array_equal(a.users.history, b.users.history)
    for ca, cb in zip(_events(a), _events(b)):
        for key in ca:
            np.testing.assert_array_equal(ca[key], cb[key])


def test_different_seed_differs():
    a = build_world(get_config(SMALL))
    b = build_world(get_config(SMALL + ",seed=1"))
    assert a.catalog.titles != b.catalog.titles
    assert not np.array_equal(a.catalog.leaf, b.catalog.leaf)


# --- relevance rules on hand-made items ---------------------------------------------------------
def _hand_catalog():
    t = tx.get_taxonomy()
    energy, sparkling, dog_food, tea = (t.leaf_index(n) for n in
                                        ("energy drinks", "sparkling water", "dog food", "herbal tea"))
    caffeine = t.component_names.index("caffeine")
    fatigue = t.function_names.index("relieve fatigue")
    a_flavor = t.attr_type_index("flavor")
    lemon = t.attr_values[a_flavor].index("lemon")
    peach = t.attr_values[a_flavor].index("peach")
    attrs = np.full((5, len(t.attr_types)), -1, np.int32)
    attrs[:, a_flavor] = [lemon, lemon, peach, -1, lemon]
    cat = Catalog(
        product_ids=[f"p{i:07d}" for i in range(5)], titles=["x"] * 5,
        leaf=np.array([energy, energy, energy, sparkling, tea], np.int32),
        brand=np.array([0, 1, 2, 0, 3], np.int32), attrs=attrs,
        functions=np.array([0, 0, 0, 0, 1 << fatigue], np.int64),
        components=np.array([1 << caffeine, 0, 0, 0, 0], np.int32),
        price=np.ones(5, np.float32), price_band=np.ones(5, np.int8),
        popularity=np.full(5, 0.2, np.float32), quality=np.full(5, 0.5, np.float32))
    return cat, dict(energy=energy, caffeine=caffeine, fatigue=fatigue, flavor=a_flavor,
                     lemon=lemon)


def test_negation_violation_is_tier0_and_met_constraints_tier3():
    cat, ids = _hand_catalog()
    intent = Intent("negation", (ids["energy"],), exclude=(ids["caffeine"],))
    # caffeinated energy drink -> 0; caffeine-free ones -> 3; sparkling water (same mid) -> 1;
    # herbal tea (other mid of food & drinks) -> 0.
    np.testing.assert_array_equal(relevance_tiers(cat, intent), [0, 3, 3, 1, 0])


def test_partial_attributes_are_tier2():
    cat, ids = _hand_catalog()
    intent = Intent("category_attr", (ids["energy"],), ((ids["flavor"], ids["lemon"]),), brand=1)
    # item 1: lemon + brand 1 -> 3; items 0 and 2 miss a constraint -> 2.
    np.testing.assert_array_equal(relevance_tiers(cat, intent, [0, 1, 2, -1]), [2, 3, 2, 0])


def test_need_served_in_another_category_is_related():
    cat, ids = _hand_catalog()
    intent = Intent("need", (ids["energy"],), function=ids["fatigue"])
    # energy drinks without the function -> 2, herbal tea serving it -> 1.
    np.testing.assert_array_equal(relevance_tiers(cat, intent)[[0, 4]], [2, 1])


def test_substitute_excludes_named_brand():
    cat, ids = _hand_catalog()
    intent = Intent("substitute", (ids["energy"],), not_brand=0)
    np.testing.assert_array_equal(relevance_tiers(cat, intent)[:3], [2, 3, 3])


# --- click model --------------------------------------------------------------------------------
def test_position_bias_monte_carlo():
    cfg = get_config("tiny")
    e, p = 20000, 10
    tiers = np.full((e, p), 3)
    zeros = np.zeros((e, p))
    attract = click_model.attractiveness(tiers, zeros, zeros > 0, zeros > 0, zeros, np.ones(e), cfg)
    probs = click_model.click_probs(attract, cfg.examine_eta)
    rng = np.random.default_rng(0)
    clicks, _ = click_model.sample_clicks_orders(probs, zeros, rng.random((e, p)),
                                                 rng.random((e, p)))
    rate = clicks.mean(0)
    assert rate[0] > rate[2] > rate[5] > rate[9]
    assert rate[0] == pytest.approx(cfg.attract_by_tier[3], abs=0.015)


def test_relevant_items_clicked_more_at_equal_position():
    cfg = get_config("tiny")
    tiers = np.array([[0, 1, 2, 3]])
    z = np.zeros((1, 4))
    a = click_model.attractiveness(tiers, z, z > 0, z > 0, z, np.ones(1), cfg)
    assert np.all(np.diff(a[0]) > 0)
    boosted = click_model.attractiveness(tiers, z, z > 0, z > 0, z, np.array([2.0]), cfg)
    assert boosted[0, 0] == pytest.approx(2 * a[0, 0]) and boosted[0, 3] == a[0, 3]


# --- keywords -----------------------------------------------------------------------------------
def test_negation_keywords_name_the_excluded_component(world):
    t = tx.get_taxonomy()
    intent = Intent("negation", (t.leaf_index("energy drinks"),),
                    exclude=(t.component_names.index("caffeine"),))
    kws = render_keywords(intent)
    assert kws["attribute"] == ["caffeine-free"]
    assert kws["intent"][0] == "caffeine-free" and "energy drinks" in kws["category"]
    assert "natural energy" in kws["topic"]


# --- queries, logs, legacy engine ---------------------------------------------------------------
def test_slices_split_traffic_50_30_20():
    # sorted: 0.5 starts at 0 (head), 0.25 at 0.5 and 0.125 at 0.75 (torso), the rest >= 0.875.
    freq = np.array([0.125, 0.5, 0.25, 0.0625, 0.0625])
    np.testing.assert_array_equal(slices_from_freq(freq), ["torso", "head", "torso", "tail", "tail"])


def test_typo_is_one_edit_away():
    rng = np.random.default_rng(0)
    for _ in range(20):
        typo = make_typo(rng, "melatonin gummies")
        assert typo != "melatonin gummies" and abs(len(typo) - len("melatonin gummies")) <= 1


def test_event_fields_and_splits():
    w = build_world(get_config(SMALL))
    events = iter_search_events(w, days=[3])
    ev = next(events)
    assert ev["items"].dtype == np.int32 and ev["items"].shape == (10,)
    assert ev["clicks"].dtype == np.int8 and ev["history"].shape == (w.config.history_len,)
    assert int(ev["day"]) == 3 and np.all(ev["orders"] <= ev["clicks"])
    assert [split_of_day(d, 4) for d in range(4)] == ["train", "train", "valid", "test"]


def test_legacy_engine_fails_negation(world):
    items, _, _, tiers = world.legacy_candidates()
    neg = np.flatnonzero(world.queries.qtype == "negation")
    top10 = tiers[neg, :10]
    # lexical matching retrieves items that contain the negated word: many tier-0 results.
    assert (top10 == 0).mean() > 0.25


# --- persistence --------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path, world):
    world.save(str(tmp_path))
    back = World.load(str(tmp_path), config=world.config)
    assert back.catalog.product_ids == world.catalog.product_ids
    assert back.catalog.titles == world.catalog.titles
    np.testing.assert_array_equal(back.catalog.attrs, world.catalog.attrs)
    assert back.queries.intents == world.queries.intents
    np.testing.assert_array_equal(back.queries.freq, world.queries.freq)
    np.testing.assert_array_equal(back.users.brands, world.users.brands)
    assert back.stats() == world.stats()
    with pytest.raises(ValueError, match="num_items"):
        World.load(str(tmp_path), config=get_config("tiny,num_items=999"))
