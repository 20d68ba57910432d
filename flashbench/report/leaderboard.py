"""Leaderboard (the paper's table: Method | Steps | FID | FVD | M-IoU | B-IoU | s, plus NFE: the network
evaluations per video, which tell a 50-step CFG run (100) from a 50-step one without CFG, and ObjMC in pixels)
and per-group tables.

Rows keep the order the runs were given in. Values come from each run's results.json; 95% CIs are shown
where results.json has them, the best value per column is bold, and a missing (null) metric shows as "–"
with its reason (see `metric_reason`). Under the runs, every table with IoU or ObjMC has a tracker-ceiling row
per distinct ceiling in the runs' results (`ceiling_rows`: the ground truth tracked by the same segmenter), never
bold, so a reader sees how much of the scale the tracker allows.

A run that covers fewer samples than the others (scored + failed; e.g. generated with --limit) is partial: its
Method cell says "partial: k of N samples" in every table, a note says its values (FID/FVD and "All" above all)
are not comparable, and it is never bold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flashbench.report.protocol import protocol_lines, rank_deficiency_notes
from flashbench.report.runs import RunRecord
from flashbench.report.tables import (
    MISSING,
    Cell,
    Table,
    best_rows,
    fmt_ci,
    fmt_value,
    is_missing,
    to_markdown,
)
from flashbench.results import Ceiling, Metrics

# (results.json key, column label, which direction is better)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("fid", "FID ↓", "min"),
    ("fvd", "FVD ↓", "min"),
    ("mask_iou", "M-IoU ↑", "max"),
    ("box_iou", "B-IoU ↑", "max"),
    ("objmc", "ObjMC ↓", "min"),
    ("denoise_seconds", "s ↓", "min"),
)
GROUP_METRICS = ("fid", "fvd", "mask_iou", "box_iou", "objmc")
CEILING_METRICS = ("mask_iou", "box_iou", "objmc")  # what the tracker ceiling has
CSV_EXTRA = ("objmc_norm",)  # in leaderboard.csv beside the COLUMNS: ObjMC in percent of the frame diagonal
LABELS = {key: label for key, label, _ in COLUMNS}
BETTER = {key: better for key, _, better in COLUMNS}


@dataclass(frozen=True)
class CeilingRow:
    """One tracker ceiling shown under the runs: its label and the runs whose results.json carry it."""

    label: str
    ceiling: Ceiling
    runs: tuple[str, ...]


def ceiling_rows(runs: list[RunRecord]) -> list[CeilingRow]:
    """The distinct tracker ceilings of the runs (by segmenter settings and samples scored), in run order."""
    found: dict[tuple[str, int], list] = {}
    for run in runs:
        ceiling = run.results.ceiling
        if ceiling is not None:
            found.setdefault((ceiling.segmenter_key, ceiling.overall.n), [ceiling, []])[1].append(run.name)
    rows = []
    for (key, n), (ceiling, names) in found.items():
        label = f"Tracker ceiling (ground truth, {ceiling.segmenter}"
        label += f", settings {key[:8]}, {n} samples)" if len(found) > 1 else ")"
        rows.append(CeilingRow(label, ceiling, tuple(names)))
    return rows


def ceiling_notes(runs: list[RunRecord], rows: list[CeilingRow]) -> list[str]:
    """What the ceiling rows are, which runs they belong to, and which runs have none."""
    notes = []
    if rows:
        notes.append("Tracker ceiling: the benchmark's real videos tracked by the runs' segmenter with the same settings "
                     "and scored like the runs (IoU and ObjMC only): how much of each scale this tracker allows. A "
                     "run above it is easier to track than the real video, not closer to it.")
    if len(rows) > 1:
        notes += [f"{row.label}: the ceiling of {', '.join(row.runs)}." for row in rows]
    notes += [f"{run.name}: its results.json has no tracker ceiling (evaluated before FlashBench computed one); "
              "re-run `flashbench evaluate` for it." for run in runs if run.results.ceiling is None]
    return notes


def _ceiling_cells(metrics: Metrics, keys) -> list[Cell]:
    """Cells of a ceiling row: its IoU / ObjMC values with their CIs, "–" elsewhere (never bold, no footnote)."""
    return [Cell(fmt_value(metrics.value(key)), ci=fmt_ci(metrics.interval(key))) if key in CEILING_METRICS
            else Cell(MISSING) for key in keys]


def ceiling_scopes(row: CeilingRow, groups: list[str]) -> list[Metrics]:
    """The ceiling's block of each group (an empty one where it has none), then its overall block."""
    return [row.ceiling.groups.get(g) or Metrics.absent("no such group") for g in groups] + [row.ceiling.overall]


