"""A workdir on a bucket (gs://) runs the same code as a local one (onesearch_jax/fileio.py).

No bucket is reachable here, so gs:// is served by a local directory registered as fsspec's
"gcs" filesystem: exactly the route etils.epath takes on a machine without TensorFlow (gcsfs
plays this part on a real TPU VM). Every read of a built workdir and every write of training's
bookkeeping must land in that directory: an os.* call left on a workdir path would miss it.
"""
import json
import os
import shutil
import sys

import numpy as np
import pytest
from etils.epath import backend as epath_backend
from fsspec.implementations.local import LocalFileSystem

from configs import sids as sid_configs
from configs import world as world_configs
from onesearch_jax import artifacts, fileio
from onesearch_jax import workdir as wd
from onesearch_jax.pipeline.sid_build import build_sids_workdir
from onesearch_jax.train.metric_writer import MetricWriter
from onesearch_jax.pipeline.world_build import build_reward_model, build_world_workdir

MICRO_WORLD = "tiny,num_items=400,num_queries=150,num_users=80,events_per_day=100,num_days=4"


class LocalBucket(LocalFileSystem):
    """gs://<bucket>/<path> -> ROOT/<bucket>/<path> on the local disk."""

    protocol = ("gs", "gcs")
    root = ""

    @classmethod
    def _strip_protocol(cls, path):
        path = os.fspath(path)
        if path.startswith(cls.root):
            return path
        path = path[len("gs://"):] if path.startswith("gs://") else path.lstrip("/")
        return os.path.join(cls.root, path)


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """Serves gs:// from tmp_path/gcs for the test's duration; returns that root."""
    root = tmp_path / "gcs"
    root.mkdir()
    monkeypatch.setattr(LocalBucket, "root", str(root))
    registry = sys.modules["fsspec.registry"]._registry  # fsspec's own table (no unregister API)
    for protocol in ("gs", "gcs"):
        monkeypatch.setitem(registry, protocol, LocalBucket)
    epath_backend.fsspec_backend._get_filesystem.cache_clear()
    yield root
    epath_backend.fsspec_backend._get_filesystem.cache_clear()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A micro world and its SIDs, built on the local disk (tfds writes array_record locally)."""
    workdir = str(tmp_path_factory.mktemp("built"))
    world = build_world_workdir(world_configs.get_config(MICRO_WORLD), workdir)
    build_reward_model(world, workdir)
    sids = sid_configs.get_config("tiny")
    sids.khqe.level_sizes = (16, 8, 4)
    sids.khqe.opq_codes = 8
    build_sids_workdir(sids, workdir)
    return workdir


def test_paths_keep_their_scheme():
    assert fileio.absolute("gs://bucket/run") == "gs://bucket/run"
    assert fileio.absolute("rel/run") == os.path.abspath("rel/run")
    assert fileio.is_remote("gs://b/x") and not fileio.is_remote("/b/x")
    assert wd.checkpoint_dir("gs://b/run") == "gs://b/run/checkpoints"


def test_a_built_workdir_reads_the_same_from_a_bucket(built, bucket):
    shutil.copytree(built, bucket / "b" / "run", symlinks=False)
    remote = "gs://b/run"
    world, remote_world = artifacts.load_world(built), artifacts.load_world(remote)
    assert remote_world.catalog.titles == world.catalog.titles
    np.testing.assert_array_equal(remote_world.users.activity, world.users.activity)
    assert remote_world.queries.texts == world.queries.texts
    for a, b in zip(artifacts.load_sids(built)[1:], artifacts.load_sids(remote)[1:]):
        np.testing.assert_array_equal(a, b)
    khqe, khqe_remote = artifacts.load_sids(built)[0], artifacts.load_sids(remote)[0]
    np.testing.assert_array_equal(khqe.rq.global_centroids[0], khqe_remote.rq.global_centroids[0])
    assert (artifacts.load_tokenizer(remote).to_str()
            == artifacts.load_tokenizer(built).to_str())
    for split in ("train", "test"):
        local_ev, remote_ev = artifacts.load_events(built, split), artifacts.load_events(remote, split)
        assert set(local_ev) == set(remote_ev)
        for k in local_ev:
            np.testing.assert_array_equal(local_ev[k], remote_ev[k])
    assert artifacts.load_query_keywords(remote) == artifacts.load_query_keywords(built)
    np.testing.assert_array_equal(artifacts.load_reward_model(remote).ctr_w,
                                  artifacts.load_reward_model(built).ctr_w)
    np.testing.assert_array_equal(artifacts.load_train_clicks(remote)["item"],
                                  artifacts.load_train_clicks(built)["item"])
    assert wd.read_metrics(remote) == wd.read_metrics(built)


def test_training_bookkeeping_is_written_into_the_bucket(bucket, monkeypatch):
    remote, local = "gs://b/train", bucket / "b" / "train"
    assert wd.guard_config(remote, "train", {"steps": 3}) is False
    assert wd.guard_config(remote, "train", {"steps": 3}) is True
    with pytest.raises(ValueError, match="mismatched keys: steps"):
        wd.guard_config(remote, "train", {"steps": 4})
    wd.write_metrics(remote, "train", {"loss": 1.5})
    wd.write_metrics(remote, "eval", {"hr": 0.25})
    assert json.loads((local / "metrics.json").read_text())["loss"] == 1.5
    assert wd.read_metrics(remote)["hr"] == 0.25
    assert not [n for n in os.listdir(local) if n.endswith(".tmp")]

    tensorboard_dirs = []
    monkeypatch.setattr("onesearch_jax.train.metric_writer.SummaryWriter",
                        lambda logdir: tensorboard_dirs.append(logdir) or _NullWriter())
    for steps in ((1, 2), (3,)):  # a resumed run appends to the same log
        writer = MetricWriter(remote, total_steps=3, enabled=True)
        for step in steps:
            writer.write(step, {"loss": float(step)})
        writer.close()
    rows = [json.loads(line) for line in (local / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert tensorboard_dirs == ["gs://b/train/tensorboard"] * 2


def test_orbax_gets_the_bucket_uri_unchanged(bucket, monkeypatch):
    from orbax.checkpoint._src.path import gcs_utils

    from onesearch_jax.train.checkpoints import Checkpointer

    # orbax asks the GCS API whether the bucket has a hierarchical namespace: not reachable here.
    monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
    ckpt = Checkpointer("gs://b/train/checkpoints", save_every=1, keep=1)
    assert str(ckpt.manager.directory) == "gs://b/train/checkpoints"
    assert ckpt.latest_step() is None
    assert (bucket / "b" / "train" / "checkpoints").is_dir()


class _NullWriter:
    def add_scalar(self, *args):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def test_a_bucket_log_is_uploaded_at_most_every_few_seconds_and_on_close(bucket):
    log = fileio.LineAppender("gs://b/run/metrics.jsonl", remote_flush_seconds=3600)
    log.write("1\n")
    log.flush()  # the first flush uploads ...
    log.write("2\n")
    log.flush()  # ... the next one waits for the interval ...
    assert (bucket / "b" / "run" / "metrics.jsonl").read_text() == "1\n"
    log.close()  # ... and close always uploads
    assert (bucket / "b" / "run" / "metrics.jsonl").read_text() == "1\n2\n"


def test_building_into_a_bucket_is_refused_by_name(bucket):
    with pytest.raises(ValueError, match="build_world builds on a local disk, not gs://b/w"):
        build_world_workdir(world_configs.get_config(MICRO_WORLD), "gs://b/w")
    with pytest.raises(ValueError, match="build_sids builds on a local disk"):
        build_sids_workdir(sid_configs.get_config("tiny"), "gs://b/w")


def test_lines_end_only_at_newlines_and_writes_leave_no_temp_files(tmp_path):
    text = '{"query": "a\u2028b"}\r\n{"query": "c"}\n'
    fileio.write_text(tmp_path / "k.jsonl", text)
    assert fileio.read_lines(tmp_path / "k.jsonl") == ['{"query": "a\u2028b"}', '{"query": "c"}']
    assert os.listdir(tmp_path) == ["k.jsonl"]
