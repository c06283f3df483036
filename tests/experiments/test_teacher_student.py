"""experiments.teacher_student: T - S per event and slice, from saved evaluations."""
import numpy as np
import pytest

from experiments import teacher_student as ts
from onesearch_jax import workdir as wd


def test_teacher_minus_student_per_slice_from_saved_evaluations(tmp_path):
    run = str(tmp_path / "run")
    ids, tail = np.arange(4), np.array([True, True, False, False])
    wd.save_eval_events(run, "train", ids, {"rel_hr@10": np.array([0.0, 0.0, 1.0, 1.0])},
                        {"tail": tail})
    wd.save_eval_events(run, "teacher_train", ids, {"rel_hr@10": np.array([1.0, 1.0, 1.0, 0.0])},
                        {"tail": tail})
    s = ts.outcomes(run, "train", False, max_events=4)  # found: nothing is evaluated
    t = ts.outcomes(run, "train", True, max_events=4)
    d = ts.differences(s, t)
    assert d["rel_hr@10"][0] == pytest.approx(0.25)  # (1 + 1 + 0 - 1) / 4
    assert d["rel_hr@10/tail"] == [1.0, 1.0, 1.0]
    # Two seeds pooled: the second seed's T - S is 0 on every event -> half the first's.
    pooled = ts.differences({0: s, 1: s}, {0: t, 1: s})
    assert pooled["rel_hr@10"][0] == pytest.approx(0.125)
    other = (np.arange(1, 5), *t[1:])
    with pytest.raises(ValueError, match=r"sd T - S \(test\): .*different events \(4 vs 4"):
        ts.differences(s, other, "sd T - S (test)")


def test_need_queries_split_by_traffic_by_hand():
    ids = np.arange(6)
    need = np.array([1, 1, 1, 0, 1, 0], bool)
    torso = np.array([1, 1, 0, 0, 0, 1], bool)
    tail = ~torso
    masks = {"need": need, "torso": torso, "tail": tail}
    s = (ids, {"rel_hr@10": np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0])}, masks)
    t = (ids, {"rel_hr@10": np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])}, masks)
    d = ts.differences(s, t)
    assert d["rel_hr@10/need/torso"] == [0.5, 0.0, 1.0]  # events 0, 1: +1, 0
    assert d["rel_hr@10/need/tail"][0] == pytest.approx(0.0)  # events 2, 4: -1, +1
    assert "rel_hr@10/need/head" not in d  # no head mask saved
    counts = {"train": {k: int(v.sum()) for k, v in ts.slice_masks(masks).items()}}
    assert counts["train"]["need/torso"] == 2 and counts["train"]["need/tail"] == 2
    table = ts.format_need_by_traffic({"base T - S (train)": d, "SD (S) - Base (T) (test)": d},
                                      ["base T - S (train)", "SD (S) - Base (T) (test)"], counts)
    assert ("| base T - S (train) | (none) | +0.5000 [+0.0000, +1.0000] (2) | +0.0000 [-1.0000, "
            "+1.0000] (2) | (none) |") in table
    assert "SD (S) - Base (T)" not in table


def test_every_student_is_compared_with_base_with_keywords():
    assert ts.student_rows(["base", "sd", "sd_akl1"]) == {
        "SD (S) - Base (T) (test)": "sd", "sd_akl1 (S) - Base (T) (test)": "sd_akl1"}
    assert ts.student_rows(["base"]) == {}


def test_runs_flag_is_name_equals_workdir():
    assert ts.parse_runs(["base=/a", "sd=/b+/c"]) == {"base": ["/a"], "sd": ["/b", "/c"]}
    with pytest.raises(ValueError, match="name=workdir"):
        ts.parse_runs(["/a"])


def test_distill_signal_by_hand(tmp_path):
    import json

    history = [  # the first row has no KL positions (an item task stage): left out
        {"step": 50, "train/kl_positions": 0.0, "train/ce": 7.0, "train/teacher_ce": 5.0,
         "train/kl": 0.0, "train/loss": 7.0},
        {"step": 100, "train/kl_positions": 30.0, "train/ce": 1.0, "train/teacher_ce": 0.9,
         "train/kl": 0.2, "train/loss": 1.02},
        {"step": 150, "train/kl_positions": 20.0, "train/ce": 0.8, "train/teacher_ce": 0.8,
         "train/kl": 0.1, "train/loss": 0.81},
    ]
    g = ts.distill_signal(history, alpha_kl=0.1)
    assert g["logged_steps"] == 2 and g["first_step"] == 100
    assert g["student_ce"] == pytest.approx(0.9) and g["teacher_ce"] == pytest.approx(0.85)
    assert g["teacher_gain_nats"] == pytest.approx(0.05) and g["kl"] == pytest.approx(0.15)
    assert g["kl_share_of_loss"] == pytest.approx(0.1 * 0.15 / 0.915)
    assert ts.distill_signal(history[:1], 0.1) is None
    # A resumed run logs again the steps after its checkpoint (the lost row first, then the
    # replayed one): each step counts once, as last logged.
    lost = dict(history[1], **{"train/ce": 5.0, "train/loss": 5.02})
    assert ts.distill_signal([history[0], lost, history[1], history[2]], 0.1) == g
    assert "| sd | 100 | 0.9000 | 0.8500 | +0.0500 | 0.1500 | 0.1 | 1.64% |" in ts.format_signal(
        {"sd": g})
    run = tmp_path / "sd"
    run.mkdir()
    assert ts.run_signal(str(run)) is None  # an archived run keeps no training log
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (run / "train_config.json").write_text(json.dumps({"distill": {"alpha_kl": 0.1}}))
    assert ts.run_signal(str(run)) == g


def test_plot_rows_and_png(tmp_path):
    from onesearch_jax.eval import delta_plot

    cell = {"rel_hr@10": [0.01, 0.002, 0.02], "rel_hr@10/need": [-0.01, -0.03, 0.01]}
    rows = ["base T - S (train)", "base T - S (test)", "SD (S) - Base (T) (test)",
            "sd_akl1 (S) - Base (T) (test)"]
    got = ts.plot_rows({k: cell for k in rows}, rows)
    assert [label for label, _ in got] == ["teacher minus student", "student minus Base (T), test"]
    assert list(got[0][1]) == rows[:2] and list(got[1][1]) == ["SD", "sd_akl1"]
    assert [label for label, _ in ts.plot_rows({k: cell for k in rows[:2]}, rows[:2])] == [
        "teacher minus student"]
    png = tmp_path / "ts.png"
    delta_plot.plot_delta_grid(got, ts.PLOT_COLUMNS, str(png), "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
