"""Fitted SID codebooks: what KHQE's tokenizer is once trained (residual k-means prefix, OPQ or
dedup suffix), loaded, saved, and used to encode and decode. Serving reads SIDs through this
module alone; fitting lives in `khqe.py`, `rq_kmeans.py`, `opq.py` and `kmeans.py`.

Sizes come as presets (`khqe_preset('tiny' | 'small' | 'paper')`) or explicit fields; the config
is a frozen dataclass that round-trips through plain dicts (and so ml_collections.ConfigDict).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

import numpy as np

from onesearch_jax import fileio
from onesearch_jax.sid.assign import assign, assign_batched, check_embeddings
from onesearch_jax.sid.dedup_suffix import dedup_suffix
from onesearch_jax.sid.parent_batches import parent_batches


LAST_LEVEL_MODES = ("global", "per_parent")


@dataclasses.dataclass
class ResidualKMeans:
    """Codebooks of a fitted residual k-means."""
    global_centroids: list[np.ndarray]        # per global level, (k_l, D)
    last_level: str                           # 'global' | 'per_parent'
    parent_centroids: np.ndarray | None = None  # (num_parents, k_last, D) when per_parent
    parent_valid: np.ndarray | None = None      # (num_parents, k_last) bool

    @property
    def dim(self) -> int:
        return int(self.global_centroids[0].shape[1])

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Vocabulary size per level (k_last for a per-parent level: codes are local)."""
        sizes = [int(c.shape[0]) for c in self.global_centroids]
        if self.last_level == "per_parent":
            sizes.append(int(self.parent_centroids.shape[1]))
        return tuple(sizes)

    def encode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(codes int32 (N, L), final residual float32 (N, D))."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected embeddings of shape (N, {self.dim}), got {x.shape}")
        residual = x.copy()
        codes = []
        for c in self.global_centroids:
            code, _ = assign(residual, c)
            residual -= c[code]
            codes.append(code)
        if self.last_level == "per_parent":
            code = assign_per_parent(residual, codes[-1], self.parent_centroids, self.parent_valid)
            residual -= self.parent_centroids[codes[-1], code]
            codes.append(code)
        return np.stack(codes, axis=1).astype(np.int32), residual

    def decode(self, codes) -> np.ndarray:
        """Sum of the selected centroids: the reconstruction of x from its codes."""
        codes = np.asarray(codes)
        out = np.zeros((codes.shape[0], self.dim), np.float32)
        for level, c in enumerate(self.global_centroids):
            out += c[codes[:, level]]
        if self.last_level == "per_parent":
            out += self.parent_centroids[codes[:, -2], codes[:, -1]]
        return out


def assign_per_parent(residual, parents, parent_centroids, parent_valid) -> np.ndarray:
    """Local code of each row among its parent's centroids (0 where the parent has none)."""
    num_parents, k, dim = parent_centroids.shape
    codes = np.zeros((residual.shape[0],), np.int32)
    for batch in parent_batches(parents, k=k, dim=dim):
        xs, _ = batch.gather(residual)
        ids = np.maximum(batch.parent_ids, 0)
        valid = parent_valid[ids] & (batch.parent_ids >= 0)[:, None]
        code, _ = assign_batched(xs, parent_centroids[ids], valid)
        for g, rows in enumerate(batch.rows):
            codes[rows] = code[g, :len(rows)]
    return codes


