"""The SFT task mixture: inputs carry the right pieces, batches are resumable."""
import itertools

import numpy as np
import pytest

from configs import world as world_configs
from onesearch_jax.data import sft_tasks, text_tokenizer
from onesearch_jax.world import logs
from onesearch_jax.world.keyword_llm import KeywordWriter
from onesearch_jax.world.world import build_world
from onesearch_jax.data.text_tokenizer import TASK_TOKENS
from onesearch_jax.sid.vocab import SidVocab



@pytest.fixture(scope="module")
def setup():
    world = build_world(world_configs.get_config(
        "tiny,num_items=600,num_queries=200,num_users=100,events_per_day=150,num_days=4"))
    tok = text_tokenizer.train_text_tokenizer(
        list(world.catalog.titles) + world.queries.texts, 800, extra_special_tokens=TASK_TOKENS)
    vocab = SidVocab(tok.get_vocab_size(), (8, 4, 4, 4, 4))
    rng = np.random.default_rng(0)
    item_codes = rng.integers(0, 4, (len(world.catalog), 5))
    query_codes = rng.integers(0, 4, (len(world.queries), 5))
    chunks = list(logs.iter_event_chunks(world, days=[0, 1]))
    events = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    weight = events["clicks"].astype(np.float32) + events["orders"]
    e, p = np.nonzero(weight > 0)
    clicks = {"query_id": events["query_id"][e], "item": events["items"][e, p], "weight": weight[e, p]}
    writer = KeywordWriter(world.config, world.catalog)
    logged = {world.queries.texts[q] for q in np.unique(events["query_id"])}
    keywords = {t: kws for t in sorted(logged) if (kws := writer.write(t)) is not None}
    builder = sft_tasks.TaskBuilder(world, tok, vocab, item_codes, query_codes, enc_len=48, dec_len=8,
                                    query_keywords=keywords)
    return builder, builder.build(clicks, events), events, item_codes, vocab


def test_tasks_have_fixed_shapes_and_sid_targets(setup):
    builder, tasks, events, item_codes, vocab = setup
    for name, t in tasks.items():
        assert t.enc.shape[1] == 48 and t.dec.shape[1] == 8 and len(t) > 0, name
    t = tasks["item_to_sid"]
    np.testing.assert_array_equal(t.dec[:, :5], vocab.to_tokens(item_codes))
    assert (t.weight[:, :5] == 1).all() and (t.weight[:, 5:] == 0).all()
    assert (t.enc[:, 0] == builder.special["[TASK_ITEM]"]).all()
    kw = tasks["query_to_keywords"]
    lengths = (kw.dec > 0).sum(1)
    assert (kw.dec[np.arange(len(kw)), lengths - 1] == sft_tasks.EOS_ID).all()
    assert (kw.weight.sum(1) == lengths).all()
    # Only queries with keywords (those of the logs given) become examples: none of the others.
    assert len(kw) == len(builder.query_keywords) < len(builder.world.queries)


def test_query_to_keywords_needs_keywords(setup):
    builder = setup[0]
    bare = sft_tasks.TaskBuilder(builder.world, builder.tok, builder.vocab, np.zeros((3, 5), int),
                                 np.zeros((3, 5), int), enc_len=48, dec_len=8)
    with pytest.raises(ValueError, match="query_keywords"):
        bare.query_to_keywords()


def test_personalized_input_holds_query_profile_and_history_sids(setup):
    builder, tasks, events, item_codes, vocab = setup
    row = np.flatnonzero((events["history"] >= 0).all(1))[0]
    enc = builder.personalized_inputs(events["query_id"][[row]], events["user_id"][[row]],
                                      events["history"][[row]])[0]
    assert enc[0] == builder.special["[Q]"]
    usr = int(np.flatnonzero(enc == builder.special["[USR]"])[0])
    hist = int(np.flatnonzero(enc == builder.special["[HIST]"])[0])
    q_len = int((builder.query_text_tokens()[events["query_id"][row]] > 0).sum())
    assert usr == 1 + q_len and hist > usr + 1
    expected = vocab.to_tokens(item_codes[events["history"][row]]).reshape(-1)
    n = min(len(expected), 48 - hist - 1)
    np.testing.assert_array_equal(enc[hist + 1:hist + 1 + n], expected[:n])


def test_batches_are_deterministic_per_step_and_resume_exactly(setup):
    _, tasks, _, _, _ = setup
    stages = sft_tasks.parse_stages([
        {"name": "alignment", "fraction": 0.5, "mixture": {"item_to_sid": 1.0, "query_to_keywords": 1.0}},
        {"name": "personal", "fraction": 0.5, "mixture": {"personalized": 1.0}}])
    batches = sft_tasks.MixtureBatches(tasks, stages, total_steps=10, batch_size=6, seed=3)
    straight = list(itertools.islice(batches(0), 7))
    resumed = list(itertools.islice(batches(4), 3))
    for a, b in zip(straight[4:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert batches.stage_at(4).name == "alignment" and batches.stage_at(5).name == "personal"
    b = straight[0]
    np.testing.assert_array_equal(b["dec_inputs"][:, 1:], b["dec_targets"][:, :-1])
    assert (b["dec_inputs"][:, 0] == sft_tasks.BOS_ID).all()
    # Each process builds only its rows: the slices of three "processes" tile the global batch.
    for step in (0, 5):  # a two-task and a one-task stage
        full = batches.batch(step)
        parts = [batches.batch(step, slice(lo, lo + 2)) for lo in (0, 2, 4)]
        for k in full:
            np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), full[k])
    assert len(next(batches(0, slice(2, 4)))["enc_tokens"]) == 2


def test_bad_stage_config_is_named():
    with pytest.raises(ValueError, match="unknown tasks"):
        sft_tasks.parse_stages([{"name": "x", "fraction": 1.0, "mixture": {"nope": 1.0}}])
    with pytest.raises(ValueError, match="sum to 1"):
        sft_tasks.parse_stages([{"name": "x", "fraction": 0.5, "mixture": {"item_to_sid": 1.0}}])
