"""Reads and writes query keywords (the keyword-CoT labels) as JSONL, whoever produced them.

The paper has Qwen3-32B write compact keywords for every query offline; any LLM, a dictionary
extractor or a human can fill the same file. Format: UTF-8, one JSON object per line, blank
lines ignored:

    {"query": "cordless drill for dad", "user_id": 17,
     "intent": ["gift"], "category": ["drill"], "attribute": ["cordless"], "topic": ["father's day"]}

- "query": required, a non-empty string.
- "user_id": optional integer (or null); keywords may be personalised, so the key of a row is
  (query, user_id), with None when absent. A key may appear only once per file.
- "intent", "category", "attribute", "topic": optional lists of non-empty strings (missing means
  []), at most `max_per_field` (5) each. Longer lists are an error unless `truncate=True`, which
  keeps the first ones. Surrounding whitespace is stripped; duplicates within a field are removed.
- Any other key is an error (a typo such as "atribute" must not silently lose labels).

Errors name the file and the 1-based line: "keywords.jsonl:17: 'intent' must be a list of strings".
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Mapping, Optional, Union

from onesearch_jax import fileio

FIELDS = ("intent", "category", "attribute", "topic")
MAX_PER_FIELD = 5

Key = tuple[str, Optional[int]]


def _validate(obj, where: str, max_per_field: int, truncate: bool) -> tuple[Key, dict]:
    """Checks one row; returns its key and its four cleaned keyword lists."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: a row must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - {"query", "user_id", *FIELDS})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: query, user_id, "
                         f"{', '.join(FIELDS)}")
    query = obj.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"{where}: 'query' must be a non-empty string, got {query!r}")
    user_id = obj.get("user_id")
    if user_id is not None and (isinstance(user_id, bool) or not isinstance(user_id, int)):
        raise ValueError(f"{where}: 'user_id' must be an integer or null, got {user_id!r}")
    fields = {}
    for field in FIELDS:
        values = obj.get(field, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}: {field!r} must be a list of strings, got {values!r}")
        cleaned = []
        for v in values:
            v = v.strip()
            if not v:
                raise ValueError(f"{where}: {field!r} holds an empty keyword")
            if v not in cleaned:
                cleaned.append(v)
        if len(cleaned) > max_per_field:
            if not truncate:
                raise ValueError(f"{where}: {field!r} has {len(cleaned)} keywords, more than "
                                 f"{max_per_field} (pass truncate=True to keep the first ones)")
            cleaned = cleaned[:max_per_field]
        fields[field] = cleaned
    return (query, user_id), fields


def read_keywords_jsonl(path: Union[str, os.PathLike], max_per_field: int = MAX_PER_FIELD,
                        truncate: bool = False) -> dict[Key, dict[str, list[str]]]:
    """Loads a keywords file into {(query, user_id or None): {field: [keywords]}}."""
    if not fileio.exists(path):
        raise FileNotFoundError(f"keywords file not found: {path}")
    name = os.path.basename(os.fspath(path))
    rows: dict[Key, dict[str, list[str]]] = {}
    for line_no, line in enumerate(fileio.read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{name}:{line_no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
        key, fields = _validate(obj, where, max_per_field, truncate)
        if key in rows:
            raise ValueError(f"{where}: duplicate row for query {key[0]!r} user_id {key[1]!r}")
        rows[key] = fields
    return rows


def write_keywords_jsonl(path: Union[str, os.PathLike],
                         rows: Union[Mapping[Key, Mapping[str, list]], Iterable[Mapping]],
                         max_per_field: int = MAX_PER_FIELD) -> int:
    """Writes rows (a `read_keywords_jsonl` dict, or row objects) in the format above.

    Rows are checked like on reading (no truncation); returns the number of rows written.
    """
    if isinstance(rows, Mapping):
        rows = [{"query": q, **({} if u is None else {"user_id": u}), **fields}
                for (q, u), fields in rows.items()]
    name = os.path.basename(os.fspath(path))
    lines, seen = [], set()
    for i, row in enumerate(rows):
        key, fields = _validate(row, f"{name}: row {i}", max_per_field, truncate=False)
        if key in seen:
            raise ValueError(f"{name}: row {i}: duplicate row for query {key[0]!r} "
                             f"user_id {key[1]!r}")
        seen.add(key)
        obj = {"query": key[0], **({} if key[1] is None else {"user_id": key[1]}), **fields}
        lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    fileio.write_text(path, "".join(lines))
    return len(lines)
