"""Embeds the world's items and queries, fits KHQE semantic IDs, and writes their quality figures.

    python -m experiments.build_sids --config=configs/sids.py:small --workdir=W

Reads W/world (from build_world); writes W/sids/{khqe.npz, item_codes.npy, query_codes.npy} and
merges `cur/l1`.., `icr`, `collision_rate`, `recon_error`, `seconds` into W/metrics.json.
"""
from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from onesearch_jax import cli, quiet
from onesearch_jax.pipeline.sid_build import build_sids_workdir

_CONFIG = config_flags.DEFINE_config_file("config", "configs/sids.py:tiny", "SID config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir holding a built world.", required=True)
_CACHE = flags.DEFINE_string("embedding_cache", None,
                             "Where embeddings are cached (default W/sids); share it across "
                             "workdirs of one world to refit codebooks without re-embedding.")


def main(argv):
    del argv
    quiet.quiet_libraries()
    metrics = build_sids_workdir(_CONFIG.value, _WORKDIR.value, _CACHE.value)
    for k, v in sorted(metrics.items()):
        print(f"{k:16s} {v:.4f}")


if __name__ == "__main__":
    cli.run(main)
