"""File access for workdirs on a local disk or a bucket (gs://, s3://), through etils.epath.

A TPU pod's workers share no disk: their workdir is a bucket. Everything a stage reads from a
workdir, and everything training and evaluation write there, goes through these few functions, so
a local path and a gs:// URI run the same code (epath picks the backend: os for local paths,
fsspec/gcsfs or tf.io.gfile for buckets). Writes are atomic for readers: locally a temp file next
to the target, then a rename; on a bucket the object itself (it appears only once its upload is
complete, so a temp copy would only cost a copy and a delete).
Orbax checkpoints and tfds read buckets themselves; TensorBoard events go through tensorboardX,
which writes gs:// with google-cloud-storage.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
import uuid
from typing import Any, Mapping

import numpy as np
from etils import epath

PathLike = str | os.PathLike


def path(p: PathLike) -> epath.Path:
    return epath.Path(p)


def is_remote(p: PathLike) -> bool:
    """True for a URI with a scheme (gs://bucket/dir), False for a local path."""
    return "://" in os.fspath(p)


def absolute(p: PathLike) -> str:
    """An absolute local path, or the URI without a trailing slash (os.path.abspath would
    mangle gs://b into $PWD/gs:/b)."""
    return os.fspath(p).rstrip("/") if is_remote(p) else os.path.abspath(p)


def require_local(workdir: PathLike, stage: str) -> None:
    """The build stages write with libraries that need a local disk (tfds array_record, numpy,
    tokenizers): refuse a bucket by name instead of writing half of it elsewhere."""
    if is_remote(workdir):
        raise ValueError(f"{stage} builds on a local disk, not {workdir}: build into a local "
                         f"workdir W, then upload it (gsutil -m cp -r W {workdir}) and train, "
                         "evaluate and serve from the bucket")


def exists(p: PathLike) -> bool:
    return path(p).exists()


def isdir(p: PathLike) -> bool:
    return path(p).is_dir()


def makedirs(p: PathLike) -> None:
    path(p).mkdir(parents=True, exist_ok=True)


def read_text(p: PathLike) -> str:
    return path(p).read_text(encoding="utf-8")


def read_bytes(p: PathLike) -> bytes:
    return path(p).read_bytes()


def write_bytes(p: PathLike, data: bytes) -> None:
    """Writes data to p atomically for readers, creating p's parent directory."""
    target = path(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_remote(p):
        target.write_bytes(data)
        return
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"  # writers never collide
    try:
        tmp.write_bytes(data)
        tmp.replace(target)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_output_file(p: PathLike, flag: str = "--out") -> None:
    """Refuses, before the work that fills it, an output path that cannot take a file: a folder,
    or a path under a file (a run of many minutes otherwise ends in a bare errno and nothing
    kept). Remote paths are left to the write."""
    if is_remote(p):
        return
    target = os.path.abspath(os.fspath(p))
    if os.path.isdir(target):
        raise ValueError(f"{flag}={p} is a folder; name the file to write")
    parent = os.path.dirname(target)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise ValueError(f"{flag}={p}: {parent} is a file, not a folder")


def write_text(p: PathLike, text: str) -> None:
    write_bytes(p, text.encode("utf-8"))


def read_json(p: PathLike) -> Any:
    return json.loads(read_text(p))


def write_json(p: PathLike, obj: Any, **dump_kwargs) -> None:
    dump_kwargs = {"indent": 2, "sort_keys": True, **dump_kwargs}
    write_text(p, json.dumps(obj, **dump_kwargs))


def read_lines(p: PathLike) -> list[str]:
    """The file's lines without their newline. Only \n (and \r\n) end a line: str.splitlines
    would also split inside a JSON line holding U+2028 written with ensure_ascii=False."""
    lines = read_text(p).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _open_for_numpy(p: PathLike):
    """A local path as it is (numpy reads it in place), a bucket object's bytes."""
    return io.BytesIO(read_bytes(p)) if is_remote(p) else os.fspath(p)


def load_npz(p: PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz file."""
    with np.load(_open_for_numpy(p), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_npy(p: PathLike) -> np.ndarray:
    return np.load(_open_for_numpy(p), allow_pickle=False)


def save_npz(p: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(p, buf.getvalue())


def save_npy(p: PathLike, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    write_bytes(p, buf.getvalue())


class LineAppender:
    """Appends text lines to a file: a local file is opened for append; an object store cannot
    append, so there the whole file is uploaded again, at most every `remote_flush_seconds`
    (metrics logs are small) and on close."""

    def __init__(self, p: PathLike, remote_flush_seconds: float = 10.0):
        self.path = os.fspath(p)
        self._remote = is_remote(p)
        self._every, self._last_upload, self._dirty = float(remote_flush_seconds), -math.inf, False
        makedirs(path(p).parent)
        if self._remote:
            self._text = read_text(p) if exists(p) else ""
            self._file = None
        else:
            self._file = open(self.path, "a", encoding="utf-8")

    def write(self, line: str) -> None:
        if self._remote:
            self._text += line
            self._dirty = True
        else:
            self._file.write(line)

    def flush(self, force: bool = False) -> None:
        if not self._remote:
            self._file.flush()
        elif self._dirty and (force or time.monotonic() - self._last_upload >= self._every):
            write_text(self.path, self._text)
            self._last_upload, self._dirty = time.monotonic(), False

    def close(self) -> None:
        if self._remote:
            self.flush(force=True)
        elif self._file is not None:
            self._file.close()
            self._file = None
