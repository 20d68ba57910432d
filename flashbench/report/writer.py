"""`write_report`: every report artefact for a set of runs, in one folder."""

from __future__ import annotations

from pathlib import Path

from flashbench.provenance import collect, package_versions
from flashbench.report.compare import write_compare
from flashbench.report.gallery import Gallery, write_gallery
from flashbench.report.html import render_index
from flashbench.report.leaderboard import write_leaderboard
from flashbench.report.plots import write_plots
from flashbench.report.runs import check_same_benchmark, load_runs_with_base

REPORT_PACKAGES = ("numpy", "pandas", "matplotlib", "pillow", "scipy")


def report_provenance() -> dict:
    """Who made the report: git commit/dirty, flashbench version, Python, platform, command, time, and the
    versions of the table/plot packages."""
    record = collect(packages=package_versions(REPORT_PACKAGES))
    record.pop("device", None)
    return record


def write_report(
    runs: list[Path | str],
    out: Path | str,
    base: Path | str | None = None,
    allow_mixed: bool = False,
    gallery_per_group: int = 2,
    n_boot: int = 10000,
) -> Path:
    """Write leaderboard.{md,csv,json}, groups.md + groups_<metric>.csv, plots/, gallery/, (compare.* when
    `base` is given) and index.html under `out`; returns the path of index.html.

    Runs evaluated on different benchmark content raise ReportError unless `allow_mixed` (then a loud warning
    heads every table).
    """
    out = Path(out)
    records, base_run = load_runs_with_base([Path(r) for r in runs], base)
    warning = check_same_benchmark(records, allow_mixed)
    provenance = report_provenance()
    tables = write_leaderboard(records, out, warning=warning, provenance=provenance)
    compare_table = None
    if base_run is not None:
        _, compare_table = write_compare(records, base_run, out, n_boot=n_boot, warning=warning)
    plots = write_plots(records, out)
    gallery = write_gallery(records, out, per_group=gallery_per_group) if gallery_per_group > 0 else Gallery()
    return render_index(
        out,
        records,
        tables["leaderboard"],
        tables["groups"],
        plots,
        gallery,
        provenance,
        compare=compare_table,
        warning=warning,
    )
