"""The trained parameters out of a workdir's orbax checkpoint, without the optimizer state.

Serving, evaluation and the RL stages' starting point need the parameters alone: a partial
restore reads only the `params` subtree of the saved train state (the Adam moments are twice the
parameters again), straight onto the shardings asked for. The checkpoint's model config is
checked first, so a mismatch is named before any array is read. Training writes checkpoints with
train/checkpoints.py; this module never imports training code.
"""
from __future__ import annotations

import json
from typing import Any

import flax.linen as nn
import jax
import orbax.checkpoint as ocp

from onesearch_jax import fileio
from onesearch_jax import sharding as sharding_lib
from onesearch_jax.model import transformer

# Model fields that change compute but not parameters: free to differ on resume.
RUNTIME_MODEL_KEYS = frozenset({"dropout_rate", "dtype", "attention_impl"})


def config_to_json(config) -> dict:
    """ConfigDict / dict -> plain JSON-able dict (tuples become lists)."""
    if hasattr(config, "to_json_best_effort"):
        return json.loads(config.to_json_best_effort())
    return json.loads(json.dumps(config, default=str))


def model_config_mismatches(saved: dict, current: dict) -> list[str]:
    """Sorted names of parameter-shaping model keys whose values differ."""
    saved, current = config_to_json(saved), config_to_json(current)
    keys = (set(saved) | set(current)) - RUNTIME_MODEL_KEYS
    return sorted(k for k in keys if saved.get(k, "<missing>") != current.get(k, "<missing>"))


def abstract_params(model: nn.Module, sharding: jax.sharding.Sharding | None = None, *,
                    mesh: jax.sharding.Mesh | None = None, rules=None):
    """ShapeDtypeStructs of the model's parameters: with `mesh`, each sharded by its logical
    axis names under `rules` (as training shards them), else all on `sharding` (default: the
    first local device)."""
    boxed = jax.eval_shape(lambda r: transformer.init_params(model, r), jax.random.key(0))
    if mesh is not None:
        shardings = sharding_lib.logical_to_shardings(nn.get_partition_spec(boxed), mesh,
                                                      rules or sharding_lib.DEFAULT_RULES)
        return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            nn.unbox(boxed), shardings)
    where = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=where),
                        nn.unbox(boxed))


def restore_params(checkpoint_dir: str, model_config, abstract, step: int | None = None) -> Any:
    """The parameters of checkpoint `step` (default: the latest) onto `abstract`'s shardings."""
    manager = ocp.CheckpointManager(fileio.absolute(checkpoint_dir),
                                    options=ocp.CheckpointManagerOptions(create=False))
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {checkpoint_dir}")
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        bad = model_config_mismatches(meta["config"].get("model", {}),
                                      config_to_json(model_config))
        if bad:
            raise ValueError(f"checkpoint at step {step} under {checkpoint_dir} was made with a "
                             f"different model config; mismatched keys: {bad}")
        target = {"params": abstract}
        restore_args = jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding), target)
        out = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=restore_args, partial_restore=True)))
    finally:
        manager.close()
    return out["state"]["params"]
