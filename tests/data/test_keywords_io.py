"""Keywords JSONL: round trip, and errors that name the file and line."""
import json

import pytest

from onesearch_jax.data.keywords_io import read_keywords_jsonl, write_keywords_jsonl

GOOD = {"query": "cordless drill for dad", "user_id": 17, "intent": ["gift"],
        "category": ["drill"], "attribute": ["cordless"], "topic": ["father's day"]}


def write_lines(tmp_path, lines):
    path = tmp_path / "keywords.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_round_trip_and_defaults(tmp_path):
    tea = {"query": "tea", "topic": [" tea time ", "tea time"]}
    path = write_lines(tmp_path, [json.dumps(GOOD), "", json.dumps(tea)])
    rows = read_keywords_jsonl(path)
    assert rows[("cordless drill for dad", 17)]["topic"] == ["father's day"]
    assert rows[("tea", None)] == {"intent": [], "category": [], "attribute": [],
                                   "topic": ["tea time"]}
    out = tmp_path / "copy.jsonl"
    assert write_keywords_jsonl(out, rows) == 2
    assert read_keywords_jsonl(out) == rows
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[1]) == {
        "query": "tea", "intent": [], "category": [], "attribute": [], "topic": ["tea time"]}


@pytest.mark.parametrize("bad_line, message", [
    ('{"query": "x", "intent": "gift"}', "keywords.jsonl:2: 'intent' must be a list of strings"),
    ('{"query": "x", "intent": [3]}', "keywords.jsonl:2: 'intent' must be a list of strings"),
    ('{"query": "x", "atribute": []}', "keywords.jsonl:2: unknown key(s) ['atribute']"),
    ('{"query": ""}', "keywords.jsonl:2: 'query' must be a non-empty string"),
    ('{"query": "x", "user_id": "7"}', "keywords.jsonl:2: 'user_id' must be an integer"),
    ('{"query": "x", "user_id": true}', "keywords.jsonl:2: 'user_id' must be an integer"),
    ('{"query": "x", "topic": ["  "]}', "keywords.jsonl:2: 'topic' holds an empty keyword"),
    ('{"query": "x", ', "keywords.jsonl:2: not valid JSON"),
    ('["x"]', "keywords.jsonl:2: a row must be a JSON object"),
    (json.dumps(GOOD), "keywords.jsonl:2: duplicate row"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    path = write_lines(tmp_path, [json.dumps(GOOD), bad_line])
    with pytest.raises(ValueError) as err:
        read_keywords_jsonl(path)
    assert message in str(err.value)


def test_too_many_keywords_error_or_truncate(tmp_path):
    row = {"query": "x", "attribute": [f"a{i}" for i in range(7)]}
    path = write_lines(tmp_path, [json.dumps(row)])
    with pytest.raises(ValueError, match="keywords.jsonl:1: 'attribute' has 7 keywords"):
        read_keywords_jsonl(path)
    assert read_keywords_jsonl(path, truncate=True)[("x", None)]["attribute"] == [
        "a0", "a1", "a2", "a3", "a4"]
    with pytest.raises(ValueError, match="row 0: 'attribute' has 7"):
        write_keywords_jsonl(tmp_path / "out.jsonl", [row])


def test_same_query_different_users_are_distinct_and_missing_file(tmp_path):
    path = write_lines(tmp_path, [json.dumps({"query": "x", "user_id": 1}),
                                  json.dumps({"query": "x", "user_id": 2}),
                                  json.dumps({"query": "x"})])
    assert sorted(read_keywords_jsonl(path), key=str) == [("x", 1), ("x", 2), ("x", None)]
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_keywords_jsonl(tmp_path / "nope.jsonl")
