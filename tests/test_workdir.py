"""Workdir contract: config guard refuses mixing, metrics.json merges stages."""
import json

import ml_collections
import pytest

from onesearch_jax import workdir


def test_guard_refuses_a_different_config_and_names_keys(tmp_path):
    cfg = ml_collections.ConfigDict({"num_items": 10, "clicks": {"rate": 0.1}})
    assert workdir.guard_config(str(tmp_path), "world", cfg) is False
    assert workdir.guard_config(str(tmp_path), "world", cfg) is True
    cfg.clicks.rate = 0.2
    with pytest.raises(ValueError, match=r"mismatched keys: clicks\.rate"):
        workdir.guard_config(str(tmp_path), "world", cfg)


def test_a_config_under_which_nothing_was_produced_is_replaced(tmp_path, capsys):
    """A run refused a bad value (or stopped before any output) after recording its config: the
    corrected command runs; once the stage has outputs the guard holds again."""
    bad, good = {"num_items": -5}, {"num_items": 10}
    assert workdir.guard_config(str(tmp_path), "world", bad) is False
    assert workdir.guard_config(str(tmp_path), "world", good, produced=False) is False
    assert "replacing the config of an earlier run that produced nothing (changed: num_items)" \
        in capsys.readouterr().out
    with open(tmp_path / "world_config.json") as f:
        assert json.load(f) == good
    with pytest.raises(ValueError, match="mismatched keys: num_items"):
        workdir.guard_config(str(tmp_path), "world", bad, produced=True)


def test_has_checkpoint_sees_step_folders_only(tmp_path):
    assert not workdir.has_checkpoint(str(tmp_path))
    (tmp_path / "checkpoints" / "tmp").mkdir(parents=True)  # orbax's folder before a save
    assert not workdir.has_checkpoint(str(tmp_path))
    (tmp_path / "checkpoints" / "40").mkdir()
    assert workdir.has_checkpoint(str(tmp_path))


def test_metrics_merge_across_stages(tmp_path):
    workdir.write_metrics(str(tmp_path), "world", {"num_items": 3}, {"a": 1})
    workdir.write_metrics(str(tmp_path), "sids", {"icr": 0.5, "bad": float("nan")}, {"b": 2})
    with open(tmp_path / "metrics.json") as f:
        m = json.load(f)
    assert m["num_items"] == 3 and m["icr"] == 0.5 and m["bad"] is None
    assert m["stage"] == "sids" and m["config"] == {"world": {"a": 1}, "sids": {"b": 2}}


def test_runtime_keys_may_change_on_resume(tmp_path):
    old = {"train": {"steps": 10}}
    assert workdir.guard_config(str(tmp_path), "train", old) is False
    # recorded before train.prefetch existed, resumed with it (and with another value)
    assert workdir.guard_config(str(tmp_path), "train", {"train": {"steps": 10, "prefetch": 2}})
    assert workdir.guard_config(str(tmp_path), "train", {"train": {"steps": 10, "prefetch": 0}})
    with pytest.raises(ValueError, match=r"mismatched keys: train\.steps\)"):
        workdir.guard_config(str(tmp_path), "train", {"train": {"steps": 11, "prefetch": 2}})
    # logging and saving cadence: what a run computes is the same
    assert workdir.guard_config(str(tmp_path), "train", {"train": {
        "steps": 10, "log_every": 1, "checkpoint_every": 5, "keep": 9}})


def test_keys_added_later_match_a_record_without_them_only_at_their_default(tmp_path):
    assert workdir.guard_config(str(tmp_path), "train", {"distill": {"tau": 1.0}}) is False
    assert workdir.guard_config(str(tmp_path), "train",
                                {"distill": {"tau": 1.0, "kl_levels": 0}})
    with pytest.raises(ValueError, match=r"mismatched keys: distill\.kl_levels"):
        workdir.guard_config(str(tmp_path), "train", {"distill": {"tau": 1.0, "kl_levels": 2}})


def test_a_run_recorded_before_the_gradient_norm_key_resumes_with_its_default(tmp_path):
    from configs.sft import get_config

    config = get_config("tiny")
    old = config.to_dict()
    del old["train"]["grad_norm"]  # what a workdir recorded before the key existed holds
    assert workdir.guard_config(str(tmp_path), "train", old) is False
    assert workdir.guard_config(str(tmp_path), "train", config)
    config.train.grad_norm = "stacked"
    with pytest.raises(ValueError, match=r"mismatched keys: train\.grad_norm"):
        workdir.guard_config(str(tmp_path), "train", config)


def test_a_missing_per_event_file_names_the_command_that_writes_it(tmp_path):
    w = str(tmp_path)
    for tag, command in (("test", f"experiments.evaluate --workdir={w}"),
                         ("free_valid", f"experiments.evaluate --workdir={w} --noconstrained "
                                        "--split=valid"),
                         ("teacher_test", f"experiments.evaluate --workdir={w} --keywords=teacher"),
                         ("ab", f"experiments.online_ab --workdir={w}")):
        with pytest.raises(FileNotFoundError, match=f"{tag}.npz is missing; run {command}$"):
            workdir.load_eval_events(w, tag)


def test_a_run_of_another_stage_is_named_not_listed_key_by_key(tmp_path):
    sft = {"stage": "sft", "train": {"steps": 10}, "data": {"tasks": "q2i"}}
    workdir.guard_config(str(tmp_path), "train", sft)
    with pytest.raises(ValueError, match="holds a 'sft' run and this is a 'grpo' one; use a new"):
        workdir.guard_config(str(tmp_path), "train", {**sft, "stage": "grpo", "rl": {"g": 4}})


def test_an_output_path_that_cannot_take_a_file_is_refused_up_front(tmp_path):
    from onesearch_jax import fileio
    fileio.check_output_file(tmp_path / "new" / "deeper" / "m.json")  # folders are made later
    fileio.check_output_file(tmp_path / "m.json")
    with pytest.raises(ValueError, match="is a folder"):
        fileio.check_output_file(tmp_path)
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="afile is a file, not a folder"):
        fileio.check_output_file(a_file / "sub" / "m.json")
    fileio.check_output_file("gs://bucket/m.json")  # left to the write
