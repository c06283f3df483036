"""Text tokenizer: fixed special ids, padding/truncation, determinism, save/load."""
import numpy as np
import pytest

from onesearch_jax.data.text_tokenizer import (encode_texts, load_text_tokenizer,
                                               save_text_tokenizer, train_text_tokenizer)

TEXTS = ["Cordless drill 20V MAX", "red cordless drill", "Hampton Bay ceiling fan",
         "ceiling fan with light", "stainless steel sink", "steel drill bits"] * 5
EXTRA = ("[Q]", "[KW]", "[TASK_ITEM]")


def test_special_tokens_have_fixed_ids():
    tok = train_text_tokenizer(TEXTS, vocab_size=120, extra_special_tokens=EXTRA)
    names = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]", "[MASK]", *EXTRA]
    assert [tok.token_to_id(t) for t in names] == list(range(9))
    assert tok.get_vocab_size() <= 120


def test_encode_pads_truncates_lowercases_and_keeps_specials():
    tok = train_text_tokenizer(TEXTS, vocab_size=120, extra_special_tokens=EXTRA)
    ids = encode_texts(tok, ["[Q] Red DRILL", "", "cordless drill " * 10], max_len=6)
    assert ids.dtype == np.int32 and ids.shape == (3, 6)
    assert ids[0, 0] == tok.token_to_id("[Q]")
    assert list(ids[0, 1:3]) == [tok.token_to_id("▁red"), tok.token_to_id("▁drill")]
    assert list(ids[0, 3:]) == [0, 0, 0] and list(ids[1]) == [0] * 6
    assert (ids[2] != 0).all()
    with_ends = encode_texts(tok, ["cordless drill " * 10, "fan"], max_len=5,
                             add_bos=True, add_eos=True)
    assert with_ends[0, 0] == 2 and with_ends[0, -1] == 3
    assert list(with_ends[1]) == [2, tok.token_to_id("▁fan"), 3, 0, 0]
    assert tok.decode(list(ids[0, 1:3])) == "red drill"


def test_unknown_characters_map_to_unk():
    tok = train_text_tokenizer(TEXTS, vocab_size=120)
    assert 1 in encode_texts(tok, ["drill \u2603"], max_len=4)[0]


def test_training_is_deterministic_and_save_load_round_trips(tmp_path):
    a = train_text_tokenizer(TEXTS, vocab_size=120, extra_special_tokens=EXTRA)
    b = train_text_tokenizer(list(TEXTS), vocab_size=120, extra_special_tokens=EXTRA)
    save_text_tokenizer(a, tmp_path / "a" / "tokenizer.json")
    save_text_tokenizer(b, tmp_path / "b.json")
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    loaded = load_text_tokenizer(tmp_path / "b.json")
    np.testing.assert_array_equal(encode_texts(loaded, TEXTS[:3], 8), encode_texts(a, TEXTS[:3], 8))


def test_bad_input_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_text_tokenizer(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="repeat"):
        train_text_tokenizer(TEXTS, 100, extra_special_tokens=("[SEP]",))
    with pytest.raises(ValueError, match="vocab_size"):
        train_text_tokenizer(TEXTS, 6)
    tok = train_text_tokenizer(TEXTS, vocab_size=60)
    with pytest.raises(ValueError, match="max_len"):
        encode_texts(tok, ["x"], max_len=2, add_bos=True, add_eos=True)
    with pytest.raises(ValueError, match="not one string"):
        encode_texts(tok, "drill", max_len=4)
