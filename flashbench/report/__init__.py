"""Reports over evaluated runs: leaderboards, per-group tables, plots, gallery, HTML page and ablation compare.

`write_report` is imported lazily so that `flashbench.report.commands` (loaded by the CLI) stays light.
"""

from __future__ import annotations

__all__ = ["write_report"]


def __getattr__(name: str):
    if name == "write_report":
        from flashbench.report.writer import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
