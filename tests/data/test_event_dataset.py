"""The tfds event store: a round trip through array_record keeps every event exactly."""
import os

import numpy as np
import pytest

from onesearch_jax.data import event_dataset


def _events(n):
    rng = np.random.default_rng(0)
    i = np.arange(n)
    return {
        "event_id": i, "day": i % 4, "user_id": rng.integers(50, size=n), "query_id": i % 7,
        "items": rng.integers(0, 100, (n, 10)), "clicks": rng.integers(0, 2, (n, 10)),
        "orders": np.zeros((n, 10)), "history": np.full((n, 3), -1),
    }


def _split(day):
    return {0: "train", 1: "train", 2: "valid", 3: "test"}[day]


def _chunks(n, size=64):
    events = _events(n)
    for lo in range(0, n, size):
        yield {k: v[lo:lo + size] for k, v in events.items()}


def test_round_trip_keeps_every_event(tmp_path):
    queries = [f"query {i}" for i in range(7)]
    counts = event_dataset.build_event_dataset(
        _chunks(203), _split, str(tmp_path), num_exposed=10, history_len=3, query_texts=queries)
    assert counts == {"train": 102, "valid": 51, "test": 50}
    events = _events(203)
    test = events["day"] == 3
    got = event_dataset.read_event_arrays(str(tmp_path), "test")
    for key in ("event_id", "items", "clicks", "user_id"):
        np.testing.assert_array_equal(got[key], events[key][test])
    # The columnar copy and the tfds records hold the same events.
    os.remove(event_dataset.columnar_path(str(tmp_path), "test"))
    from_records = event_dataset.read_event_arrays(str(tmp_path), "test")
    for key in got:
        np.testing.assert_array_equal(from_records[key], got[key])
    source = event_dataset.load_event_split(str(tmp_path), "valid")
    record = source[0]
    assert record["query"].decode() == queries[int(record["query_id"])]


def test_missing_dataset_and_bad_split_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the world first"):
        event_dataset.load_event_split(str(tmp_path), "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        event_dataset.load_event_split(str(tmp_path), "dev")


def test_tfds_prints_nothing_once_libraries_are_quiet(tmp_path, capsys, monkeypatch):
    """tfds prints "Downloading and preparing dataset ..." to stdout itself; an experiment that
    quieted the libraries shows none of it, one that did not (or --verbose_libraries) does."""
    from onesearch_jax import quiet
    build = lambda d: event_dataset.build_event_dataset(
        _chunks(40), _split, str(tmp_path / d), num_exposed=10, history_len=3)
    monkeypatch.setattr(quiet, "_quiet", True)
    build("quiet")
    assert "preparing" not in capsys.readouterr().out
    monkeypatch.setattr(quiet, "_quiet", False)
    build("verbose")
    assert "Downloading and preparing dataset" in capsys.readouterr().out
