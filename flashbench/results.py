"""results.json as types: `Metrics` (one METRICS block: a group, or overall) and `Results` (the whole file).

flashbench.aggregate builds the Metrics and flashbench.evaluation the Results, which it writes with `to_json`;
the reports read `Results.from_json`, so every field is an attribute and a malformed file fails when it is
loaded, with its path and what to do, not as a KeyError deep in a table.

Invariants of a Metrics block:
- each metric that is None has its one-line cause in `reasons` (what reports print beside the empty cell);
- `rank_deficient[kind] = [rows, dims]` when the distance `kind` ("fid", "fvd") came from fewer feature rows
  than its feature dimensions (rows: the smaller of the generated and real sets): such a covariance is
  rank-deficient and the distance biased upwards.
- every number is finite and in its range (`RANGES`: IoUs and ObjMC in % of the diagonal in [0, 100], distances, seconds and NFE >= 0, n >= 0),
  and an interval is [low, high] with low <= high inside the same range; `from_json` refuses anything else.
Files from before these fields existed load too: without `reasons`, all the notes stand in for every reason;
without `rank_deficient`, it is read from the warning frechet.py wrote into the notes (the only place a note
is parsed); without ObjMC (LATER_KEYS), its reason says the file predates it. `Results.ceiling` (the tracker
ceiling: the ground truth tracked by the same segmenter, IoU and ObjMC only) is None in files from before it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from flashbench.errors import FlashBenchError

METRIC_KEYS = ("fid", "fvd", "mask_iou", "box_iou", "objmc", "objmc_norm", "denoise_seconds", "nfe")
CI_KEYS = ("fid", "fvd", "mask_iou", "box_iou", "objmc", "objmc_norm")
# metrics added after the first results files; a file without one says so as its reason
LATER_KEYS = {"objmc": "ObjMC", "objmc_norm": "ObjMC"}
FRECHET_KEYS = ("fid", "fvd")
# (low, high) of each metric; high None = unbounded
RANGES: dict[str, tuple[float, float | None]] = {
    "fid": (0.0, None), "fvd": (0.0, None), "mask_iou": (0.0, 100.0), "box_iou": (0.0, 100.0),
    "objmc": (0.0, None), "objmc_norm": (0.0, 100.0), "denoise_seconds": (0.0, None), "nfe": (0.0, None),
}
_LEGACY_RANK_NOTE = re.compile(r"^(FID|FVD): (\d+) samples for (\d+)-d features: the covariance is rank-deficient")


class ResultsError(FlashBenchError):
    """A results.json that does not hold what the evaluation writes."""


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"{where} is {value!r}, not a number or null")
    if not math.isfinite(value):
        raise ResultsError(f"{where} is {value!r}, not a finite number")
    return float(value)


def _metric(value: Any, key: str, where: str) -> float | None:
    """A metric value (or interval end) of `key`: a finite number in RANGES[key], or None."""
    number = _number(value, where)
    low, high = RANGES[key]
    if number is not None and (number < low or (high is not None and number > high)):
        bounds = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ResultsError(f"{where} is {value!r}, outside {bounds}")
    return number


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ResultsError(f"{where} is {type(value).__name__}, not an object")
    return value


@dataclass(frozen=True)
class Metrics:
    """One METRICS block: n scored samples, the metrics (IoUs in percent; ObjMC `objmc` in pixels, `objmc_norm`
    in percent of the frame diagonal), their 95% intervals, notes."""

    n: int
    fid: float | None = None
    fvd: float | None = None
    mask_iou: float | None = None
    box_iou: float | None = None
    objmc: float | None = None
    objmc_norm: float | None = None
    denoise_seconds: float | None = None
    nfe: float | None = None
    ci95: dict[str, list[float] | None] = field(default_factory=lambda: dict.fromkeys(CI_KEYS))
    notes: list[str] = field(default_factory=list)
    reasons: dict[str, str] | None = field(default_factory=dict)  # None: a file from before reasons
    rank_deficient: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def absent(cls, why: str) -> Metrics:
        """No block at all (a group a run does not have): every metric None because of `why`."""
        return cls(n=0, reasons=dict.fromkeys(METRIC_KEYS, why))

    def value(self, key: str) -> float | None:
        if key not in METRIC_KEYS:
            raise KeyError(f"unknown metric {key!r}; one of {METRIC_KEYS}")
        return getattr(self, key)

    def interval(self, key: str) -> list[float] | None:
        ci = self.ci95.get(key)
        return list(ci) if ci is not None else None

    def reason(self, key: str) -> str | None:
        """Why `key` is None (None when it has a value, or when nothing says why)."""
        if self.value(key) is not None:
            return None
        if self.reasons is None:
            return "; ".join(self.notes) or None
        return self.reasons.get(key)

    def to_json(self) -> dict:
        out: dict[str, Any] = {"n": self.n, **{key: getattr(self, key) for key in METRIC_KEYS}}
        out.update(ci95=self.ci95, notes=self.notes)
        if self.reasons is not None:
            out["reasons"] = self.reasons
        out["rank_deficient"] = self.rank_deficient
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> Metrics:
        data = _mapping(data, where)
        n = data.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ResultsError(f"{where}.n is {n!r}, not a sample count")
        ci95: dict[str, list[float] | None] = dict.fromkeys(CI_KEYS)
        for key, ci in _mapping(data.get("ci95") or {}, f"{where}.ci95").items():
            if key not in CI_KEYS:
                raise ResultsError(f"{where}.ci95 has an unknown metric {key!r}")
            if ci is not None and (not isinstance(ci, list) or len(ci) != 2):
                raise ResultsError(f"{where}.ci95.{key} is {ci!r}, not [low, high] or null")
            ci95[key] = None if ci is None else [_metric(c, key, f"{where}.ci95.{key}") for c in ci]
            if ci is not None and (None in ci95[key] or ci95[key][0] > ci95[key][1]):
                raise ResultsError(f"{where}.ci95.{key} is {ci!r}, not [low, high] with low <= high")
        notes = [str(note) for note in data.get("notes") or []]
        reasons = data.get("reasons")
        if reasons is not None:
            reasons = {str(k): str(v) for k, v in _mapping(reasons, f"{where}.reasons").items()}
        if "rank_deficient" in data:
            rank = {str(k): [int(x) for x in v]
                    for k, v in _mapping(data["rank_deficient"], f"{where}.rank_deficient").items()}
        else:
            rank = {m[1].lower(): [int(m[2]), int(m[3])] for m in map(_LEGACY_RANK_NOTE.match, notes) if m}
        values = {key: _metric(data.get(key), key, f"{where}.{key}") for key in METRIC_KEYS}
        if reasons is not None:
            reasons.update({key: f"{name} is not in this results.json (evaluated before FlashBench computed it); "
                                 "re-run `flashbench evaluate`" for key, name in LATER_KEYS.items() if key not in data})
        return cls(n=n, **values, ci95=ci95, notes=notes, reasons=reasons, rank_deficient=rank)


@dataclass(frozen=True)
class RunInfo:
    """Which run the results are of (copied from run.json when it was evaluated)."""

    name: str | None = None
    generator: str | None = None
    condition: str | None = None
    steps: int | None = None
    seed: int | None = None

    @classmethod
    def from_record(cls, record: dict) -> RunInfo:
        """The fields of a run.json (or results.json `run`) record; a missing one is None."""
        values = {f.name: record.get(f.name) for f in fields(cls)}
        for key in ("steps", "seed"):
            values[key] = None if values[key] is None else int(values[key])
        return cls(**values)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SampleError:
    """A sample left out of every metric: where it failed (generate / evaluate) and the one-line error."""

    id: str
    stage: str
    error: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Ceiling:
    """The tracker ceiling of a run's benchmark samples: their real videos tracked by the segmenter the run was
    scored with (`segmenter`, its settings hashed as `segmenter_key`), IoU and ObjMC blocks only."""

    segmenter: str
    segmenter_key: str
    overall: Metrics
    groups: dict[str, Metrics]

    def to_json(self) -> dict:
        return {"segmenter": self.segmenter, "segmenter_key": self.segmenter_key, "overall": self.overall.to_json(),
                "groups": {label: block.to_json() for label, block in self.groups.items()}}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Ceiling:
        data = _mapping(data, where)
        groups = {str(g): Metrics.from_json(block, f"{where}.groups.{g}")
                  for g, block in _mapping(data.get("groups") or {}, f"{where}.groups").items()}
        overall = Metrics.from_json(data["overall"], f"{where}.overall")
        return cls(str(data["segmenter"]), str(data["segmenter_key"]), overall, groups)


@dataclass(frozen=True)
class Results:
    """results.json. `settings` (everything that changes the numbers) and `provenance` are descriptive
    records, kept as written."""

    schema_version: int
    run: RunInfo
    overall: Metrics
    groups: dict[str, Metrics]
    settings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    errors: list[SampleError] = field(default_factory=list)
    ceiling: Ceiling | None = None

    def group(self, label: str) -> Metrics:
        """The block of group `label`, or an absent one saying the run has no such group."""
        block = self.groups.get(label)
        return block if block is not None else Metrics.absent(f"no {label}-object group in this run")

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "run": self.run.to_json(),
            "overall": self.overall.to_json(),
            "groups": {label: block.to_json() for label, block in self.groups.items()},
            "settings": self.settings,
            "provenance": self.provenance,
            "errors": [e.to_json() for e in self.errors],
            "ceiling": None if self.ceiling is None else self.ceiling.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any, path: Path | str) -> Results:
        """Results of a parsed results.json at `path`; a malformed one is a one-line ResultsError."""
        try:
            data = _mapping(data, "the file")
            run = RunInfo.from_record(_mapping(data.get("run") or {}, "run"))
            return cls(
                schema_version=int(data.get("schema_version", 1)),
                run=run,
                overall=Metrics.from_json(data.get("overall"), "overall"),
                groups={str(g): Metrics.from_json(block, f"groups.{g}")
                        for g, block in _mapping(data.get("groups") or {}, "groups").items()},
                settings=_mapping(data.get("settings") or {}, "settings"),
                provenance=_mapping(data.get("provenance") or {}, "provenance"),
                errors=[SampleError(str(e["id"]), str(e["stage"]), str(e["error"])) for e in data.get("errors") or []],
                ceiling=None if data.get("ceiling") is None else Ceiling.from_json(data["ceiling"], "ceiling"),
            )
        except (ResultsError, KeyError, TypeError, ValueError) as e:
            raise ResultsError(f"{path} is not a FlashBench results file ({e}); re-run `flashbench evaluate`") from None
