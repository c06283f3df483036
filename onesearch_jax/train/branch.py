"""A run that starts from another run's checkpoint at a step: `train.branch_from = 'DIR@STEP'`.

Why: an ablation that changes only the loss (a distillation weight, a temperature, a teacher)
can share its parent's first STEP steps. The branch restores the parent's whole train state at
STEP (parameters, optimizer moments, step count, data position), so with an unchanged config it
continues exactly as the parent did, and any difference after STEP is the change itself: the
variants of a sweep are paired with their parent on the same prefix, at a fraction of the cost.
The branch may add the parameter EMA (train.ema_decay > 0: the EMA teacher starts at the
branch's parameters, as a fresh run's starts at its init); any other optimizer change is
refused, since the restored moments would belong to another optimizer.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections

from onesearch_jax.train.checkpoints import Checkpointer
from onesearch_jax.train.train_state import ParamsEmaState, setup_train_state

SEPARATOR = "@"


def parse_branch(spec: str, name: str = "train.branch_from",
                 form: str = "'WORKDIR@STEP' (a trained run's workdir and one of its checkpoint "
                             "steps, > 0)") -> tuple[str, int]:
    """'SOURCE@STEP' -> (SOURCE, STEP); anything else is refused naming `name` and the
    expected `form`."""
    source, sep, step = str(spec).rpartition(SEPARATOR)
    if not sep or not source or not step.isdigit() or int(step) <= 0:
        raise ValueError(f"{name}={spec!r}: expected {form}")
    return source, int(step)


def graft_opt_state(parent_opt_state, abstract_opt_state, params):
    """The parent's optimizer state in this run's structure: the same one, or the same plus a
    parameter EMA as the last link of the chain (started at `params`)."""
    want = jax.tree.structure(abstract_opt_state)
    if jax.tree.structure(parent_opt_state) == want:
        return parent_opt_state
    if (isinstance(abstract_opt_state, tuple) and isinstance(parent_opt_state, tuple)
            and len(abstract_opt_state) == len(parent_opt_state) + 1
            and isinstance(abstract_opt_state[-1], ParamsEmaState)
            and jax.tree.structure(tuple(abstract_opt_state[:-1]))
            == jax.tree.structure(tuple(parent_opt_state))):
        return (*parent_opt_state, ParamsEmaState(ema=jax.tree.map(jnp.copy, params)))
    raise ValueError("train.branch_from: the parent's optimizer differs from this run's beyond "
                     "the parameter EMA (train.clip, train.pretrained_lr_scale or the optimizer "
                     "chain changed); a branch may change the loss and the data, not the "
                     "optimizer's state")


def restore_branch(spec: str, model, config, setup):
    """(state, step, data_position) of the run `spec` names, at its step, on this run's mesh
    and in this run's optimizer structure. Refuses a step beyond train.steps, a missing
    checkpoint (listing the ones there) and another model config (by key)."""
    directory, step = parse_branch(spec)
    if step >= int(config.train.steps):
        raise ValueError(f"train.branch_from={spec!r}: step {step} is not before train.steps "
                         f"{int(config.train.steps)}; nothing would be trained")
    folder = os.path.join(directory, "checkpoints")
    source = Checkpointer(folder, save_every=1, keep=1 << 30, async_save=False)
    try:
        if step not in source.all_steps():
            raise ValueError(f"train.branch_from={spec!r}: {folder} has no checkpoint at step "
                             f"{step} (it has {sorted(source.all_steps()) or 'none'})")
        meta = source.restore_meta(step)
        # The parent's optimizer (its train section) shapes the state it saved.
        parent_config = ml_collections.ConfigDict(config.to_dict())
        parent_config.train = ml_collections.ConfigDict(meta["config"]["train"])
        parent_setup = setup_train_state(model, parent_config, setup.mesh)
        parent, meta = source.restore(parent_setup.abstract, config, step)
    finally:
        source.close()
    opt_state = graft_opt_state(parent.opt_state, setup.abstract.opt_state, parent.params)
    opt_state = jax.device_put(opt_state, setup.shardings.opt_state)
    state = parent.replace(tx=setup.tx, opt_state=opt_state)
    return state, int(meta["step"]), int(meta["data_position"])
