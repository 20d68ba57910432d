"""Integrity check of a benchmark folder: every file present and decodable, and consistent with the manifest.

Checks, per sample: files present; video decodes with the manifest's frame count, size and fps; first_frame.png
size; objects.json masks shape and ids; boxes == boxes of the masks; one mask PNG per frame, of the right
size, equal to the label map of the objects.json masks; object_count, group and first/last visible frames.
Per benchmark: meta sample count and group sizes, sample folders not in the manifest, content hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from flashbench.data.benchmark import Benchmark, label_map
from flashbench.data.groups import group_for_count
from flashbench.data.objects import boxes_from_masks
from flashbench.data.sample import Sample
from flashbench.errors import FlashBenchError
from flashbench.video import iter_frames, video_info


@dataclass
class ValidationReport:
    """Outcome of `validate_benchmark`: one line per problem and a per-group summary table."""

    root: Path
    problems: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    content_hash: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self):
        """Per-group summary as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["group", "samples", "expected", "objects", "frames", "size", "problems"])

    def format(self) -> str:
        lines = [f"benchmark {self.root}", self.table().to_string(index=False)]
        if self.content_hash:
            lines.append(f"content hash: {self.content_hash}")
        if self.ok:
            lines.append("OK: no problems found")
        else:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def _span(values: list[int]) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _check_sample(bench: Benchmark, sample: Sample) -> list[str]:
    """Problems of one sample, each a line starting with its id."""
    out: list[str] = []
    shape = (sample.num_frames, sample.height, sample.width)
    missing = [key for key in ("video", "first_frame", "masks", "objects") if not bench.path(sample, key).exists()]
    if missing:
        return [f"{sample.id}: missing {', '.join(missing)} ({', '.join(sample.paths.get(k, '?') for k in missing)})"]
    try:
        info = video_info(bench.path(sample, "video"))
        decoded = sum(1 for _ in iter_frames(bench.path(sample, "video")))
        if (decoded, info.height, info.width) != shape:
            out.append(f"{sample.id}: video is {decoded} frames of {info.height}x{info.width}, manifest says "
                       f"{shape[0]} of {shape[1]}x{shape[2]}")  # fmt: skip
        if abs(info.fps - sample.fps) > 0.01:
            out.append(f"{sample.id}: video is {info.fps:.3f} fps, manifest says {sample.fps:.3f}")
    except FlashBenchError as e:
        out.append(f"{sample.id}: {e}")
    try:
        bench.first_frame(sample)
    except (FlashBenchError, OSError) as e:
        out.append(f"{sample.id}: first_frame.png: {e}")
    try:
        tracks = bench.tracks(sample)
    except (FlashBenchError, KeyError, TypeError, ValueError) as e:
        return out + [f"{sample.id}: objects.json: {e}"]
    ids = tuple(o.id for o in sample.objects)
    if tracks.object_ids != ids or sample.object_count != len(ids):
        out.append(f"{sample.id}: objects.json ids {tracks.object_ids}, manifest objects {ids}, object_count {sample.object_count}")
        return out
    expected_boxes = boxes_from_masks(tracks.masks)
    if not np.array_equal(np.isnan(expected_boxes), np.isnan(tracks.boxes)) or not np.allclose(
        np.nan_to_num(expected_boxes), np.nan_to_num(tracks.boxes)
    ):
        out.append(f"{sample.id}: objects.json boxes differ from the boxes of its masks")
    out += _check_mask_pngs(bench, sample, tracks.masks, ids)
    visible = tracks.visible
    for k, obj in enumerate(sample.objects):
        frames = np.flatnonzero(visible[:, k])
        if len(frames) == 0:
            out.append(f"{sample.id}: object {obj.id} is never visible")
        elif (obj.first_visible, obj.last_visible) != (frames[0], frames[-1]):
            out.append(f"{sample.id}: object {obj.id} visible in frames {frames[0]}-{frames[-1]}, manifest says "
                       f"{obj.first_visible}-{obj.last_visible}")  # fmt: skip
    return out


def _check_mask_pngs(bench: Benchmark, sample: Sample, masks: np.ndarray, ids: tuple[int, ...]) -> list[str]:
    folder = bench.path(sample, "masks")
    pngs = sorted(folder.glob("*.png"))
    expected_names = [f"{i:05d}.png" for i in range(sample.num_frames)]
    if [p.name for p in pngs] != expected_names:
        return [f"{sample.id}: {len(pngs)} mask PNGs in {folder.name}/, expected {sample.num_frames} (00000.png ...)"]
    for i, png in enumerate(pngs):
        try:
            labels = np.asarray(Image.open(png))
        except OSError as e:
            return [f"{sample.id}: cannot read {png.name}: {e}"]
        if labels.shape != (sample.height, sample.width):
            return [f"{sample.id}: mask {png.name} is {labels.shape}, expected ({sample.height}, {sample.width})"]
        if not np.array_equal(labels, label_map(masks[i], ids)):
            return [f"{sample.id}: mask {png.name} differs from objects.json frame {i}"]
    return []


def validate_benchmark(root: Path, progress: bool = True) -> ValidationReport:
    """Check a benchmark folder; never raises for a bad benchmark, returns every problem found instead."""
    report = ValidationReport(root=Path(root))
    try:
        bench = Benchmark.load(root)
    except FlashBenchError as e:
        report.problems.append(str(e))
        return report
    per_group: dict[str, list[Sample]] = {g: [] for g in bench.meta.groups}
    problems_per_group: dict[str, int] = {}
    for sample in tqdm(bench.samples, desc="validate", unit="sample", disable=not progress):
        found = _check_sample(bench, sample)
        group = group_for_count(sample.object_count, bench.meta.groups)
        if sample.group != group:
            found.append(f"{sample.id}: {sample.object_count} objects belong to group {group!r}, manifest says {sample.group!r}")
        per_group.setdefault(sample.group, []).append(sample)
        problems_per_group[sample.group] = problems_per_group.get(sample.group, 0) + len(found)
        report.problems += found
    if bench.meta.num_samples != len(bench.samples):
        report.problems.append(f"meta.json says {bench.meta.num_samples} samples, manifest has {len(bench.samples)}")
    for group, samples in per_group.items():
        expected = bench.meta.group_sizes.get(group)
        if group not in bench.meta.groups:
            report.problems.append(f"group {group!r} of {len(samples)} sample(s) is not in meta groups {bench.meta.groups}")
        elif expected != len(samples):
            report.problems.append(f"group {group}: meta.json says {expected} samples, manifest has {len(samples)}")
        report.rows.append({
            "group": group,
            "samples": len(samples),
            "expected": expected,
            "objects": _span([s.object_count for s in samples]),
            "frames": _span([s.num_frames for s in samples]),
            "size": ", ".join(sorted({f"{s.height}x{s.width}" for s in samples})) or "-",
            "problems": problems_per_group.get(group, 0),
        })  # fmt: skip
    listed = {Path(s.paths.get("video", "")).parent.name for s in bench.samples}
    samples_dir = bench.root / "samples"
    extra = sorted(p.name for p in samples_dir.iterdir() if p.is_dir() and p.name not in listed) if samples_dir.is_dir() else []
    if extra:
        report.problems.append(f"sample folders not in the manifest: {', '.join(extra)}")
    report.content_hash = bench.compute_content_hash()
    if report.content_hash != bench.meta.content_hash:
        report.problems.append(f"content hash {report.content_hash[:12]}... differs from meta.json's "
                               f"{bench.meta.content_hash[:12]}...: files changed since the build")  # fmt: skip
    return report
