"""train.branch_from: a run continued from another run's checkpoint is that run when nothing
changed, differs only after the branch step when the loss changed, may add the parameter EMA,
and refuses what it cannot continue."""

import io
import json
import os

import jax
import numpy as np
import pytest

from onesearch_jax.model.transformer import build_model
from onesearch_jax.train.branch import parse_branch
from onesearch_jax.train.loop import train_loop
from onesearch_jax.train.sft_step import make_train_step
from onesearch_jax.train.train_state import params_ema
from tests.train.test_loop import _batch, _config


def _run(config, workdir, batches):
    return train_loop(config, str(workdir), build_model(config.model), batches,
                      stream=io.StringIO(), make_step=make_train_step)


def _equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _batches(position, rows=slice(None)):
    """The loop's batch factory: batch i from `position` on."""
    i = position
    while True:
        yield {k: v[rows] for k, v in _batch(i).items()}
        i += 1


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A 4-step run checkpointed at steps 2 and 4."""
    workdir = tmp_path_factory.mktemp("parent")
    return str(workdir), _run(_config(), workdir, _batches)


def test_branch_with_the_same_config_is_the_parent(tmp_path, parent):
    workdir, straight = parent
    c = _config()
    c.train.branch_from = f"{workdir}@2"
    branch = _run(c, tmp_path, _batches)
    assert branch.step == 4 and _equal(branch.state, straight.state)
    rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl") if "train/loss" in l]
    assert [r["step"] for r in rows] == [3, 4]  # only the steps after the branch are trained


def test_branch_with_another_loss_shares_the_prefix_only(tmp_path, parent):
    workdir, straight = parent
    c = _config()
    c.train.update(branch_from=f"{workdir}@2", label_smoothing=0.3)
    branch = _run(c, tmp_path, _batches)
    assert not _equal(branch.state.params, straight.state.params)
    c.train.branch_from = ""
    fresh = _run(c, tmp_path / "fresh", _batches)
    assert not _equal(branch.state.params, fresh.state.params)  # not a run from scratch either


def test_branch_may_add_the_parameter_ema(tmp_path, parent):
    workdir, straight = parent
    c = _config()
    c.train.update(branch_from=f"{workdir}@2", ema_decay=0.5)
    branch = _run(c, tmp_path, _batches)
    ema = params_ema(branch.state.opt_state)
    # Started at the branch's parameters and averaged over 2 steps: between them and the end.
    assert jax.tree.structure(ema) == jax.tree.structure(branch.state.params)
    assert not _equal(ema, branch.state.params)
    # The EMA does not change the update: the parameters are the parent's.
    assert _equal(branch.state.params, straight.state.params)


def test_branch_refuses_what_it_cannot_continue(tmp_path, parent):
    workdir, _ = parent
    batches = _batches
    c = _config()
    c.train.branch_from = f"{workdir}@3"
    with pytest.raises(ValueError, match=r"no checkpoint at step 3 \(it has \[2, 4\]\)"):
        _run(c, tmp_path / "a", batches)
    c.train.branch_from = f"{workdir}@4"
    with pytest.raises(ValueError, match="not before train.steps 4"):
        _run(c, tmp_path / "b", batches)
    c.train.update(branch_from=f"{workdir}@2", clip=0.0)
    with pytest.raises(ValueError, match="optimizer differs"):
        _run(c, tmp_path / "c", batches)
    c = _config()
    c.model.mlp_dim = 64
    c.train.branch_from = f"{workdir}@2"
    with pytest.raises(ValueError, match="different model config.*mlp_dim"):
        _run(c, tmp_path / "d", batches)
    for bad in ("nowhere", "dir@", "dir@x", "@3", "dir@0"):
        with pytest.raises(ValueError, match="expected 'WORKDIR@STEP'"):
            parse_branch(bad)
    assert parse_branch("gs://b/run@3000") == ("gs://b/run", 3000)
    assert not os.path.exists(tmp_path / "a" / "checkpoints" / "2")
