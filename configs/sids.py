"""KHQE semantic IDs for the world's items and queries.

Launch (after build_world on the same workdir):
    python -m experiments.build_sids --config=configs/sids.py:small --workdir=W

Presets: `tiny` (hash embedder, sizes 64-16-8 + 2x16 OPQ, for CPU tests), `tiny_minilm` (the
same sizes from MiniLM embeddings: the demo's real pipeline, ~1 min on 2 cores), `small` (MiniLM,
512-128-64 + 2x256, for ~20k items; expected ICR >= 0.99), `paper` (MiniLM, 4096-1024-512 + 2x256).
`--config.keyword_enhance=False` is the no-keyword ablation; `--config.khqe.suffix=dedup` swaps OPQ
for TIGER's de-duplication suffix; `--config.khqe.last_level=global` drops per-parent balancing.
"""
import ml_collections

from onesearch_jax.sid import codebooks

_PRESETS = {"tiny": ("hash", "tiny"), "tiny_minilm": ("minilm", "tiny"), "small": ("minilm", "small"),
            "paper": ("minilm", "paper")}


def get_config(arg=None) -> ml_collections.ConfigDict:
    name = arg or "tiny"
    if name not in _PRESETS:
        raise ValueError(f"unknown sids preset {name!r}; valid presets: {', '.join(_PRESETS)}")
    embedder, sizes = _PRESETS[name]
    c = ml_collections.ConfigDict()
    c.preset = name
    c.embedder = embedder
    c.keyword_enhance = True
    c.khqe = ml_collections.ConfigDict(codebooks.khqe_preset(sizes).to_dict())
    c.khqe.level_sizes = tuple(c.khqe.level_sizes)
    if name == "small":
        # Measured on the small world (MiniLM): 256-64-32 + 2x256 gives ICR 0.979; these sizes 0.997.
        c.khqe.level_sizes = (512, 128, 64)
        c.khqe.opq_codes = 256
    return c
