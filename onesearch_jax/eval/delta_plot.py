"""Paired deltas with their 95% intervals as a grid of panels (matplotlib PNG): one row of panels
per comparison family, one panel per metric, one point per compared system; a filled marker
where the interval excludes 0. Shared by the ladder (ladder.png) and the teacher-vs-student
table (OUT.png)."""
from __future__ import annotations

from typing import Mapping, Sequence

from onesearch_jax.eval import ladder_table as lt


def plot_delta_grid(rows: Sequence[tuple[str, Mapping[str, Mapping]]], metrics: Sequence[str],
                    path: str, title: str) -> None:
    """rows: (row label, {system: {metric: [mean, lo, hi]}}), systems in plotting order. A row
    with no deltas (e.g. "minus V1" in a table without V1) is left out, not drawn empty."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if any(row[1].values())] or list(rows[:1])
    fig, axes = plt.subplots(len(rows), len(metrics),
                             figsize=(3.2 * len(metrics), 3.9 * len(rows)), squeeze=False)
    for row, (label, systems) in enumerate(rows):
        shown = [name for name, cells in systems.items() if cells]
        for col, m in enumerate(metrics):
            ax = axes[row][col]
            ax.axhline(0.0, color="0.5", lw=0.8)
            for i, name in enumerate(shown):
                cell = systems[name].get(m)
                if not lt.has_delta(cell):
                    continue
                mean, lo, hi = cell
                ax.errorbar([i], [mean], yerr=[[mean - lo], [hi - mean]], fmt="o", color="C0",
                            capsize=4, markersize=6,
                            markerfacecolor="C0" if lt.resolved(cell) else "white")
            ax.set_title(f"{m}\n{label}" if label else m, fontsize=9)
            ax.set_xticks(range(len(shown)))
            ax.set_xticklabels(shown, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
            ax.set_xlim(-0.5, max(len(shown) - 0.5, 0.5))
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
