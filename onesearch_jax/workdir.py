"""The workdir contract shared by every experiment: a config guard and `metrics.json`.

Every stage (build_world, build_sids, train, evaluate) writes into one workdir. A stage records
the config it was built with; rerunning it with a different config is refused instead of
silently mixing two worlds. `metrics.json` is flat (metric name -> number) plus `"stage"` (the
last stage that wrote) and `"config"` (each stage's config, keyed by stage). On several
processes every one checks, process 0 alone writes. A workdir may be a gs:// URI (fileio).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from onesearch_jax import distributed, fileio

METRICS_FILE = "metrics.json"


def _to_plain(config: Any) -> Any:
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(old: Mapping, new: Mapping) -> list[str]:
    """Dotted keys whose values differ between two (nested) configs, sorted."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>"))


# Keys that change how a run executes, never what it computes: a resume may change them, and a
# workdir recorded before such a key existed matches a config that has it.
RUNTIME_KEYS = frozenset({"train.prefetch", "data.state_cache", "train.stop_at",
                          # how often a run logs and saves, and how many saves it keeps
                          "train.log_every", "train.checkpoint_every", "train.keep"})
# Keys added after runs were recorded, with the value that reproduces what those runs computed: a
# record without the key matches a config holding that value. (train.grad_norm 'auto' is the
# earlier per-leaf norm off a GPU, and on one the same norm summed in another order.)
ADDED_KEYS = {"distill.kl_levels": 0, "data.keyword_min_events": 1, "data.mem_width": "fixed",
              "train.branch_from": "", "distill.teacher_input": "keywords",
              "train.grad_norm": "auto"}


def _added_at_default(key: str, old: Mapping, new: Mapping) -> bool:
    a, b = _flatten(old), _flatten(new)
    return key in ADDED_KEYS and key not in a and b.get(key) == ADDED_KEYS[key]


def guard_config(workdir: str, stage: str, config: Any, produced: bool = True) -> bool:
    """Records `config` for `stage`; refuses a different one. Returns True if it was already there.

    Raises ValueError naming the mismatched keys, so a user never mixes two builds in one dir.
    `produced`: whether the stage has outputs in the workdir already (a checkpoint, a finished
    build). A config recorded by runs that produced nothing (one refused a bad value, or stopped
    before its first checkpoint) binds nothing: the new one replaces it, so the corrected
    command runs.
    """
    fileio.makedirs(workdir)
    path = os.path.join(workdir, f"{stage}_config.json")
    plain = _to_plain(config)
    if fileio.exists(path):
        old = fileio.read_json(path)
        diff = [k for k in config_differences(old, plain)
                if k not in RUNTIME_KEYS and not _added_at_default(k, old, plain)]
        if diff and produced and "stage" in diff:
            raise ValueError(f"{workdir} holds a {old.get('stage')!r} run and this is a "
                             f"{plain.get('stage')!r} one; use a new --workdir")
        if diff and produced:
            more = ("; to train on from a checkpoint of this run, start a new --workdir with "
                    "--config.train.branch_from=THIS_WORKDIR@STEP" if diff == ["train.steps"]
                    else "")
            raise ValueError(
                f"{workdir} was built by stage {stage!r} with a different config "
                f"(mismatched keys: {', '.join(diff)}); use a new --workdir or the same "
                f"config{more}")
        if not diff:
            return True
        print(f"{path}: replacing the config of an earlier run that produced nothing "
              f"(changed: {', '.join(diff)})", flush=True)
    if distributed.is_writer():  # atomically: other processes may be reading it already
        fileio.write_json(path, plain)
    return False


def read_metrics(workdir: str) -> dict[str, Any]:
    path = os.path.join(workdir, METRICS_FILE)
    return fileio.read_json(path) if fileio.exists(path) else {}


def write_metrics(workdir: str, stage: str, metrics: Mapping[str, float], config: Any = None) -> str:
    """Merges this stage's metrics into `workdir/metrics.json` (atomically, on process 0 only);
    returns the path."""
    path = os.path.join(workdir, METRICS_FILE)
    if not distributed.is_writer():
        return path
    merged = read_metrics(workdir)
    for k, v in metrics.items():
        v = float(v)
        merged[k] = v if math.isfinite(v) else None
    merged["stage"] = stage
    configs = dict(merged.get("config") or {})
    if config is not None:
        configs[stage] = _to_plain(config)
    merged["config"] = configs
    fileio.write_json(path, merged)
    return path


