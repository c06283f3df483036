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
    other = (np.arange(1, 5), *t[1:])
    with pytest.raises(ValueError, match="different events"):
        ts.differences(s, other)


def test_runs_flag_is_name_equals_workdir():
    assert ts.parse_runs(["base=/a", "sd=/b"]) == {"base": "/a", "sd": "/b"}
    with pytest.raises(ValueError, match="name=workdir"):
        ts.parse_runs(["/a"])
