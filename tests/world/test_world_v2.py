"""World v2: harder queries, never-logged test-day queries, closed keyword leaks, text keywords."""
import numpy as np
import pytest

from configs.world import get_config
from onesearch_jax import artifacts
from onesearch_jax import workdir as wd
from onesearch_jax.data import keywords_io
from onesearch_jax.world import logs
from onesearch_jax.world import taxonomy as tx
from onesearch_jax.world import text_keywords
from onesearch_jax.pipeline.world_build import build_world_workdir, keyword_leaks
from onesearch_jax.world.keyword_score import score_keywords
from onesearch_jax.world.relevance import relevance_tiers
from onesearch_jax.world.world import build_world


@pytest.fixture(scope="module")
def world():
    return build_world(get_config("tiny"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("world_v2"))
    return build_world_workdir(get_config("tiny"), workdir), workdir


def test_new_queries_are_issued_on_the_test_day_only(world):
    q = world.queries
    assert 0.05 < q.is_new.mean() < 0.3
    for day in range(int(world.config.num_days)):
        _, ids = logs.sample_traffic(world, np.random.default_rng(day), 4000, day)
        new = q.is_new[ids].mean()
        if logs.split_of_day(day, int(world.config.num_days)) == "test":
            assert new > 0.02
        else:
            assert new == 0.0


def test_held_out_need_phrasings_are_new_queries(world):
    q = world.queries
    heldout = [i for i, text in enumerate(q.texts) if q.qtype[i] == "need" and any(
        text.replace("cheap ", "").startswith(tpl.split("{p}")[0]) and tpl.split("{p}")[0]
        for tpl in tx.HELDOUT_NEED_TEMPLATES)]
    assert heldout and all(q.is_new[i] for i in heldout)


def test_every_query_type_has_new_texts_and_negations_come_in_three_kinds(world):
    q = world.queries
    for qtype in ("category", "category_attr", "brand", "need", "negation"):
        assert q.is_new[q.qtype == qtype].any(), qtype
    neg = [it for it in q.intents if it.qtype == "negation"]
    t = tx.get_taxonomy()
    named = [i for i, it in enumerate(q.intents) if it.qtype == "negation" and it.exclude
             and all(t.component_names[c] in q.texts[i] for c in it.exclude)]
    assert sum(it.exclude_group >= 0 for it in neg) > 0           # "..., no supplements"
    assert sum(len(it.exclude) > 1 for it in neg) > 0             # "safe in pregnancy"
    assert len(named) / len(neg) < 0.8                            # not every text names it


def test_category_exclusion_makes_the_excluded_leaves_irrelevant(world):
    t = tx.get_taxonomy()
    i = next(i for i, it in enumerate(world.queries.intents) if it.exclude_group >= 0)
    intent = world.queries.intents[i]
    tiers = relevance_tiers(world.catalog, intent)
    banned = list(tx.category_exclusion_leaves().values())[intent.exclude_group]
    in_banned = np.isin(world.catalog.leaf, banned)
    assert (tiers[in_banned] == 0).all()
    serving = world.catalog.has_function(intent.function) & ~in_banned
    assert (tiers[serving & np.isin(world.catalog.leaf, intent.leaves)] == 3).any()
    assert not set(intent.leaves) & set(banned) and t.leaf_names


def test_multi_component_exclusion_zeroes_items_with_any(world):
    t = tx.get_taxonomy()
    i = next(i for i, it in enumerate(world.queries.intents) if len(it.exclude) > 1)
    intent = world.queries.intents[i]
    tiers = relevance_tiers(world.catalog, intent)
    for c in intent.exclude:
        assert (tiers[world.catalog.contains(c)] == 0).all(), t.component_names[c]


def test_keywords_only_for_training_log_queries_and_no_leak(built):
    world, workdir = built
    counts = artifacts.load_query_event_counts(workdir)
    rows = artifacts.load_query_keywords(workdir)
    logged = {world.queries.texts[i] for i in np.flatnonzero(counts["train"] > 0)}
    assert rows and set(rows) <= logged
    m = wd.read_metrics(workdir)
    assert m["leak/test_queries_with_training_keywords"] == 0
    assert m["share/test_unseen_queries"] > 0.05
    assert m["share/test_unseen_queries"] >= m["share/test_new_queries"] > 0
    new_texts = {world.queries.texts[i] for i in np.flatnonzero(world.queries.is_new)}
    assert not new_texts & set(rows)


def test_leak_check_counts_a_leaking_keyword_file(built, tmp_path):
    world, workdir = built
    counts = artifacts.load_query_event_counts(workdir)
    unseen = np.flatnonzero((counts["test"] > 0) & (counts["train"] == 0))
    other = tmp_path / "leaky"
    (other / "world").mkdir(parents=True)
    rows = {(world.queries.texts[i], None): {"category": ["tea"]} for i in unseen[:3]}
    keywords_io.write_keywords_jsonl(wd.query_keywords_path(str(other)), rows)
    leaks = keyword_leaks(world, str(other), counts)
    assert leaks["leak/test_queries_with_training_keywords"] == 3
    assert leaks["leak/keyword_queries_not_in_training_logs"] == 3


def test_tokenizer_never_saw_new_query_texts(built):
    world, workdir = built
    tok = artifacts.load_tokenizer(workdir)
    q = world.queries
    titles_and_logged = " ".join(list(world.catalog.titles) + [t for t, n in zip(q.texts, q.is_new)
                                                               if not n])
    known = set(titles_and_logged.lower().split())
    novel = {w for t, n in zip(q.texts, q.is_new) if n for w in t.split() if w not in known}
    unk = tok.token_to_id("[UNK]")
    for word in sorted(novel)[:20]:  # words only new queries use come out as sub-words
        assert tok.token_to_id(word) is None or tok.token_to_id(word) == unk, word


def test_a_real_llm_jsonl_plugs_in_and_is_scored_the_same_way(built, tmp_path):
    world, workdir = built
    rows = artifacts.load_query_keywords(workdir)
    path = tmp_path / "llm.jsonl"
    text = next(iter(rows))
    external = {(text, None): {"intent": ["something"], "category": rows[text]["category"]}}
    external[("a query nobody issued", None)] = {"category": ["tea"]}
    keywords_io.write_keywords_jsonl(path, external)
    cfg = get_config("tiny")
    cfg.keywords.jsonl = str(path)
    other = str(tmp_path / "w")
    build_world_workdir(cfg, other)
    got = artifacts.load_query_keywords(other)
    assert set(got) == {text}  # only queries of the training logs are kept
    ids = np.flatnonzero(artifacts.load_query_event_counts(other)["train"] > 0)
    expected = score_keywords(world, got, ids)
    m = wd.read_metrics(other)
    assert m["keywords/precision"] == pytest.approx(expected["keywords/precision"])
    assert m["keywords/coverage"] == pytest.approx(1 / len(ids))


def test_item_keywords_come_from_title_and_a_noisy_sheet(world):
    t = tx.get_taxonomy()
    clean = text_keywords.attribute_sheet(world.catalog, 0, 0.0)
    noisy = text_keywords.attribute_sheet(world.catalog, 0, 0.2)
    set_attrs = (world.catalog.attrs >= 0).sum()
    kept = sum(len(n) - 4 for n in noisy)
    assert 0.7 * set_attrs < kept < 0.9 * set_attrs   # ~20% left blank
    for i in range(50):
        truth = [t.attr_values[a][v] for a, v in enumerate(world.catalog.attrs[i]) if v >= 0]
        assert clean[i][4:] == truth
    kws = text_keywords.item_keywords(world.catalog, 0, 0.2)
    needs = set(t.function_names) - set(t.mid_names) - set(t.leaf_names)
    for i in range(len(world.catalog)):  # hidden truth (needs served, X-free) only if titled
        title = world.catalog.titles[i].lower()
        assert all(k in noisy[i] or k.lower() in title for k in kws[i])
        assert not needs & set(kws[i])
    with pytest.raises(ValueError, match="item_keyword_noise"):
        text_keywords.attribute_sheet(world.catalog, 0, 1.5)


def test_query_sid_keywords_are_text_derived(world):
    q = world.queries
    kws = text_keywords.text_keywords(q.texts[:200])
    for text, words in zip(q.texts[:200], kws):
        assert all(w in text.lower() for w in words)