def metric_reason(run: RunRecord, metrics: Metrics, key: str) -> str | None:
    """The footnote for a null `key` in `metrics` (a METRICS block of `run`): its typed reason."""
    reason = metrics.reason(key)
    return f"{LABELS.get(key, key)} of {run.name}: {reason}" if reason else None


def coverage(run: RunRecord) -> int:
    """Samples the run's results cover: scored ones plus failed ones."""
    return run.overall.n + len(run.results.errors)


def partial_runs(runs: list[RunRecord]) -> dict[str, str]:
    """{run name: "k of N samples"} for runs that cover fewer samples than the widest run."""
    full = max(coverage(r) for r in runs)
    return {r.name: f"{coverage(r)} of {full} samples" for r in runs if coverage(r) < full}


def _method_cell(run: RunRecord, partial: dict[str, str]) -> Cell:
    return Cell(f"{run.name} (partial: {partial[run.name]})" if run.name in partial else run.name)


def coverage_notes(runs: list[RunRecord]) -> list[str]:
    return [f"{name} is partial ({what}): its values, FID/FVD and \"All\" above all, are over fewer samples "
            "and not comparable with the other rows." for name, what in partial_runs(runs).items()]


def _metric_cells(runs: list[RunRecord], scopes: list[Metrics], key: str) -> list[Cell]:
    partial = partial_runs(runs)
    values = [m.value(key) for m in scopes]
    best = best_rows([None if r.name in partial else v for r, v in zip(runs, values, strict=True)], BETTER[key])
    cells = []
    for i, (run, metrics, value) in enumerate(zip(runs, scopes, values, strict=True)):
        note = metric_reason(run, metrics, key) if is_missing(value) else None
        cells.append(
            Cell(fmt_value(value), bold=i in best, note=note, ci=None if note else fmt_ci(metrics.interval(key)))
        )
    return cells


def leaderboard_table(runs: list[RunRecord]) -> Table:
    """The overall table; notes list runs with failed samples (they are excluded, never averaged in) and
    FID/FVDs computed from fewer feature rows than dimensions."""
    scopes = [r.overall for r in runs]
    columns = [_metric_cells(runs, scopes, key) for key, _, _ in COLUMNS]
    partial = partial_runs(runs)
    rows = []
    for i, run in enumerate(runs):
        steps = Cell(MISSING if run.steps is None else str(run.steps))
        nfe = run.overall.nfe
        rows.append([_method_cell(run, partial), steps, Cell(MISSING if nfe is None else f"{nfe:g}")]
                    + [col[i] for col in columns])
    ceilings = ceiling_rows(runs)
    for row in ceilings:
        rows.append([Cell(row.label), Cell(MISSING), Cell(MISSING)]
                    + _ceiling_cells(row.ceiling.overall, [key for key, _, _ in COLUMNS]))
    notes = coverage_notes(runs) + [
        f"{run.name}: {n} sample(s) failed and are excluded (see {run.path / 'results.json'} `errors`)."
        for run in runs
        if (n := len(run.results.errors))
    ] + rank_deficiency_notes(runs) + ceiling_notes(runs, ceilings)
    headers = ["Method", "Steps", "NFE"] + [label for _, label, _ in COLUMNS]
    return Table(headers, rows, ["l", "r", "r"] + ["r"] * len(COLUMNS), notes)


def leaderboard_frame(runs: list[RunRecord]) -> pd.DataFrame:
    """Numeric leaderboard: one row per run (`row` "run"), value / CI bounds / missing reason per metric, and
    provenance; then one row per tracker ceiling (`row` "tracker ceiling", IoU and ObjMC only)."""
    keys = [key for key, _, _ in COLUMNS] + list(CSV_EXTRA)
    records = []
    for run in runs:
        info = run.info()
        metrics = run.overall
        record = {"method": run.name, "row": "run", "steps": run.steps, "nfe": metrics.nfe, "n": metrics.n,
                  "samples": coverage(run), "partial": run.name in partial_runs(runs)}
        for key in keys:
            ci = metrics.interval(key) or [None, None]
            record[key] = metrics.value(key)
            record[f"{key}_ci_lo"], record[f"{key}_ci_hi"] = ci
            record[f"{key}_note"] = metric_reason(run, metrics, key) if is_missing(metrics.value(key)) else None
        for k in ("errors", "generator", "condition", "bench_hash", "git_commit", "created"):
            record[k] = info[k]
        records.append(record)
    for row in ceiling_rows(runs):
        metrics = row.ceiling.overall
        record = {"method": row.label, "row": "tracker ceiling", "steps": None, "nfe": None, "n": metrics.n}
        for key in keys:
            value = metrics.value(key) if key in CEILING_METRICS + CSV_EXTRA else None
            record[key] = value
            ci = (metrics.interval(key) if value is not None else None) or [None, None]
            record[f"{key}_ci_lo"], record[f"{key}_ci_hi"] = ci
            record[f"{key}_note"] = None
        record["generator"] = "ground-truth"
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    numeric = [c for c in frame.columns if c in keys or c.endswith(("_ci_lo", "_ci_hi"))]
    frame[numeric] = frame[numeric].astype("float64")
    frame["steps"] = frame["steps"].astype("Int64")
    return frame


