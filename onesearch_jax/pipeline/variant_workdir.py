"""A variant's workdir that shares a built world and SIDs with a base workdir.

Several trainings (ladder rungs, seeds, the demo's SD student) read the same world and SIDs:
each gets its own workdir whose world/, sids/ and data/ are symlinks to the base's, with the
base's build configs and world/SID metrics copied, so every experiment reads it like any other.
"""
from __future__ import annotations

import os
import shutil

from onesearch_jax import fileio
from onesearch_jax import workdir as wd
from onesearch_jax.eval import ladder_table as lt

LINKED = ("world", "sids", "data")
COPIED = ("world_config.json", "sids_config.json")


def prepare_run_dir(base: str, run: str) -> None:
    """Idempotent: symlinks base's world/, sids/, data/ (resolved), copies its configs, and
    starts metrics.json from the base's world/SID numbers (never overwrites a run's own)."""
    if fileio.is_remote(base) or fileio.is_remote(run):
        raise ValueError(
            f"a variant workdir links its base's world/, sids/ and data/, and a bucket holds no "
            f"links: copy them into {run} instead (gsutil -m cp -r "
            + " ".join(f"{base}/{name}" for name in LINKED + COPIED)
            + f" {run}/; not train_config.json: the run writes its own), then run the stage")
    base = os.path.abspath(base)
    os.makedirs(run, exist_ok=True)
    for name in LINKED:
        # The real directory, never a link to a link: a variant of a variant (an RL run from an
        # SD run) must not break when the middle one moves.
        target = os.path.realpath(os.path.join(base, name))
        link = os.path.join(run, name)
        if not os.path.exists(target):
            continue
        if os.path.islink(link):
            if os.readlink(link) == target:
                continue
            os.remove(link)  # the base moved: point at the given one
        elif os.path.exists(link):
            raise RuntimeError(f"{link} exists and is not a symlink to {target}; remove it")
        os.symlink(target, link)
    for name in COPIED:
        src, dst = os.path.join(base, name), os.path.join(run, name)
        if os.path.exists(src) and not os.path.exists(dst):
            shutil.copyfile(src, dst)
    dst = os.path.join(run, wd.METRICS_FILE)
    if not os.path.exists(dst):
        fileio.write_json(dst, lt.baseline_metrics(wd.read_metrics(base)))
