r"""Converts the Kaggle "Home Depot Product Search Relevance" train.csv to the generic TSV format.

The raw file is CSV with columns id, product_uid, product_title, search_term, relevance, in
latin-1 (the competition's); a file that is valid UTF-8 (with or without a BOM) is read as UTF-8.
The output (UTF-8, tab-separated, header row; see onesearch_jax/data/real_catalog.py):

    OUT_DIR/products.tsv          product_uid, title        (each judged product once)
    OUT_DIR/judgments.tsv         query, product_uid, relevance
    OUT_DIR/judgments_train.tsv   } only with --dev_fraction > 0: a split by query, so no query
    OUT_DIR/judgments_dev.tsv     } text is in both files

    python -m experiments.convert_homedepot --train_csv=train.csv --out_dir=data/homedepot \
        --dev_fraction=0.2 --seed=0

Malformed rows (wrong column count, empty query / product_uid / title, non-numeric relevance,
a repeated (query, product) pair) are skipped, counted and reported with their first line numbers.
A product_uid seen with two different titles keeps its first title ('conflicting_title').
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from absl import app, flags

from onesearch_jax import cli, quiet
from onesearch_jax.data.real_catalog import (JUDGMENT_COLUMNS, PRODUCT_COLUMNS, LoadReport,
                                             parse_relevance)

RAW_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
SPLIT_FILES = ("judgments_train.tsv", "judgments_dev.tsv")

FLAGS = flags.FLAGS
flags.DEFINE_string("train_csv", None, "The competition's raw train.csv (latin-1, or UTF-8).")
flags.DEFINE_string("out_dir", None, "Folder for products.tsv and judgments*.tsv.")
flags.DEFINE_float("dev_fraction", 0.0,
                   "Fraction of distinct queries held out as judgments_dev.tsv (0: no split).")
flags.DEFINE_integer("seed", 0, "Seed of the query split.")


def clean_text(text: str) -> str:
    """Collapses all whitespace (tabs and newlines included) so a field fits in one TSV cell."""
    return " ".join(text.split())


def decode_raw(data: bytes) -> str:
    """UTF-8 where the bytes are valid UTF-8 (a BOM dropped), else latin-1: the competition's
    file is latin-1, whose accented bytes are almost never valid UTF-8, and a re-saved UTF-8
    copy read as latin-1 would turn 'Café' into 'CafÃ©'."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_raw(path: Union[str, Path]) -> tuple[dict[str, str], list[tuple[str, str, float]],
                                               LoadReport]:
    """Parses train.csv into ({product_uid: title}, [(query, product_uid, relevance)], report)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    report = LoadReport(str(path))
    titles: dict[str, str] = {}
    pairs: list[tuple[str, str, float]] = []
    seen_pairs: set[tuple[str, str]] = set()
    with io.StringIO(decode_raw(path.read_bytes()), newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header) != RAW_COLUMNS:
            raise ValueError(f"{path}: header must be the columns {list(RAW_COLUMNS)}, "
                             f"got {header}")
        for fields in reader:
            line = reader.line_num  # last physical line of the row (quoted fields may span lines)
            if not any(field.strip() for field in fields):
                continue
            report.rows_read += 1
            if len(fields) != len(RAW_COLUMNS):
                report.add("column_count", line)
                continue
            _, uid, title, query, rel_text = (clean_text(x) for x in fields)
            if not query:
                report.add("empty_query", line)
                continue
            if not uid:
                report.add("empty_product_uid", line)
                continue
            if not title:
                report.add("empty_title", line)
                continue
            relevance = parse_relevance(rel_text)
            if relevance is None:
                report.add("bad_relevance", line)
                continue
            if (query, uid) in seen_pairs:
                report.add("duplicate_pair", line)
                continue
            if titles.setdefault(uid, title) != title:
                report.add("conflicting_title", line)  # The row's judgment is still kept.
            seen_pairs.add((query, uid))
            pairs.append((query, uid, relevance))
            report.rows_kept += 1
    return titles, pairs, report


def split_queries(queries: Sequence[str], dev_fraction: float, seed: int) -> set[str]:
    """The dev queries: a seeded random round(dev_fraction * n) of the distinct queries."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    distinct = list(dict.fromkeys(queries))
    num_dev = int(round(dev_fraction * len(distinct)))
    order = np.random.default_rng(seed).permutation(len(distinct))
    return {distinct[i] for i in order[:num_dev]}


def _write_tsv(path: str, columns: Sequence[str], rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")


def _format_relevance(value: float) -> str:
    return f"{value:g}"


def convert(train_csv: Union[str, Path], out_dir: Union[str, Path], dev_fraction: float = 0.0,
            seed: int = 0) -> tuple[LoadReport, dict[str, int], list[str]]:
    """Writes the generic files; returns the parse report, row counts per written file, and the
    split files of an earlier conversion in `out_dir` it removed (without a split this run
    writes none, and stale ones would pair another catalog's judgments with these products).
    A file with no usable row is refused before anything is written."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    titles, pairs, report = read_raw(train_csv)
    if not pairs:
        raise ValueError(f"{train_csv}: no usable rows ({report.summary()}); nothing written")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out_dir {out_dir} is a file, not a folder")
    os.makedirs(out_dir, exist_ok=True)
    removed = []
    if dev_fraction == 0:
        for name in SPLIT_FILES:
            if os.path.exists(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
                removed.append(name)
    counts = {"products.tsv": len(titles), "judgments.tsv": len(pairs)}
    _write_tsv(os.path.join(out_dir, "products.tsv"), PRODUCT_COLUMNS, titles.items())
    judgment_rows = [(q, uid, _format_relevance(rel)) for q, uid, rel in pairs]
    _write_tsv(os.path.join(out_dir, "judgments.tsv"), JUDGMENT_COLUMNS, judgment_rows)
    if dev_fraction > 0:
        dev = split_queries([q for q, _, _ in pairs], dev_fraction, seed)
        for name, in_dev in zip(SPLIT_FILES, (False, True)):
            rows = [row for row in judgment_rows if (row[0] in dev) == in_dev]
            _write_tsv(os.path.join(out_dir, name), JUDGMENT_COLUMNS, rows)
            counts[name] = len(rows)
    return report, counts, removed


def main(argv: Sequence[str]) -> None:
    quiet.quiet_libraries()
    del argv  # cli.run refuses leftover arguments
    if not FLAGS.train_csv or not FLAGS.out_dir:
        raise app.UsageError("--train_csv and --out_dir are required")
    report, counts, removed = convert(FLAGS.train_csv, FLAGS.out_dir, FLAGS.dev_fraction,
                                      FLAGS.seed)
    print(report.summary())
    for name, count in counts.items():
        print(f"wrote {os.path.join(FLAGS.out_dir, name)}: {count} rows")
    for name in removed:
        print(f"removed {os.path.join(FLAGS.out_dir, name)}: an earlier conversion's split")
    if "judgments_train.tsv" not in counts:
        print("training reads judgments_train.tsv: convert with --dev_fraction > 0 (e.g. 0.2) "
              "to split the judgments by query")


if __name__ == "__main__":
    cli.run(main)
