"""Encoder rows -> memory tokens + frozen states; the content-addressed state cache."""
import json
import os

import numpy as np
import pytest

from onesearch_jax.data import encoder_memory as em
from onesearch_jax.data.state_cache import CacheMismatch, StateCache
from onesearch_jax.data.text_tokenizer import TASK_TOKENS, train_text_tokenizer

TEXTS = ["red cordless drill", "drill, cordless 20v", "budget brand acme", "blue garden hose",
         "sugar-free dark chocolate"] * 4


class FakeEncoder:
    """Deterministic per-text states: one row per word + 2 (as [CLS] ... [SEP]), value = a hash
    of the text, so a lookup is checkable without MiniLM."""

    def __init__(self, weights_hash="w0", max_len=32):
        self.weights_hash, self.max_len, self.truncated, self.calls = weights_hash, max_len, 0, []

    def encode(self, texts):
        self.calls.append(list(texts))
        out = []
        for t in texts:
            n = len(t.split()) + 2
            seed = sum(map(ord, t))
            out.append(np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32))
        return out


@pytest.fixture(scope="module")
def tokenizer():
    return train_text_tokenizer(TEXTS, 200, extra_special_tokens=TASK_TOKENS, min_frequency=1)


def _row(tok, *parts, length=24):
    ids = []
    for p in parts:
        ids += [p] if isinstance(p, int) else tok.encode(p, add_special_tokens=False).ids
    return np.array(ids + [0] * (length - len(ids)), np.int32)


def test_text_runs_become_their_states_and_other_tokens_keep_one_slot(tokenizer, tmp_path):
    enc = FakeEncoder()
    cache = StateCache(str(tmp_path), enc)
    memory = em.EncoderMemory(tokenizer, em.LiveStates(enc, cache), mem_len=20)
    q, kw, hist = (tokenizer.token_to_id(t) for t in ("[Q]", "[KW]", "[HIST]"))
    sid_a, sid_b = tokenizer.get_vocab_size() + 3, tokenizer.get_vocab_size() + 9
    rows = np.stack([_row(tokenizer, q, "red cordless drill", kw, "drill, cordless 20v", hist,
                          sid_a, sid_b)])
    assert memory.texts(rows) == {"red cordless drill", "drill, cordless 20v"}
    tokens, states = memory.memory(rows)
    slot = em.TEXT_SLOT_ID
    want = [q] + [slot] * 5 + [kw] + [slot] * 5 + [hist, sid_a, sid_b]
    np.testing.assert_array_equal(tokens[0, :len(want)], want)
    assert (tokens[0, len(want):] == 0).all()
    a, b = enc.encode(["red cordless drill", "drill, cordless 20v"])
    np.testing.assert_array_equal(states[0, 1:6], a)
    np.testing.assert_array_equal(states[0, 7:12], b)
    assert (states[0, [0, 6, 12, 13, 14]] == 0).all() and (states[0, 15:] == 0).all()
    # A batch's encoder rows (student and teacher) get their state twins.
    batch = memory.attach({"enc_tokens": rows, "teacher_enc_tokens": rows,
                           "dec_targets": np.ones((1, 3))})
    assert set(batch) == {"enc_tokens", "enc_states", "teacher_enc_tokens",
                          "teacher_enc_states", "dec_targets"}
    np.testing.assert_array_equal(batch["teacher_enc_states"], states)


def test_a_long_row_is_cut_at_mem_len_and_counted_never_dropped(tokenizer, tmp_path):
    enc = FakeEncoder()
    memory = em.EncoderMemory(tokenizer, em.LiveStates(enc), mem_len=6)
    q = tokenizer.token_to_id("[Q]")
    rows = np.stack([_row(tokenizer, q, "red cordless drill", q, "blue garden hose"),
                     _row(tokenizer, q, "red")])
    tokens, states = memory.memory(rows)
    assert tokens.shape == (2, 6) and memory.truncated_rows == 1
    assert (tokens[0] > 0).all() and tokens[0, 0] == q  # cut, not dropped
    assert tokens[1, 0] == q and (tokens[1, 1:4] == em.TEXT_SLOT_ID).all()


def test_a_rerun_hits_the_cache_and_only_new_texts_are_encoded(tmp_path):
    enc = FakeEncoder()
    first = StateCache(str(tmp_path), enc)
    assert first.ensure(TEXTS) == 5 and len(first) == 5
    again = StateCache(str(tmp_path), FakeEncoder())
    assert again.ensure(TEXTS) == 0 and again.hits == 5 and again.encoder.calls == []
    np.testing.assert_array_equal(again.get("blue garden hose"),
                                  enc.encode(["blue garden hose"])[0])
    assert again.ensure(TEXTS + ["new text"]) == 1
    assert again.encoder.calls == [["new text"]]
    assert len(StateCache(str(tmp_path), FakeEncoder())) == 6  # two shards, one index
    # Other weights: another folder, nothing shared.
    assert len(StateCache(str(tmp_path), FakeEncoder(weights_hash="w1"))) == 0


def _shard(tmp_path):
    StateCache(str(tmp_path), FakeEncoder()).ensure(TEXTS)
    folder = tmp_path / "minilm_states.w0"
    (shard,) = [folder / n for n in os.listdir(folder) if n.startswith("shard.")]
    return shard


