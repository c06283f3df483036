"""The tfds event store: a round trip through array_record keeps every event exactly."""
import numpy as np
import pytest

from onesearch_jax.data import event_dataset


def _events(n):
    rng = np.random.default_rng(0)
    for i in range(n):
        yield {
            "event_id": i, "day": i % 4, "user_id": rng.integers(50), "query_id": i % 7,
            "items": rng.integers(0, 100, 10), "clicks": rng.integers(0, 2, 10),
            "orders": np.zeros(10), "history": np.full(3, -1),
        }


def _split(event):
    return {0: "train", 1: "train", 2: "valid", 3: "test"}[int(event["day"])]


def test_round_trip_keeps_every_event(tmp_path):
    queries = [f"query {i}" for i in range(7)]
    counts = event_dataset.build_event_dataset(
        _events(203), _split, str(tmp_path), num_exposed=10, history_len=3, query_texts=queries)
    assert counts == {"train": 102, "valid": 51, "test": 50}
    expected = [e for e in _events(203) if _split(e) == "test"]
    got = event_dataset.read_event_arrays(str(tmp_path), "test")
    np.testing.assert_array_equal(got["event_id"], [e["event_id"] for e in expected])
    np.testing.assert_array_equal(got["items"], np.stack([e["items"] for e in expected]))
    np.testing.assert_array_equal(got["clicks"], np.stack([e["clicks"] for e in expected]))
    source = event_dataset.load_event_split(str(tmp_path), "valid")
    record = source[0]
    assert record["query"].decode() == queries[int(record["query_id"])]


def test_missing_dataset_and_bad_split_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the world first"):
        event_dataset.load_event_split(str(tmp_path), "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        event_dataset.load_event_split(str(tmp_path), "dev")