def group_labels(runs: list[RunRecord]) -> list[str]:
    """Union of the runs' group labels, ordered by object count ("6+" after "5")."""
    labels = {g for r in runs for g in r.groups}

    def order(label: str) -> tuple[int, int]:
        try:
            return int(label.rstrip("+")), label.endswith("+")
        except ValueError:
            return 10**9, 0

    return sorted(labels, key=order)


def group_table(runs: list[RunRecord], key: str) -> Table:
    """Methods as rows, object-count groups (then "All") as columns, for one metric; best per column bold; the
    tracker ceilings under them for IoU and ObjMC."""
    groups = group_labels(runs)
    columns = [_metric_cells(runs, [r.results.group(g) for r in runs], key) for g in groups]
    columns.append(_metric_cells(runs, [r.overall for r in runs], key))
    partial = partial_runs(runs)
    rows = [[_method_cell(run, partial)] + [col[i] for col in columns] for i, run in enumerate(runs)]
    if key in CEILING_METRICS:
        for row in ceiling_rows(runs):
            rows.append([Cell(row.label)] + [_ceiling_cells(m, [key])[0] for m in ceiling_scopes(row, groups)])
    headers = ["Method"] + [f"{g} obj" for g in groups] + ["All"]
    return Table(headers, rows, ["l"] + ["r"] * (len(groups) + 1), coverage_notes(runs))


def group_frame(runs: list[RunRecord], key: str) -> pd.DataFrame:
    """Wide numeric per-group table for one metric: index = method (then the tracker ceilings, for IoU and ObjMC),
    columns = groups then "All"."""
    groups = group_labels(runs)
    data = {
        run.name: [run.results.group(g).value(key) for g in groups] + [run.overall.value(key)]
        for run in runs
    }
    if key in CEILING_METRICS:
        for row in ceiling_rows(runs):
            data[row.label] = [m.value(key) for m in ceiling_scopes(row, groups)]
    frame = pd.DataFrame.from_dict(data, orient="index", columns=groups + ["All"], dtype="float64")
    frame.index.name = "method"
    return frame


def write_leaderboard(
    runs: list[RunRecord], out: Path, warning: str | None = None, provenance: dict | None = None
) -> dict:
    """Write leaderboard.{md,csv,json}, groups.md and groups_<metric>.csv under `out`; returns the tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = leaderboard_table(runs)
    banner = f"> **{warning}**\n\n" if warning else ""
    banner += "".join(f"{line}  \n" for line in protocol_lines(runs)) + "\n"
    (out / "leaderboard.md").write_text(banner + to_markdown(table))
    leaderboard_frame(runs).to_csv(out / "leaderboard.csv", index=False)

    group_tables = {key: group_table(runs, key) for key in GROUP_METRICS}
    sections = [f"## {LABELS[key]} by object count\n\n{to_markdown(t)}" for key, t in group_tables.items()]
    (out / "groups.md").write_text(banner + "\n".join(sections))
    for key in GROUP_METRICS:
        group_frame(runs, key).to_csv(out / f"groups_{key}.csv")

    record = {
        "schema_version": 1,
        "columns": [{"key": k, "label": label, "better": b} for k, label, b in COLUMNS],
        "warning": warning,
        "protocol": protocol_lines(runs),
        "runs": [
            {
                **run.info(),
                "overall": run.overall.to_json(),
                "groups": {label: block.to_json() for label, block in run.groups.items()},
                "settings": run.results.settings,
            }
            for run in runs
        ],
        "ceiling": [
            {"label": row.label, "runs": list(row.runs), **row.ceiling.to_json()} for row in ceiling_rows(runs)
        ],
        "report": provenance or {},
    }
    (out / "leaderboard.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return {"leaderboard": table, "groups": group_tables}