def test_a_shard_of_other_weights_is_refused_naming_the_mismatch(tmp_path):
    shard = _shard(tmp_path)
    meta = json.loads((shard / "meta.json").read_text())
    (shard / "meta.json").write_text(json.dumps(dict(meta, weights_hash="other")))
    with pytest.raises(CacheMismatch, match="built with MiniLM weights other, this run's are w0"):
        StateCache(str(tmp_path), FakeEncoder())


def test_a_shard_holding_other_texts_is_refused_naming_the_mismatch(tmp_path):
    shard = _shard(tmp_path)
    texts = json.loads((shard / "texts.json").read_text())
    (shard / "texts.json").write_text(json.dumps(texts[::-1]))
    with pytest.raises(CacheMismatch, match="holds other texts than it was built for"):
        StateCache(str(tmp_path), FakeEncoder())


def test_serving_encodes_a_text_the_cache_lacks(tmp_path, tokenizer):
    enc = FakeEncoder()
    cache = StateCache(str(tmp_path), enc)
    cache.ensure(["red cordless drill"])
    live = em.LiveStates(enc, cache)
    memory = em.EncoderMemory(tokenizer, live, mem_len=12)
    q = tokenizer.token_to_id("[Q]")
    rows = np.stack([_row(tokenizer, q, "red cordless drill"), _row(tokenizer, q, "garden hose")])
    _, states = memory.memory(rows)
    np.testing.assert_array_equal(states[1, 1:5], enc.encode(["garden hose"])[0])
    assert enc.calls[-2] == ["garden hose"]  # one batched call for the miss, none for the hit
    assert "garden hose" not in cache  # serving never writes the training cache


def test_the_cache_folder_is_local_even_for_a_workdir_in_a_bucket():
    import ml_collections
    c = ml_collections.ConfigDict({"data": {"state_cache": ""}})
    assert em.state_cache_folder(c, "/w") == "/w/minilm_states"
    assert em.state_cache_folder(c, "gs://b/w") == os.path.expanduser(em.LOCAL_CACHE)
    c.data.state_cache = "gs://b/cache"
    with pytest.raises(ValueError, match="must be a local folder"):
        em.state_cache_folder(c, "/w")


def test_stage_widths_fit_each_stages_longest_row_and_narrow_batches_are_the_first_slots(
        tokenizer, tmp_path):
    """data.mem_width='stage': a stage's batches are as wide as the longest row (teacher rows
    included) its tasks hold, rounded up, and equal the full memory's first slots."""
    import ml_collections
    from onesearch_jax.data.sft_tasks import MixtureBatches, Stage, TaskArrays
    enc = FakeEncoder()
    memory = em.EncoderMemory(tokenizer, em.LiveStates(enc), mem_len=24)
    q, kw = tokenizer.token_to_id("[Q]"), tokenizer.token_to_id("[KW]")
    short = np.stack([_row(tokenizer, q, "red"), _row(tokenizer, q, "blue garden hose")])
    longer = np.stack([_row(tokenizer, q, "red cordless drill", kw, "drill, cordless 20v"),
                       _row(tokenizer, q, "red")])
    # [Q] + 3 states; [Q] + 5 + [KW] + 5; [Q] + 3
    np.testing.assert_array_equal(memory.lengths(np.concatenate([short, longer])),
                                  [4, 6, 12, 4])
    tokens, states = memory.memory(longer)
    narrow_tokens, narrow_states = memory.memory(longer, 16)
    np.testing.assert_array_equal(narrow_tokens, tokens[:, :16])
    np.testing.assert_array_equal(narrow_states, states[:, :16])
    assert (tokens[:, 16:] == 0).all() and memory.truncated_rows == 0

    def task(rows, teacher=None):
        dec = np.ones((len(rows), 2), np.int32)
        return TaskArrays(enc=rows, dec=dec, weight=np.ones(dec.shape, np.float32),
                          teacher_enc=teacher,
                          teacher_mask=None if teacher is None else np.ones(len(rows), np.float32))
    tasks = {"a": task(short), "b": task(short, teacher=longer)}
    stages = [Stage("first", 0.5, {"a": 1.0}), Stage("second", 0.5, {"a": 1.0, "b": 1.0})]
    student = MixtureBatches(tasks, stages, total_steps=4, batch_size=4, seed=0)
    teacher = MixtureBatches(tasks, stages, total_steps=4, batch_size=4, seed=0,
                             with_teacher=True)
    assert em.stage_widths(memory, student) == {"first": 8, "second": 8}
    assert em.stage_widths(memory, teacher) == {"first": 8, "second": 16}
    assert em.stage_widths(memory, teacher, multiple=5) == {"first": 10, "second": 15}
    widths = em.stage_widths(memory, teacher)
    factory = em.with_states(teacher, memory, lambda step: widths[teacher.stage_at(step).name])
    batches = factory(1, slice(0, 4))
    got = [next(batches) for _ in range(3)]
    assert [b["teacher_enc_states"].shape[1] for b in got] == [8, 16, 16]
    full = memory.attach(teacher.batch(2))
    np.testing.assert_array_equal(got[1]["teacher_enc_states"],
                                  full["teacher_enc_states"][:, :16])
    with pytest.raises(ValueError, match=r"memory width 25 outside \[1, mem_len=24\]"):
        memory.memory(short, 25)
    with pytest.raises(ValueError, match=r"data.mem_width='batch'; valid: \('fixed', 'stage'\)"):
        em.check_mem_width(ml_collections.ConfigDict({"data": {"mem_width": "batch"}}))
