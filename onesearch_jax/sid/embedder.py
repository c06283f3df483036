"""The text-embedder interface the SID pipeline relies on, and a registry of implementations.

Embedders are chosen by config string ('hash' for tests and the tiny world, 'minilm' for the
real thing), so switching embedders is a config change, not a code fork.
"""
from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextEmbedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed size."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str], progress=None) -> np.ndarray:
        """Returns an (len(texts), dim) float32 array of unit vectors; advances `progress` (a
        `progress.Progress` or None) by the texts embedded, as they are."""
        ...


def _make_hash(**kwargs) -> TextEmbedder:
    from onesearch_jax.sid.hash_embedder import HashEmbedder
    return HashEmbedder(**kwargs)


def _make_minilm(**kwargs) -> TextEmbedder:
    from onesearch_jax.model.minilm import MiniLMEmbedder
    return MiniLMEmbedder(**kwargs)


EMBEDDERS: dict[str, Callable[..., TextEmbedder]] = {
    "hash": _make_hash,
    "minilm": _make_minilm,
}


def make_embedder(name: str, **kwargs) -> TextEmbedder:
    """Builds the embedder registered under ``name``; kwargs go to its constructor."""
    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; valid names: {sorted(EMBEDDERS)}")
    return EMBEDDERS[name](**kwargs)