# --- where each stage puts its outputs inside a workdir ---------------------------------------
def world_dir(workdir: str) -> str:
    return os.path.join(workdir, "world")


def data_dir(workdir: str) -> str:
    return os.path.join(workdir, "data")


def tokenizer_path(workdir: str) -> str:
    return os.path.join(world_dir(workdir), "tokenizer.json")


def reward_model_path(workdir: str) -> str:
    """The learned reward (world/reward_model.py), fitted on the training logs."""
    return os.path.join(world_dir(workdir), "reward_model.npz")


def query_keywords_path(workdir: str) -> str:
    """Keyword CoT of the training-log queries (keywords_io JSONL)."""
    return os.path.join(world_dir(workdir), "query_keywords.jsonl")


def sid_dir(workdir: str) -> str:
    return os.path.join(workdir, "sids")


# The files of a SID folder (W/sids/, written by build_sids or the real catalog's build).
KHQE_FILE = "khqe.npz"  # the tokenizer's codebooks
ITEM_CODES_FILE = "item_codes.npy"  # (N, L) SIDs of the items, catalog order
QUERY_CODES_FILE = "query_codes.npy"  # (Q, L) SIDs of the queries (the world's only)


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def has_checkpoint(workdir: str) -> bool:
    """Whether a training run has saved a checkpoint (a numbered step folder) in `workdir`."""
    folder = fileio.path(checkpoint_dir(workdir))
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


EVAL_EVENTS_DIR = "eval_events"
SLICE_PREFIX = "slice/"


AB_EVENTS_TAG = "ab"  # experiments.online_ab's per-search lifts: W/eval_events/ab.npz


def eval_events_path(workdir: str, tag: str) -> str:
    """W/eval_events/<tag>.npz: one evaluation's per-event outcomes (tag: `test`, `valid`,
    `teacher_test`, ...)."""
    return os.path.join(workdir, EVAL_EVENTS_DIR, f"{tag}.npz")


def save_eval_events(workdir: str, tag: str, event_ids, outcomes: Mapping[str, np.ndarray],
                     slices: Mapping[str, np.ndarray]) -> str:
    """Writes the per-event outcomes of one evaluation with the events' ids and slice masks, for
    paired comparisons of runs scored on the same events (eval/paired.py)."""
    path = eval_events_path(workdir, tag)
    arrays = {"event_id": np.asarray(event_ids)}
    arrays.update({k: np.asarray(v, np.float32) for k, v in outcomes.items()})
    arrays.update({SLICE_PREFIX + k: np.asarray(v, bool) for k, v in slices.items()})
    fileio.makedirs(os.path.dirname(path))
    fileio.save_npz(path, arrays)
    return path


def _events_command(tag: str, workdir: str) -> str:
    """The command that writes the per-event file `tag` (`free_valid` -> evaluate's flags)."""
    if tag == AB_EVENTS_TAG:
        return f"experiments.online_ab --workdir={workdir}"
    *modes, split = tag.split("_")
    flags = [{"free": "--noconstrained", "teacher": "--keywords=teacher"}.get(m, m) for m in modes]
    flags += [] if split == "test" else [f"--split={split}"]
    return " ".join([f"experiments.evaluate --workdir={workdir}"] + flags)


def load_eval_events(workdir: str, tag: str = "test"):
    """(event ids, {metric: [E]}, {slice: bool [E]}) saved by `save_eval_events`."""
    path = eval_events_path(workdir, tag)
    if not fileio.exists(path):
        raise FileNotFoundError(f"{path} is missing; run {_events_command(tag, workdir)}")
    arrays = fileio.load_npz(path)
    slices = {k[len(SLICE_PREFIX):]: v for k, v in arrays.items() if k.startswith(SLICE_PREFIX)}
    outcomes = {k: v for k, v in arrays.items()
                if k != "event_id" and not k.startswith(SLICE_PREFIX)}
    return arrays["event_id"], outcomes, slices
