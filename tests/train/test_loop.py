"""train_loop: logging, eval hook, SIGTERM + resume == straight run, NaN guard."""

import io
import json
import os

import jax
import numpy as np
import pytest

from configs.sft import get_config
from onesearch_jax.model.transformer import build_model
from onesearch_jax.train.checkpoints import Checkpointer
from onesearch_jax.train.loop import NonFiniteLossError, train_loop
from onesearch_jax.train.sft_step import check_batch, make_train_step, sft_loss


def _config(steps=4):
    c = get_config("tiny")
    c.model.update(vocab_size=32, d_model=16, num_heads=2, mlp_dim=32, enc_layers=1, dec_layers=1)
    c.train.update(
        steps=steps,
        warmup=1,
        lr=1e-2,
        batch_size=8,
        log_every=1,
        eval_every=2,
        checkpoint_every=2,
        keep=3,
        prefetch=2,  # through the input thread (auto would skip it on CPU)
    )
    return c


def _batch(i, poison=False):
    rng = np.random.default_rng(i)
    tgt = rng.integers(1, 32, (8, 5)).astype(np.int32)
    w = np.ones((8, 5), np.float32)
    if poison:
        w[0, 0] = np.nan
    return dict(
        enc_tokens=rng.integers(1, 32, (8, 7)).astype(np.int32),
        dec_inputs=np.concatenate([np.ones((8, 1), np.int32), tgt[:, :-1]], 1),
        dec_targets=tgt,
        dec_weights=w,
    )


def test_sigterm_then_resume_equals_straight_run(tmp_path, preempting_batches):
    c = _config()
    model = build_model(c.model)
    evals = []
    def eval_fn(state, step):  # held-out NLL, as a stage's periodic evaluation reports it
        evals.append(step)
        _, m = sft_loss(state.params, model, _batch(100), None, train=False)
        return {k: float(m[k]) for k in ("nll", "accuracy", "num_tokens")}

    stream = io.StringIO()
    straight = train_loop(c, str(tmp_path / "a"), model, preempting_batches(_batch),
                          eval_fn=eval_fn, stream=stream,
                          make_step=make_train_step, check_batch=check_batch)
    assert straight.step == 4 and not straight.preempted and evals == [2, 4]
    rows = [json.loads(l) for l in open(tmp_path / "a" / "metrics.jsonl")]
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert {
        "train/accuracy",
        "train/grad_norm",
        "train/learning_rate",
        "perf/tokens_per_sec",
    } <= set(train_rows[0])
    eval_rows = [r for r in rows if "eval/nll" in r]
    assert [r["step"] for r in eval_rows] == [2, 4]
    assert all(r["eval/num_tokens"] == 40 and 0 <= r["eval/accuracy"] <= 1 for r in eval_rows)
    assert np.isfinite(eval_rows[-1]["eval/nll"])
    assert os.listdir(tmp_path / "a" / "tensorboard")[0].startswith("events.out.tfevents")
    assert "steps/s" in stream.getvalue() and "ETA" in stream.getvalue()

    workdir = str(tmp_path / "b")
    first = train_loop(c, workdir, model, preempting_batches(_batch, sigterm_at=0),
                       stream=io.StringIO(), make_step=make_train_step)
    assert first.preempted and first.step == 1  # saved at step 1 and exited cleanly
    assert Checkpointer(os.path.join(workdir, "checkpoints"), save_every=2, keep=3).all_steps() == [
        1
    ]
    second = train_loop(c, workdir, model, preempting_batches(_batch),
                        stream=io.StringIO(), make_step=make_train_step)
    assert second.step == 4 and not second.preempted
    for a, b in zip(jax.tree.leaves(straight.state), jax.tree.leaves(second.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_stop_at_then_resume_equals_straight_run(tmp_path, preempting_batches):
    """train.stop_at stops on the full run's schedule: resumed without it, the run ends where an
    uninterrupted one does (what a ladder branch's parent retrain relies on)."""
    c = _config(steps=5)
    model = build_model(c.model)
    run = lambda c, workdir: train_loop(c, str(tmp_path / workdir), model,  # noqa: E731
                                        preempting_batches(_batch), stream=stream,
                                        make_step=make_train_step)
    stream = io.StringIO()
    straight = run(c, "a")
    c.train.stop_at = 3
    first = run(c, "b")
    assert first.step == 3 and first.preempted
    assert "stopped at step 3 of 5 (train.stop_at)" in stream.getvalue()
    ckpt = Checkpointer(str(tmp_path / "b" / "checkpoints"), save_every=2, keep=3)
    assert ckpt.all_steps() == [2, 3]
    ckpt.close()
    c.train.stop_at = 0
    second = run(c, "b")
    assert second.step == 5 and not second.preempted
    for x, y in zip(jax.tree.leaves(straight.state), jax.tree.leaves(second.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    c.train.stop_at = 6
    with pytest.raises(ValueError, match=r"train.stop_at=6 must be in \[0, train.steps=5\]"):
        run(c, "c")


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, preempting_batches):
    c = _config(steps=6)
    workdir = str(tmp_path)
    # Batch index 2 is step 3: seen one step late, while step 4 (due a save) is in flight.
    poisoned = preempting_batches(lambda i: _batch(i, poison=(i == 2)))
    with pytest.raises(NonFiniteLossError, match="at step 3.*last good checkpoint: step 2.*branch_from=THIS_WORKDIR@2"):
        train_loop(c, workdir, build_model(c.model), poisoned, stream=io.StringIO(),
                   make_step=make_train_step)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), save_every=2, keep=3)
    assert ckpt.all_steps() == [2]
    assert ckpt.restore_meta()["data_position"] == 2
    ckpt.close()


def test_sft_config_presets():
    for name in ("tiny", "small", "base", "minilm"):
        c = get_config(name)
        assert c.model.d_model == {"tiny": 64, "small": 256, "base": 768, "minilm": 384}[name]
        assert c.data.enc_len > 0 and c.data.dec_len > 0  # the data section is the data pipeline's
        assert c.mesh.shape == (-1, 1, 1) and c.train.steps > c.train.warmup
    assert get_config("base").model.enc_layers == 6
    assert get_config("minilm").model.encoder == "minilm"
    assert get_config("minilm").train.pretrained_lr_scale == 0.1
    with pytest.raises(ValueError, match=r"valid: \['base', 'minilm', 'small', 'tiny'\]"):
        get_config("huge")


def test_schedule_refuses_a_negative_learning_rate():
    import ml_collections
    from onesearch_jax.train.train_state import learning_rate_schedule

    train = ml_collections.ConfigDict({"steps": 10, "warmup": 2, "lr": -1.0})
    with pytest.raises(ValueError, match="train.lr must be >= 0, got -1.0"):
        learning_rate_schedule(train)
    train.lr = 1e-3
    assert float(learning_rate_schedule(train)(2)) == pytest.approx(1e-3)