@dataclasses.dataclass
class OPQ:
    """rotation (D, D) orthogonal; codebooks (M, K, D // M) in the rotated space."""
    rotation: np.ndarray
    codebooks: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.rotation.shape[0])

    def _split(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (N, {self.dim}), got {x.shape}")
        m, _, d_sub = self.codebooks.shape
        return (x @ self.rotation).reshape(x.shape[0], m, d_sub)

    def encode(self, x) -> np.ndarray:
        """(N, M) int32 codes: nearest sub-codeword per rotated block."""
        y = self._split(x)
        codes = [assign(y[:, i], cb)[0] for i, cb in enumerate(self.codebooks)]
        return np.stack(codes, axis=1).astype(np.int32)

    def decode(self, codes) -> np.ndarray:
        """(N, D) reconstruction in the original space."""
        codes = np.asarray(codes)
        y_hat = np.concatenate([cb[codes[:, i]] for i, cb in enumerate(self.codebooks)], axis=1)
        return y_hat @ self.rotation.T


SUFFIX_MODES = ("opq", "dedup")


@dataclasses.dataclass(frozen=True)
class KHQEConfig:
    """Sizes and training knobs of the tokenizer (defaults: the paper's)."""
    level_sizes: tuple[int, ...] = (4096, 1024, 512)
    last_level: str = "per_parent"        # 'per_parent' | 'global'
    suffix: str = "opq"                   # 'opq' | 'dedup'
    opq_subspaces: int = 2
    opq_codes: int = 256
    iters: int = 20                       # Lloyd iterations per k-means level
    opq_iters: int = 10                   # OPQ rotation / codebook alternations
    max_points_per_centroid: int = 256
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "level_sizes", tuple(int(s) for s in self.level_sizes))
        if not self.level_sizes or min(self.level_sizes) < 1:
            raise ValueError(f"level_sizes must be positive integers, got {self.level_sizes}")
        if self.last_level not in LAST_LEVEL_MODES:
            raise ValueError(f"last_level must be one of {LAST_LEVEL_MODES}, "
                             f"got {self.last_level!r}")
        if self.suffix not in SUFFIX_MODES:
            raise ValueError(f"suffix must be one of {SUFFIX_MODES}, got {self.suffix!r}")
        if self.opq_subspaces < 1 or self.opq_codes < 2:
            raise ValueError(f"need opq_subspaces >= 1 and opq_codes >= 2, got "
                             f"{self.opq_subspaces}, {self.opq_codes}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["level_sizes"] = list(self.level_sizes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "KHQEConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown KHQE config keys: {sorted(unknown)}")
        return cls(**{k: d[k] for k in d})


PRESETS = {
    # CPU tests and a few-thousand-item toy world.
    "tiny": KHQEConfig(level_sizes=(64, 16, 8), opq_codes=16, iters=10, opq_iters=4),
    # ~20k-100k items.
    "small": KHQEConfig(level_sizes=(256, 64, 32), opq_codes=64),
    "paper": KHQEConfig(),
}


def khqe_preset(name: str, **overrides) -> KHQEConfig:
    """A named preset with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown KHQE preset {name!r}; choose from {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


def as_khqe_config(cfg) -> KHQEConfig:
    if isinstance(cfg, KHQEConfig):
        return cfg
    if isinstance(cfg, str):
        return khqe_preset(cfg)
    if hasattr(cfg, "to_dict"):          # ml_collections.ConfigDict
        cfg = cfg.to_dict()
    return KHQEConfig.from_dict(cfg)


@dataclasses.dataclass
class KHQE:
    """A fitted tokenizer: prefix codebooks (ResidualKMeans) and the OPQ suffix (None for dedup)."""
    config: KHQEConfig
    rq: ResidualKMeans
    opq: OPQ | None

    @property
    def dim(self) -> int:
        return self.rq.dim

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Vocabulary size of each SID position (k_last for the per-parent level: local codes)."""
        return self.rq.level_sizes + (self.config.opq_codes,) * self.config.opq_subspaces

    @property
    def per_parent_levels(self) -> tuple[int, ...]:
        """Positions whose codes are local to the previous position's code."""
        return (len(self.rq.level_sizes) - 1,) if self.rq.last_level == "per_parent" else ()

    def encode(self, embeddings) -> np.ndarray:
        """(N, levels + subspaces) int32 SIDs for items or queries.

        With suffix='dedup' the suffix ranks rows among the rows of this call that share a prefix:
        encode the whole catalogue in one call (as fit does); a lone query gets suffix zeros.
        """
        x = check_embeddings(embeddings, "embeddings", allow_zero_rows=False)
        if x.shape[1] != self.dim:
            raise ValueError(f"embedding dimension {x.shape[1]} does not match the codebooks' "
                             f"{self.dim}")
        prefix, residual = self.rq.encode(x)
        return np.concatenate([prefix, self._suffix(prefix, residual)], axis=1)

    def _suffix(self, prefix, residual) -> np.ndarray:
        if self.opq is None:
            return dedup_suffix(prefix, base=self.config.opq_codes,
                                num_tokens=self.config.opq_subspaces)
        return self.opq.encode(residual)

    def decode(self, codes) -> np.ndarray:
        """Reconstructed embeddings (the dedup suffix carries no vector, so it adds nothing)."""
        codes = np.asarray(codes)
        n_prefix = len(self.rq.level_sizes)
        out = self.rq.decode(codes[:, :n_prefix])
        if self.opq is not None:
            out = out + self.opq.decode(codes[:, n_prefix:])
        return out

    def save(self, path) -> None:
        """One .npz: config (JSON) plus every codebook array."""
        arrays = {f"level_{i}": c for i, c in enumerate(self.rq.global_centroids)}
        if self.rq.last_level == "per_parent":
            arrays["parent_centroids"] = self.rq.parent_centroids
            arrays["parent_valid"] = self.rq.parent_valid
        if self.opq is not None:
            arrays["opq_rotation"] = self.opq.rotation
            arrays["opq_codebooks"] = self.opq.codebooks
        config = json.dumps(self.config.to_dict())
        fileio.save_npz(path, {"config": np.array(config), **arrays})

    @classmethod
    def load(cls, path) -> "KHQE":
        z = fileio.load_npz(path)
        config = KHQEConfig.from_dict(json.loads(str(z["config"])))
        n_global = len(config.level_sizes) - (config.last_level == "per_parent")
        rq = ResidualKMeans(global_centroids=[z[f"level_{i}"] for i in range(n_global)],
                            last_level=config.last_level)
        if config.last_level == "per_parent":
            rq.parent_centroids, rq.parent_valid = z["parent_centroids"], z["parent_valid"]
        opq = (OPQ(rotation=z["opq_rotation"], codebooks=z["opq_codebooks"])
               if config.suffix == "opq" else None)
        return cls(config=config, rq=rq, opq=opq)
