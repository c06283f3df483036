"""pipeline/teacher_kl: the per-row KL and CE terms by hand; experiments.teacher_student's
pooling of them over seeds."""
import numpy as np
import pytest

from experiments import teacher_student as ts
from onesearch_jax.pipeline.teacher_kl import position_terms


def test_position_terms_by_hand():
    # One row, two SID levels of 2 and 3 codes (level 0 padded with -1e9 past its size).
    t = np.log(np.array([[[0.5, 0.5, 1.0], [0.2, 0.3, 0.5]]]))
    s = np.log(np.array([[[0.25, 0.75, 1.0], [0.2, 0.3, 0.5]]]))
    t[0, 0, 2] = s[0, 0, 2] = -1e9
    codes = np.array([[1, 2]])
    got = position_terms(t, s, codes, np.array([[1.0, 1.0]]))
    kl = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)  # level 1 agrees: 0
    assert float(got["kl"][0]) == pytest.approx(kl, rel=1e-5)
    assert float(got["student_ce"][0]) == pytest.approx(-np.log(0.75) - np.log(0.5), rel=1e-5)
    assert float(got["teacher_ce"][0]) == pytest.approx(-np.log(0.5) - np.log(0.5), rel=1e-5)
    assert float(got["positions"][0]) == 2
    masked = position_terms(t, s, codes, np.array([[0.0, 1.0]]))
    assert float(masked["kl"][0]) == pytest.approx(0.0, abs=1e-7)
    assert float(masked["positions"][0]) == 1


def test_kl_pooled_over_seeds_by_positions():
    cell = lambda kl, n: {"kl": kl, "student_ce": 1.0, "teacher_ce": 0.9,  # noqa: E731
                          "teacher_gain": 0.1, "kl_dropout": 0.2, "kl_student_dropout": 0.2,
                          "rows": n, "positions": 5 * n}
    pooled = ts.pool_kl([{"all": cell(0.01, 10)}, {"all": cell(0.04, 30)}])
    assert pooled["all"]["kl"] == pytest.approx((0.01 * 50 + 0.04 * 150) / 200)
    assert pooled["all"]["rows"] == 40 and "need" not in pooled
    table = ts.format_kl({"base (test)": pooled})
    assert "| base (test) | 0.0325 (40) |" in table and "+0.1000 |  | 0.2000 | 0.2000 |" in table
