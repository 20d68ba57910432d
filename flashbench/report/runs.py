"""Reading evaluated run folders (see RUN_SCHEMA: run.json, results.json, samples.jsonl) for reports."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from flashbench.errors import FlashBenchError
from flashbench.results import Metrics, Results, ResultsError
from flashbench.run_files import RunError, read_json, scored_inputs


class ReportError(FlashBenchError):
    """A run folder cannot be reported on (missing/corrupt files, runs on different benchmarks)."""


@dataclass
class RunRecord:
    """One evaluated run as the report sees it."""

    path: Path
    name: str
    run: dict
    results: Results
    samples: list[dict] = field(default_factory=list)

    @property
    def overall(self) -> Metrics:
        return self.results.overall

    @property
    def groups(self) -> dict[str, Metrics]:
        return self.results.groups

    @property
    def provenance(self) -> dict:
        return self.results.provenance

    @property
    def steps(self) -> int | None:
        steps = self.run.get("steps", self.results.run.steps)
        return None if steps is None else int(steps)

    @property
    def bench_hash(self) -> str | None:
        return (self.run.get("bench") or {}).get("content_hash") or self.provenance.get("bench_content_hash")

    @property
    def bench_root(self) -> Path | None:
        root = (self.run.get("bench") or {}).get("root")
        return Path(root) if root else None

    def info(self) -> dict:
        """Identity and provenance of the run for leaderboard.json and the HTML footer."""
        prov = self.provenance
        return {
            "name": self.name,
            "path": str(self.path),
            "generator": self.run.get("generator"),
            "condition": self.run.get("condition"),
            "seed": self.run.get("seed"),
            "steps": self.steps,
            "bench_name": (self.run.get("bench") or {}).get("name"),
            "bench_hash": self.bench_hash,
            "git_commit": prov.get("git_commit") or (self.run.get("provenance") or {}).get("git_commit"),
            "git_dirty": prov.get("git_dirty"),
            "flashbench_version": prov.get("flashbench_version"),
            "created": prov.get("created") or self.run.get("created"),
            "errors": len(self.results.errors),
        }

    def ok_samples(self) -> dict[str, dict]:
        """samples.jsonl records with status ok, by id (a later line for the same id wins)."""
        return {s["id"]: s for s in self.samples if s.get("status") == "ok"}


def _read_json(path: Path, hint: str) -> dict:
    try:
        return read_json(path, hint)
    except RunError as e:
        raise ReportError(str(e)) from None


def load_run(path: Path) -> RunRecord:
    """Read a run folder; raises ReportError when run.json or results.json is missing or unreadable."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path} is not a run folder; pass folders written by `flashbench generate`")
    run = _read_json(path / "run.json", "generate into this folder with `flashbench generate`")
    data = _read_json(path / "results.json", f"evaluate it first: `flashbench evaluate --run {path}`")
    try:
        results = Results.from_json(data, path / "results.json")
    except ResultsError as e:
        raise ReportError(str(e)) from None
    _check_fresh(path, results)
    samples = []
    jsonl = path / "samples.jsonl"
    if jsonl.is_file():
        for i, line in enumerate(jsonl.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                samples.append(json.loads(line))
            except json.JSONDecodeError:
                raise ReportError(
                    f"{jsonl}:{i} is not valid JSON; re-run `flashbench evaluate --run {path}`"
                ) from None
    name = run.get("name") or results.run.name or run.get("generator") or path.name
    return RunRecord(path=path, name=str(name), run=run, results=results, samples=samples)


def _check_fresh(path: Path, results: Results) -> None:
    """Refuse a results.json whose run changed after it was evaluated (its `scored_inputs` stamp; files from
    before the stamp cannot be checked)."""
    stamp = results.provenance.get("scored_inputs")
    if not isinstance(stamp, dict):
        return
    try:
        now = scored_inputs(path)
    except RunError as e:
        raise ReportError(str(e)) from None
    changed = [label for key, label in (("generation", "generation log"), ("videos", "videos"))
               if stamp.get(key) != now[key]]
    if changed:
        what = " and ".join(changed)
        raise ReportError(f"{path / 'results.json'} is stale: the run's {what} changed after it was evaluated "
                          f"(e.g. generate --retry-errors); re-run `flashbench evaluate --run {path}`")


def load_runs(paths: list[Path]) -> list[RunRecord]:
    """Load runs in the given order; duplicate display names get their folder name appended."""
    runs = [load_run(p) for p in paths]
    if not runs:
        raise ReportError("no runs given; pass one or more run folders")
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.name} ({r.path.name})"
    if len({r.name for r in runs}) != len(runs):
        raise ReportError(f"runs have clashing names {names}; give each a distinct `name` in run.json")
    return runs


def load_runs_with_base(paths: list[Path], base: Path | None) -> tuple[list[RunRecord], RunRecord | None]:
    """Load `paths` plus `base` (put first when it is not one of them); returns the runs and the base run."""
    paths = [Path(p) for p in paths]
    if base is None:
        return load_runs(paths), None
    resolved = [p.resolve() for p in paths]
    if Path(base).resolve() not in resolved:
        paths = [Path(base)] + paths
        resolved = [Path(base).resolve()] + resolved
    runs = load_runs(paths)
    return runs, runs[resolved.index(Path(base).resolve())]


def check_same_benchmark(runs: list[RunRecord], allow_mixed: bool = False) -> str | None:
    """Refuse runs evaluated on different benchmark content (or with no recorded hash) unless `allow_mixed`.

    A run without a recorded hash cannot be shown to match the others, so it counts as different.

    Returns a warning line when mixed runs are allowed through, else None.
    """
    hashes = {r.name: r.bench_hash for r in runs}
    if len(runs) == 1 or (len(set(hashes.values())) == 1 and None not in hashes.values()):
        return None
    listing = ", ".join(f"{name}: {(h or 'none')[:12]}" for name, h in hashes.items())
    if not allow_mixed:
        raise ReportError(
            f"runs were evaluated on different benchmark content ({listing}); "
            "re-run them on one benchmark or pass --allow-mixed to compare anyway"
        )
    warning = f"WARNING: runs use different benchmark content hashes ({listing}); numbers are not comparable"
    print(warning, file=sys.stderr)
    return warning
