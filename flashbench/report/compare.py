"""Ablation comparison: each run against a base run, metric by metric.

Deltas are run − base. Per-sample metrics (mask_iou, box_iou from samples.jsonl, in percentage points; objmc in
pixels) get a paired bootstrap (flashbench.report.stats.paired_bootstrap) over the sample ids scored ok in both runs; the
number of pairs is reported. FID/FVD are set-level metrics: their deltas carry no paired test (the runs'
own 95% CIs from results.json are kept in compare.json).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from flashbench.report.leaderboard import COLUMNS
from flashbench.report.runs import ReportError, RunRecord
from flashbench.report.stats import paired_bootstrap
from flashbench.report.tables import Cell, Table, fmt_delta, fmt_value, is_missing, to_markdown

PAIRED = {"mask_iou": 100.0, "box_iou": 100.0, "objmc": 1.0}  # per-sample field -> scale of its METRICS value
PAIRS_FROM = ("mask_iou", "box_iou")  # the paired-sample count shown
SIGNIFICANCE = 0.05


def paired_values(run: RunRecord, base: RunRecord, key: str) -> tuple[list[str], list[float], list[float]]:
    """Sample ids ok in both runs with a finite `key`, and the two runs' values on them (scaled as in METRICS)."""
    a, b = run.ok_samples(), base.ok_samples()
    ids, xs, ys = [], [], []
    for sid in sorted(set(a) & set(b)):
        x, y = a[sid].get(key), b[sid].get(key)
        if is_missing(x) or is_missing(y) or not (math.isfinite(x) and math.isfinite(y)):
            continue
        ids.append(sid)
        xs.append(PAIRED[key] * float(x))
        ys.append(PAIRED[key] * float(y))
    return ids, xs, ys


def compare_runs(runs: list[RunRecord], base: RunRecord, n_boot: int = 10000, seed: int = 0) -> dict:
    """Comparison record: per run and metric the value, base value, delta, and the paired test where defined.
    Runs scored on different benchmark content cannot be compared: ReportError."""
    for run in runs:
        if run.bench_hash != base.bench_hash:
            raise ReportError(
                f"{run.path} was made on benchmark content {str(run.bench_hash)[:12]}, {base.path} on "
                f"{str(base.bench_hash)[:12]}: compare only runs of the same benchmark"
            )
    rows = []
    for run in runs:
        is_base = run is base
        record = {"method": run.name, "path": str(run.path), "is_base": is_base, "metrics": {}}
        base_ok, run_ok = set(base.ok_samples()), set(run.ok_samples())
        record["samples"] = {
            "ok_both": len(base_ok & run_ok),
            "ok_only_run": len(run_ok - base_ok),
            "ok_only_base": len(base_ok - run_ok),
        }
        for key, _, _ in COLUMNS:
            value, ref = run.overall.value(key), base.overall.value(key)
            delta = None if is_base or is_missing(value) or is_missing(ref) else float(value) - float(ref)
            entry = {
                "value": value,
                "base": ref,
                "delta": delta,
                "ci95": run.overall.interval(key),
                "test": None,
            }
            if key in PAIRED and not is_base:
                ids, xs, ys = paired_values(run, base, key)
                if len(ids) >= 2:
                    entry["test"] = {
                        "kind": "paired_bootstrap",
                        "n_boot": n_boot,
                        "seed": seed,
                        **paired_bootstrap(xs, ys, n=n_boot, seed=seed),
                    }
                else:
                    entry["test"] = {
                        "kind": "paired_bootstrap",
                        "n": len(ids),
                        "skipped": "fewer than 2 paired samples",
                    }
            record["metrics"][key] = entry
        rows.append(record)
    return {"schema_version": 1, "base": base.name, "n_boot": n_boot, "seed": seed, "runs": rows}


def _delta_cell(entry: dict) -> Cell:
    test = entry.get("test") or {}
    if "p_value" not in test:
        return Cell(fmt_delta(entry["delta"]))
    star = "*" if test["p_value"] < SIGNIFICANCE else ""
    return Cell(f"{fmt_delta(test['delta'])}{star} (p={test['p_value']:.3g})", bold=bool(star))


def compare_table(record: dict) -> Table:
    """Wide table: value and Δ vs base per metric, paired-sample count last."""
    headers, align = ["Method"], ["l"]
    for _, label, _ in COLUMNS:
        headers += [label, "Δ"]
        align += ["r", "r"]
    headers.append("pairs")
    align.append("r")
    rows = []
    for run in record["runs"]:
        row = [Cell(run["method"] + (" (base)" if run["is_base"] else ""))]
        for key, _, _ in COLUMNS:
            entry = run["metrics"][key]
            row.append(Cell(fmt_value(entry["value"])))
            row.append(Cell("base") if run["is_base"] else _delta_cell(entry))
        pairs = [run["metrics"][k]["test"]["n"] for k in PAIRS_FROM if run["metrics"][k]["test"]]
        row.append(Cell("–" if run["is_base"] else f"{min(pairs) if pairs else 0}"))
        rows.append(row)
    notes = [
        f"Δ = run − base ({record['base']}). M-IoU/B-IoU Δ are in percentage points, ObjMC Δ in pixels, over samples "
        f"scored ok in both runs (paired bootstrap, {record['n_boot']} resamples, two-sided; * and bold: p < {SIGNIFICANCE}). "
        "FID/FVD/s deltas have no paired test."
    ]
    for run in record["runs"]:
        s = run["samples"]
        if not run["is_base"] and (s["ok_only_run"] or s["ok_only_base"]):
            notes.append(
                f"{run['method']}: {s['ok_both']} samples paired; left out {s['ok_only_run']} ok only in "
                f"this run and {s['ok_only_base']} ok only in the base."
            )
    return Table(headers, rows, align, notes)


def compare_frame(record: dict) -> pd.DataFrame:
    """Tidy rows: method, metric, value, base, delta, paired-test fields (empty where no test)."""
    rows = []
    for run in record["runs"]:
        for key, entry in run["metrics"].items():
            test = entry.get("test") or {}
            ci = test.get("ci95") or [None, None]
            rows.append(
                {
                    "method": run["method"],
                    "is_base": run["is_base"],
                    "metric": key,
                    "value": entry["value"],
                    "base": entry["base"],
                    "delta": entry["delta"],
                    "paired_n": test.get("n"),
                    "paired_delta": test.get("delta"),
                    "paired_ci_lo": ci[0],
                    "paired_ci_hi": ci[1],
                    "p_value": test.get("p_value"),
                }
            )
    return pd.DataFrame.from_records(rows)


def write_compare(
    runs: list[RunRecord],
    base: RunRecord,
    out: Path,
    n_boot: int = 10000,
    seed: int = 0,
    warning: str | None = None,
) -> tuple[dict, Table]:
    """Write compare.{md,csv,json} under `out`; returns the record and the display table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = compare_runs(runs, base, n_boot=n_boot, seed=seed)
    record["warning"] = warning
    table = compare_table(record)
    banner = f"> **{warning}**\n\n" if warning else ""
    (out / "compare.md").write_text(banner + to_markdown(table))
    compare_frame(record).to_csv(out / "compare.csv", index=False)
    (out / "compare.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record, table
