import matplotlib.pyplot as plt

from onesearch_jax.eval import delta_plot


def _height(path):
    return plt.imread(str(path)).shape[0]


def test_rows_without_deltas_are_left_out(tmp_path):
    cells = {"rel_hr@10": [0.01, 0.005, 0.015], "need": [-0.02, -0.05, 0.01]}
    both, one = tmp_path / "both.png", tmp_path / "one.png"
    delta_plot.plot_delta_grid([("minus parent", {"a": cells, "b": cells}),
                                ("minus V1", {"a": cells, "b": None})],
                               ["rel_hr@10", "need"], str(both), "t")
    delta_plot.plot_delta_grid([("minus parent", {"a": cells}), ("minus V1", {"a": None})],
                               ["rel_hr@10", "need"], str(one), "t")
    assert _height(both) == 2 * _height(one)
    empty = tmp_path / "empty.png"  # nothing to show: one empty row, still a figure
    delta_plot.plot_delta_grid([("minus parent", {"a": None}), ("minus V1", {"a": None})],
                               ["rel_hr@10"], str(empty), "t")
    assert _height(empty) == _height(one)
