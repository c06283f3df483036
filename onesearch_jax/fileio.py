"""File access for workdirs on a local disk or a bucket (gs://, s3://), through etils.epath.

A TPU pod's workers share no disk: their workdir is a bucket. Everything a stage reads from a
workdir, and everything training and evaluation write there, goes through these few functions, so
a local path and a gs:// URI run the same code (epath picks the backend: os for local paths,
fsspec/gcsfs or tf.io.gfile for buckets). Writes are atomic for readers: a temp file next to the
target, then a rename (an object store shows an object only once its upload is complete).
Orbax checkpoints and tfds read buckets themselves; TensorBoard events go through tensorboardX,
which writes gs:// with google-cloud-storage.
"""
from __future__ import annotations

import io
import json
import os
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
    """An absolute local path, or the URI unchanged (os.path.abspath would mangle gs://b into
    $PWD/gs:/b)."""
    return os.fspath(p) if is_remote(p) else os.path.abspath(p)


def exists(p: PathLike) -> bool:
    return path(p).exists()


def isdir(p: PathLike) -> bool:
    return path(p).is_dir()


def makedirs(p: PathLike) -> None:
    path(p).mkdir(parents=True, exist_ok=True)


def listdir(p: PathLike) -> list[str]:
    """Names (not paths) of the entries of directory p, sorted."""
    return sorted(child.name for child in path(p).iterdir())


def read_text(p: PathLike) -> str:
    return path(p).read_text(encoding="utf-8")


def read_bytes(p: PathLike) -> bytes:
    return path(p).read_bytes()


def write_bytes(p: PathLike, data: bytes) -> None:
    """Writes data to p atomically (temp file + rename), creating p's parent directory."""
    target = path(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"  # processes never collide
    tmp.write_bytes(data)
    tmp.replace(target)


def write_text(p: PathLike, text: str) -> None:
    write_bytes(p, text.encode("utf-8"))


def read_json(p: PathLike) -> Any:
    return json.loads(read_text(p))


def write_json(p: PathLike, obj: Any, **dump_kwargs) -> None:
    dump_kwargs = {"indent": 2, "sort_keys": True, **dump_kwargs}
    write_text(p, json.dumps(obj, **dump_kwargs))


def read_lines(p: PathLike) -> list[str]:
    return read_text(p).splitlines()


def load_npz(p: PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz file (read whole: a bucket object is not memory-mapped)."""
    with np.load(io.BytesIO(read_bytes(p)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_npy(p: PathLike) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(p)), allow_pickle=False)


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
    append, so there the whole file is written again on each flush (metrics logs are small)."""

    def __init__(self, p: PathLike):
        self.path = os.fspath(p)
        self._remote = is_remote(p)
        makedirs(path(p).parent)
        if self._remote:
            self._text = read_text(p) if exists(p) else ""
            self._file = None
        else:
            self._file = open(self.path, "a", encoding="utf-8")

    def write(self, line: str) -> None:
        if self._remote:
            self._text += line
        else:
            self._file.write(line)

    def flush(self) -> None:
        if self._remote:
            write_text(self.path, self._text)
        else:
            self._file.flush()

    def close(self) -> None:
        if self._remote:
            self.flush()
        elif self._file is not None:
            self._file.close()
            self._file = None
