"""The design estimate of experiments.paired_design, by hand."""
import numpy as np
import pytest

from onesearch_jax.eval.paired import design_rows


def test_design_rows_by_hand():
    a = {"rel_hr@10": np.array([0.0, 0.0, 1.0, 1.0]), "click_hr@10": np.array([np.nan] * 4)}
    b = {"rel_hr@10": np.array([1.0, 0.0, 1.0, 1.0]), "click_hr@10": np.array([np.nan] * 4)}
    rows = design_rows(a, b, {"tail": np.array([True, True, False, False])}, seeds=1,
                       effect=0.005, slice_effect=0.015)
    assert [r["metric"] for r in rows] == ["rel_hr@10", "rel_hr@10/tail"]  # no clicks: no row
    whole = rows[0]
    # Differences [1, 0, 0, 0]: mean 0.25, sd 0.5; MDE (1.959964 + 0.841621) * 0.5 / sqrt(4).
    assert whole["events"] == 4 and whole["mean_diff"] == 0.25 and whole["sd_diff"] == 0.5
    assert whole["mde"] == pytest.approx(0.7003963, abs=1e-6) == whole["mde_events_only"]
    assert whole["events_needed"] == 78489  # ceil((2.801585 * 0.5 / 0.005) ** 2)
    assert rows[1]["events"] == 2 and rows[1]["target"] == 0.015
