"""Report plots (matplotlib, Agg backend): metrics by object count, and quality vs denoising time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from flashbench.report.leaderboard import (  # noqa: E402
    CEILING_METRICS,
    GROUP_METRICS,
    LABELS,
    ceiling_rows,
    ceiling_scopes,
    group_labels,
)
from flashbench.report.runs import RunRecord  # noqa: E402
from flashbench.report.tables import is_missing  # noqa: E402
from flashbench.results import Metrics  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titleweight": "bold",
}


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _value(metrics: Metrics, key: str) -> float:
    value = metrics.value(key)
    return np.nan if is_missing(value) else float(value)


def _err(metrics: Metrics, key: str, value: float) -> tuple[float, float]:
    ci = metrics.interval(key)
    if ci is None or np.isnan(value) or any(is_missing(c) for c in ci):
        return 0.0, 0.0
    return max(0.0, value - float(ci[0])), max(0.0, float(ci[1]) - value)


def plot_by_group(runs: list[RunRecord], path: Path) -> Path:
    """One panel per GROUP_METRICS (FID, FVD, M-IoU, B-IoU, ObjMC) of metric vs object-count group, one line per
    method, 95% CI bars; the first tracker ceiling as a dashed grey line on the IoU and ObjMC panels."""
    groups = group_labels(runs)
    x = np.arange(len(groups))
    ceilings = ceiling_rows(runs)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 3, figsize=(14, 6.5), constrained_layout=True)
        for ax in axes.flat[len(GROUP_METRICS):]:
            ax.axis("off")
        for ax, key in zip(axes.flat, GROUP_METRICS, strict=False):
            if ceilings and key in CEILING_METRICS:
                y = [_value(m, key) for m in ceiling_scopes(ceilings[0], groups)[:-1]]
                ax.plot(x, y, ls="--", lw=1.2, color="0.45", label="tracker ceiling (ground truth)")
            for i, (run, color) in enumerate(zip(runs, _colors(len(runs)), strict=True)):
                scopes = [run.results.group(g) for g in groups]
                y = np.array([_value(m, key) for m in scopes])
                err = np.array([_err(m, key, v) for m, v in zip(scopes, y, strict=True)]).T.reshape(2, -1)
                offset = (i - (len(runs) - 1) / 2) * 0.06  # keep error bars of close methods apart
                ax.errorbar(
                    x + offset,
                    y,
                    yerr=err,
                    marker="o",
                    ms=4,
                    lw=1.6,
                    capsize=2.5,
                    color=color,
                    label=run.name,
                )
            if all(np.isnan(_value(run.results.group(g), key)) for run in runs for g in groups):
                ax.text(0.5, 0.5, "not computed per group\n(too few videos per group)", ha="center",
                        va="center", transform=ax.transAxes, color="0.4")
                ax.set_yticks([])
            ax.set_title(LABELS[key])
            ax.set_xticks(x, groups)
            ax.set_xlabel("objects per video")
        handles, labels = axes.flat[GROUP_METRICS.index("mask_iou")].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 5), frameon=False)
        fig.savefig(path)
        plt.close(fig)
    return Path(path)


def plot_speed_quality(runs: list[RunRecord], path: Path) -> Path:
    """FVD and M-IoU against mean denoising seconds per video (log x), one labelled point per method."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for ax, key in zip(axes, ("fvd", "mask_iou"), strict=True):
            plotted = 0
            for run, color in zip(runs, _colors(len(runs)), strict=True):
                s, q = _value(run.overall, "denoise_seconds"), _value(run.overall, key)
                if np.isnan(s) or np.isnan(q) or s <= 0:
                    continue
                lo, hi = _err(run.overall, key, q)
                ax.errorbar([s], [q], yerr=[[lo], [hi]], fmt="o", ms=7, capsize=3, color=color)
                ax.annotate(run.name, (s, q), textcoords="offset points", xytext=(6, 5), fontsize=8)
                plotted += 1
            ax.set_xscale("log")
            ax.margins(x=0.3, y=0.15)
            plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.2, 3, 50 rather than 2x10^-1
            lo, hi = ax.get_xlim()
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(plain if hi / lo < 10 else NullFormatter())
            ax.set_xlabel("denoising seconds per video (log)")
            ax.set_title(f"{LABELS[key]} vs time")
            if not plotted:
                ax.text(
                    0.5, 0.5, "no runs with both values", ha="center", va="center", transform=ax.transAxes
                )
        fig.savefig(path)
        plt.close(fig)
    return Path(path)


def write_plots(runs: list[RunRecord], out: Path) -> dict[str, Path]:
    """Write DIR/plots/{by_group,speed_quality}.png (by_group only when results have groups); {name: path}."""
    folder = Path(out) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    plots = {}
    if group_labels(runs):
        plots["by_group"] = plot_by_group(runs, folder / "by_group.png")
    plots["speed_quality"] = plot_speed_quality(runs, folder / "speed_quality.png")
    return plots
