"""KHQE semantic IDs: residual k-means prefix + OPQ (or dedup) suffix, 5 tokens per item.

OneSearch's tokenizer: 3 levels of residual k-means over keyword-enhanced embeddings (paper sizes
4096-1024-512, the last level an independent k-means per level-2 code) and 2 OPQ codes of 256 on the
final residual. Items and queries share the codebooks: `KHQE.encode` serves both. The suffix can be
switched to a TIGER-style de-duplication index (`suffix='dedup'`) for ablations.

Sizes come as presets (`khqe_preset('tiny' | 'small' | 'paper')`) or explicit fields; the config is a
frozen dataclass that round-trips through plain dicts (and so ml_collections.ConfigDict).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

import numpy as np

from onesearch_jax import fileio
from onesearch_jax.sid import kmeans
from onesearch_jax.sid.dedup_suffix import dedup_suffix
from onesearch_jax.sid.opq import OPQ, fit_opq
from onesearch_jax.sid.rq_kmeans import LAST_LEVEL_MODES, ResidualKMeans, fit_residual_kmeans

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


def _as_config(cfg) -> KHQEConfig:
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
        x = kmeans.check_embeddings(embeddings, "embeddings", allow_zero_rows=False)
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


def fit_and_encode_khqe(embeddings, cfg) -> tuple[KHQE, np.ndarray]:
    """Fits the tokenizer and returns the training rows' SIDs without a second encode pass."""
    cfg = _as_config(cfg)
    x = kmeans.check_embeddings(embeddings, "embeddings", allow_zero_rows=False)
    if x.shape[0] < cfg.level_sizes[0]:
        raise ValueError(f"{x.shape[0]} items are fewer than the {cfg.level_sizes[0]} level-1 "
                         f"centroids; use smaller level_sizes (e.g. khqe_preset('tiny'))")
    rq, prefix, residual = fit_residual_kmeans(
        x, cfg.level_sizes, last_level=cfg.last_level, iters=cfg.iters, seed=cfg.seed,
        max_points_per_centroid=cfg.max_points_per_centroid)
    opq = None
    if cfg.suffix == "opq":
        opq = fit_opq(residual, subspaces=cfg.opq_subspaces, codes=cfg.opq_codes,
                      iters=cfg.opq_iters, seed=cfg.seed + 101,
                      max_points_per_centroid=cfg.max_points_per_centroid)
    model = KHQE(config=cfg, rq=rq, opq=opq)
    return model, np.concatenate([prefix, model._suffix(prefix, residual)], axis=1)


def fit_khqe(embeddings, cfg) -> KHQE:
    """Fits prefix codebooks and suffix on item embeddings (N, D) float32, L2-normalised."""
    return fit_and_encode_khqe(embeddings, cfg)[0]
