"""Dictionary keyword extraction: whole words, case, overlap and containment rules by hand."""
import pytest

from onesearch_jax.data.keyword_extractor import DictionaryExtractor, Match

VOCAB = {
    "tea": "category", "green tea": "category", "steak": "category",
    "hampton bay": "brand", "bay": "scene", "stainless steel": "material",
    "steel": "material", "red": "color", "cordless": "function", "gift": "intent",
    "new york": "scene", "york steak": "category", "father's day": "topic",
}


def ex():
    return DictionaryExtractor(VOCAB)


def test_whole_words_only():
    assert ex().extract("steak") == [Match("steak", "category", 0, 5)]
    assert ex().extract("steaks teapot") == []
    assert ex().extract("iced tea.") == [Match("tea", "category", 5, 8)]


def test_case_insensitive_with_original_offsets():
    text = "Hampton BAY Stainless Steel sink"
    assert ex().extract(text) == [Match("hampton bay", "brand", 0, 11),
                                  Match("stainless steel", "material", 12, 27)]
    assert text[12:27] == "Stainless Steel"


def test_contained_matches_are_dropped():
    # 'tea' inside 'green tea' and 'bay' inside 'hampton bay' are not reported.
    got = ex().extract("green tea from hampton bay")
    assert [m.phrase for m in got] == ["green tea", "hampton bay"]


def test_overlap_keeps_longest_then_leftmost():
    # 'new york' (8 chars) and 'york steak' (10 chars) overlap: the longer wins.
    assert [m.phrase for m in ex().extract("new york steak")] == ["york steak"]
    same_len = DictionaryExtractor({"a b": "brand", "b c": "color"})
    assert [m.phrase for m in same_len.extract("a b c")] == ["a b"]


def test_punctuation_phrase_and_keyword_fields():
    kw = ex().keywords("Red cordless gift for Father's Day: red green tea, steak, tea, bay")
    assert kw == {"intent": ["gift"], "category": ["green tea", "steak", "tea"],
                  "attribute": ["red", "cordless", "bay"], "topic": ["father's day"]}
    assert ex().keywords("tea steak green tea", max_per_field=2)["category"] == ["tea", "steak"]


def test_many_phrases_sharing_suffixes():
    # Failure links must find 'abcd' after a partial 'abcx' and the suffix 'bcd'.
    e = DictionaryExtractor({"abcx": "brand", "bcd": "color", "c d": "style"})
    assert [m.phrase for m in e.extract("abcd bcd c d")] == ["bcd", "c d"]
    assert [m.phrase for m in e.extract("x bcd")] == ["bcd"]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="'widget'"):
        DictionaryExtractor({"thing": "widget"})
    with pytest.raises(ValueError, match="two types"):
        DictionaryExtractor({"Red": "color", "red": "brand"})
    with pytest.raises(ValueError, match="unknown field"):
        DictionaryExtractor({"x": "t"}, field_of_type={"t": "misc"})
    with pytest.raises(ValueError, match="empty"):
        DictionaryExtractor({"  ": "color"})


def test_automaton_agrees_with_regex_brute_force():
    import random
    import re
    rng = random.Random(0)
    words = ["ab", "b", "ba", "a", "aab"]
    vocab = {" ".join(rng.choice(words) for _ in range(rng.randint(1, 3))): "color"
             for _ in range(25)}
    e = DictionaryExtractor(vocab)
    for _ in range(200):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        hits = []
        for phrase in vocab:
            pattern = re.compile(r"(?=(?<!\w)(" + re.escape(phrase) + r")(?!\w))")
            hits += [(m.start(1), m.end(1), phrase) for m in pattern.finditer(text)]
        hits.sort(key=lambda h: (-(h[1] - h[0]), h[0]))
        taken, expected = set(), []
        for s, t, phrase in hits:
            if not taken & set(range(s, t)):
                taken |= set(range(s, t))
                expected.append((s, t, phrase))
        assert [(m.start, m.end, m.phrase) for m in e.extract(text)] == sorted(expected)
