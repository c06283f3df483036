"""Loads the generic real-data format: a product corpus and human relevance judgments.

Both files are UTF-8, tab-separated, with a header row and no quoting (a field never holds a tab
or a newline):

    products.tsv    product_uid <TAB> title
    judgments.tsv   query <TAB> product_uid <TAB> relevance

Real exports are messy, so a malformed row does not stop the load by default: it is skipped and
counted per reason in a `LoadReport` (with the first few line numbers, 1-based, header = line 1),
which the caller prints. `strict=True` turns the first malformed row into a ValueError naming
file:line instead.
"""
from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import NamedTuple, Optional, Union

from onesearch_jax import fileio

PRODUCT_COLUMNS = ("product_uid", "title")
JUDGMENT_COLUMNS = ("query", "product_uid", "relevance")
MAX_EXAMPLE_LINES = 5


@dataclasses.dataclass
class LoadReport:
    """What a load kept and what was wrong. `problems[reason]` counts the rows with that problem
    (skipped, unless the loader says otherwise); `example_lines[reason]` holds the first few of
    their line numbers."""
    path: str
    rows_read: int = 0
    rows_kept: int = 0
    problems: dict[str, int] = dataclasses.field(default_factory=dict)
    example_lines: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def add(self, reason: str, line: int) -> None:
        self.problems[reason] = self.problems.get(reason, 0) + 1
        lines = self.example_lines.setdefault(reason, [])
        if len(lines) < MAX_EXAMPLE_LINES:
            lines.append(line)

    def summary(self) -> str:
        """One readable line, e.g. 'products.tsv: kept 9 of 10 rows; problems: duplicate_product=1
        (lines [4])'."""
        text = f"{self.path}: kept {self.rows_kept} of {self.rows_read} rows"
        if self.problems:
            parts = [f"{reason}={count} (lines {self.example_lines[reason]})"
                     for reason, count in sorted(self.problems.items())]
            text += "; problems: " + ", ".join(parts)
        return text


class Products(NamedTuple):
    """The search corpus: parallel lists, in file order."""
    product_ids: list[str]
    titles: list[str]
    report: LoadReport


class Judgments(NamedTuple):
    """Distinct queries in file order; `relevance[i]` maps product_uid -> relevance for queries[i]."""
    queries: list[str]
    relevance: list[dict[str, float]]
    report: LoadReport


def _read_rows(path: Union[str, Path], columns: tuple[str, ...]):
    """Yields (line number, fields) for every data row after checking the header."""
    if not fileio.exists(path) or fileio.isdir(path):
        raise FileNotFoundError(f"no such file: {path}")
    data = fileio.read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 (byte {data[e.start]:#04x}); the format is "
                         "UTF-8 TSV (a latin-1 file: iconv -f latin1 -t utf-8, or "
                         "experiments.convert_homedepot for the competition's CSV)") from None
    with io.StringIO(text, newline="") as f:
        header = f.readline().rstrip("\r\n").lstrip("\ufeff").split("\t")
        if tuple(h.strip() for h in header) != columns:
            raise ValueError(f"{path}: header must be the tab-separated columns {list(columns)}, "
                             f"got {header}")
        for line_number, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if line.strip():  # Blank lines (e.g. a trailing one) are not rows.
                yield line_number, line.split("\t")


def _problem(report: LoadReport, reason: str, line: int, strict: bool, detail: str) -> None:
    if strict:
        raise ValueError(f"{report.path}:{line}: {reason}: {detail}")
    report.add(reason, line)


def load_products(path: Union[str, Path], strict: bool = False) -> Products:
    """Reads `product_uid<TAB>title` rows; the first row of a duplicated product id wins."""
    report = LoadReport(str(path))
    ids, titles, seen = [], [], set()
    for line, fields in _read_rows(path, PRODUCT_COLUMNS):
        report.rows_read += 1
        if len(fields) != len(PRODUCT_COLUMNS):
            _problem(report, "column_count", line, strict,
                     f"expected {len(PRODUCT_COLUMNS)} columns, got {len(fields)}")
            continue
        uid, title = fields[0].strip(), fields[1].strip()
        if not uid:
            _problem(report, "empty_product_uid", line, strict, "product_uid is empty")
            continue
        if not title:
            _problem(report, "empty_title", line, strict, f"product {uid!r} has an empty title")
            continue
        if uid in seen:
            _problem(report, "duplicate_product", line, strict,
                     f"product_uid {uid!r} appeared on an earlier line")
            continue
        seen.add(uid)
        ids.append(uid)
        titles.append(title)
        report.rows_kept += 1
    return Products(ids, titles, report)


def parse_relevance(text: str) -> float | None:
    """A judgment's relevance as a finite float, or None (the row is then counted as bad)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def load_judgments(path: Union[str, Path], products: Optional[Products] = None,
                   strict: bool = False) -> Judgments:
    """Reads `query<TAB>product_uid<TAB>relevance` rows, grouped by query.

    With `products`, a row naming a product not in the corpus is skipped ('unknown_product'):
    such a target could never be retrieved and would silently deflate recall. A repeated
    (query, product_uid) pair keeps its first relevance ('duplicate_pair').
    """
    report = LoadReport(str(path))
    known = set(products.product_ids) if products is not None else None
    by_query: dict[str, dict[str, float]] = {}
    for line, fields in _read_rows(path, JUDGMENT_COLUMNS):
        report.rows_read += 1
        if len(fields) != len(JUDGMENT_COLUMNS):
            _problem(report, "column_count", line, strict,
                     f"expected {len(JUDGMENT_COLUMNS)} columns, got {len(fields)}")
            continue
        query, uid, rel_text = (f.strip() for f in fields)
        if not query:
            _problem(report, "empty_query", line, strict, "query is empty")
            continue
        if not uid:
            _problem(report, "empty_product_uid", line, strict, "product_uid is empty")
            continue
        relevance = parse_relevance(rel_text)
        if relevance is None:
            _problem(report, "bad_relevance", line, strict,
                     f"relevance {rel_text!r} is not a finite number")
            continue
        if known is not None and uid not in known:
            _problem(report, "unknown_product", line, strict,
                     f"product_uid {uid!r} is not in the products file")
            continue
        judged = by_query.setdefault(query, {})
        if uid in judged:
            _problem(report, "duplicate_pair", line, strict,
                     f"({query!r}, {uid!r}) was judged on an earlier line")
            continue
        judged[uid] = relevance
        report.rows_kept += 1
    return Judgments(list(by_query), list(by_query.values()), report)


def judged_pairs(judgments: Judgments, min_relevance: float) -> list[tuple[int, str, float]]:
    """(query index, product_uid, relevance) of every pair judged at least `min_relevance`, in
    file order (the training pairs of a train split)."""
    return [(q, uid, rel) for q, judged in enumerate(judgments.relevance)
            for uid, rel in judged.items() if rel >= min_relevance]


def targets(judgments: Judgments, min_relevance: float = 2.67) -> list[set[str]]:
    """Per query, the product ids judged at least `min_relevance` (may be empty)."""
    if not math.isfinite(min_relevance):
        raise ValueError(f"min_relevance must be a finite number, got {min_relevance}")
    return [{uid for uid, rel in judged.items() if rel >= min_relevance}
            for judged in judgments.relevance]
