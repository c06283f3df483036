"""A fast, dependency-free text embedder for tests and the tiny simulated world.

Each text becomes a bag of features: lower-cased word unigrams and character trigrams of each
word (with '<' and '>' marking word boundaries, so "shoe" and "shoes" share most trigrams).
Every feature maps to a fixed pseudo-random Gaussian vector of size ``dim`` (a random projection
of the sparse bag, seeded by a keyed BLAKE2b hash of the feature, so results are identical across
processes and machines, unlike Python's salted ``hash()``). The weighted sum is L2-normalised.
Texts that share words or word pieces therefore get high cosine similarity.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np

WORD_PATTERN = re.compile(r"\w+", re.UNICODE)


def text_features(text: str) -> list[tuple[str, str]]:
    """(kind, feature) pairs: ('w', word) for each word and ('c', trigram) for its trigrams."""
    features = []
    for word in WORD_PATTERN.findall(text.lower()):
        features.append(("w", word))
        padded = f"<{word}>"
        features.extend(("c", padded[i:i + 3]) for i in range(len(padded) - 2))
    return features


class HashEmbedder:
    """Hashed unigrams + character trigrams -> seeded random projection -> L2 norm.

    Args:
      dim: output size.
      seed: changes every feature's random vector (a different, equally valid embedding).
      trigram_weight: weight of each character trigram relative to a whole word (1.0).
    """

    def __init__(self, dim: int = 64, seed: int = 0, trigram_weight: float = 0.5):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        if trigram_weight < 0:
            raise ValueError(f"trigram_weight must be >= 0, got {trigram_weight}")
        self._dim, self.seed, self.trigram_weight = dim, seed, trigram_weight
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self._dim

    def feature_vector(self, kind: str, feature: str) -> np.ndarray:
        """The fixed Gaussian vector of one feature (cached; deterministic from seed + text)."""
        key = (kind, feature)
        vector = self._cache.get(key)
        if vector is None:
            digest = hashlib.blake2b(f"{kind}:{feature}".encode("utf-8"), digest_size=8,
                                     key=self.seed.to_bytes(8, "little")).digest()
            rng = np.random.default_rng(int.from_bytes(digest, "little"))
            vector = rng.standard_normal(self._dim)
            self._cache[key] = vector
        return vector

    def embed(self, texts: list[str], progress=None) -> np.ndarray:
        """(N, dim) float32 unit vectors; raises ValueError for a text without any word.
        `progress` (the caller's line) advances once, by len(texts): hashing is fast."""
        if isinstance(texts, str):
            raise ValueError("embed expects a list of strings, got a single str")
        out = np.zeros((len(texts), self._dim), np.float32)
        weights = {"w": 1.0, "c": self.trigram_weight}
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"text {row} is {type(text).__name__}, expected str")
            features = text_features(text)
            if not features:
                raise ValueError(f"text {row} ({text!r}) has no word characters to embed")
            total = np.zeros(self._dim)
            for kind, feature in features:
                total += weights[kind] * self.feature_vector(kind, feature)
            norm = np.linalg.norm(total)
            if norm == 0:
                raise ValueError(f"text {row} ({text!r}) embeds to a zero vector")
            out[row] = total / norm
        if progress is not None:
            progress.update(len(texts))
        return out
