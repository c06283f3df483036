"""The LLM stand-in: reads keywords from query text, errs at configured rates, is scored vs truth."""
import pytest

from configs.world import get_config
from onesearch_jax.world import taxonomy as tx
from onesearch_jax.world.keyword_llm import KeywordWriter
from onesearch_jax.world.keyword_score import score_keywords
from onesearch_jax.world.world import build_world, validate_config

ERRORS = ("bias_rate", "drop_exclusion_rate", "overgeneralise_rate", "noise_rate")


def _config(**knobs):
    c = get_config("tiny")
    for k in ERRORS:
        c.keywords[k] = 0.0
    c.keywords.coverage = 1.0
    for k, v in knobs.items():
        c.keywords[k] = v
    return c


@pytest.fixture(scope="module")
def world():
    return build_world(get_config("tiny"))


def _writer(world, **knobs):
    return KeywordWriter(_config(**knobs), world.catalog, world.users)


def _score(world, writer):
    rows = {t: kws for t in world.queries.texts if (kws := writer.write(t)) is not None}
    return score_keywords(world, rows, range(len(world.queries)))


def test_reads_a_named_exclusion_from_text(world):
    t = tx.get_taxonomy()
    for text in ("energy drinks without caffeine", "caffeine-free energy drinks",
                 "energy drnks without caffeine"):  # the typo is fixed, as an LLM would
        r = _writer(world).read(text)
        assert r.qtype == "negation" and r.leaves == (t.leaf_index("energy drinks"),), text
        assert r.exclude == (t.component_names.index("caffeine"),)


def test_reads_implicit_and_category_exclusions(world):
    t = tx.get_taxonomy()
    r = _writer(world).read("green tea safe in pregnancy")
    assert set(r.exclude) == {t.component_names.index("caffeine"), t.component_names.index("alcohol")}
    r = _writer(world).read("dark chocolate for diabetics")
    assert r.exclude == (t.component_names.index("sugar"),)
    r = _writer(world).read("trouble falling asleep, no supplements")
    assert r.function == t.function_names.index("better sleep")
    assert r.exclude_group == list(tx.CATEGORY_EXCLUSIONS).index("supplements")
    assert t.leaf_index("melatonin gummies") not in r.leaves
    assert t.leaf_index("weighted blanket") in r.leaves


def test_reads_need_in_a_held_out_phrasing(world):
    t = tx.get_taxonomy()
    r = _writer(world).read("any recommendations for trouble falling asleep")
    assert r.qtype == "need" and r.function == t.function_names.index("better sleep")


def test_error_free_writer_is_almost_exact_and_defaults_are_imperfect(world):
    exact = _score(world, _writer(world))
    assert exact["keywords/precision"] > 0.98 and exact["keywords/coverage"] == 1.0
    defaults = _score(world, KeywordWriter(world.config, world.catalog, world.users))
    assert 0.75 < defaults["keywords/precision"] < 0.97
    assert 0.85 < defaults["keywords/coverage"] < 1.0


@pytest.mark.parametrize("knob,metric", [
    ("bias_rate", "precision"), ("overgeneralise_rate", "precision"), ("noise_rate", "precision"),
    ("drop_exclusion_rate", "recall/negation")])  # a dropped keyword is a miss, not a wrong one
def test_each_error_lowers_its_score(world, knob, metric):
    exact = _score(world, _writer(world))["keywords/" + metric]
    assert _score(world, _writer(world, **{knob: 1.0}))["keywords/" + metric] < exact - 0.02


def test_drop_exclusion_writes_no_free_keywords(world):
    writer = _writer(world, drop_exclusion_rate=1.0)
    kws = writer.write("energy drinks without caffeine")
    assert not any("free" in k for f in kws.values() for k in f)


def test_bias_names_the_popular_leaf_for_the_words(world):
    writer = _writer(world, bias_rate=1.0)
    t = tx.get_taxonomy()
    text = "green tea without caffeine"
    leaf = writer.popular_leaf_for(text, writer.read(text))
    words = set(t.leaf_names[leaf].split())
    assert words & {"green", "tea", "caffeine"}
    assert writer.write(text)["category"][0] == t.leaf_names[leaf]


def test_coverage_zero_writes_nothing_and_output_is_deterministic(world):
    assert _writer(world, coverage=0.0).write("energy drinks") is None
    w = KeywordWriter(world.config, world.catalog, world.users)
    assert w.write("energy drinks", 3) == w.write("energy drinks", 3)
    assert set(w.write("energy drinks", 3)) == {"intent", "category", "attribute", "topic"}


@pytest.mark.parametrize("key,value,message", [
    ("bias_rte", 0.1, "keywords.bias_rte"), ("bias_rate", 1.5, "keywords.bias_rate"),
    ("coverage", -0.1, "keywords.coverage")])
def test_bad_keyword_knobs_are_named(key, value, message):
    c = get_config("tiny")
    c.keywords[key] = value
    with pytest.raises(ValueError, match=message):
        validate_config(c)
