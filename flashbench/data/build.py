"""Shared steps of the benchmark importers (DAVIS, MagicData): filters, resampling, resizing, grouping, caps.

An importer yields `SourceClip`s at their native length, size and frame rate; `write_benchmark` runs each
through `prepare_clip` (the `BuildOptions` filters, in a fixed order) and writes the survivors with
`BenchmarkWriter`. Every dropped sample and object is counted by reason in a `BuildSummary`, printed at the
end and recorded in meta.json under `build.summary`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from flashbench.data.benchmark import Benchmark, BenchmarkWriter
from flashbench.data.groups import DEFAULT_GROUPS, group_for_count
from flashbench.errors import BenchmarkError
from flashbench.video import fps_indices, resize_frames, resize_masks, uniform_indices


@dataclass
class SourceClip:
    """One annotated video as read from its source: frames (T,H,W,3) uint8, masks (T,N,H,W) bool."""

    id: str
    frames: np.ndarray
    masks: np.ndarray
    fps: float
    prompt: str
    source: str
    categories: list[str | None] | None = None
    annotations: list[str] | None = None  # per object "mask" | "box" (see sample.ObjectInfo); None: all masks

    def __post_init__(self) -> None:
        f, m = self.frames, self.masks
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise BenchmarkError(f"{self.id}: frames must be uint8 (T, H, W, 3), got {f.dtype} {f.shape}")
        if m.ndim != 4 or m.shape[0] != f.shape[0] or m.shape[2:] != f.shape[1:3]:
            raise BenchmarkError(f"{self.id}: masks {m.shape} do not match frames {f.shape} (need (T, N, H, W))")
        if self.categories is not None and len(self.categories) != m.shape[1]:
            raise BenchmarkError(f"{self.id}: {len(self.categories)} categories for {m.shape[1]} objects")
        if self.annotations is not None and len(self.annotations) != m.shape[1]:
            raise BenchmarkError(f"{self.id}: {len(self.annotations)} annotation kinds for {m.shape[1]} objects")


@dataclass(frozen=True)
class SkippedClip:
    """A source row an importer could not read and was told to skip (e.g. `--skip-missing`); `reason` is the
    `dropped_samples` key it is counted under."""

    id: str
    reason: str


@dataclass(frozen=True)
class BuildOptions:
    """Filters applied to every imported clip, in this order:

    1. `fps`: resample time to this frame rate (video.fps_indices); None keeps the native rate.
    2. `frames`: exact length. Longer clips: `frames_mode='uniform'` spreads the frames over the whole clip
       (video.uniform_indices; fps scaled to keep the duration), `'first'` keeps the first `frames`.
       Shorter clips: padded by repeating the last frame when `pad`, else dropped.
    3. `min_frames`: clips shorter than this are padded (`pad`) or dropped.
    4. `size`: (h, w), both even; frames bilinear (antialiased), masks nearest. None keeps the native size,
       cropping one row/column when a side is odd (H.264 needs even sizes).
    5. objects never visible are dropped; then objects whose mean visible area ratio (pixels / frame area,
       averaged over the frames where the object is visible) is outside [`min_area`, `max_area`].
    6. the sample is dropped when no object is left, or when its object count falls in no group, or when its
       group already holds `per_group_cap` samples.
    """

    fps: float | None = None
    frames: int | None = None
    frames_mode: str = "uniform"
    min_frames: int | None = None
    pad: bool = False
    size: tuple[int, int] | None = None
    min_area: float = 0.0
    max_area: float = 1.0
    groups: tuple[str, ...] = DEFAULT_GROUPS
    per_group_cap: int | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and self.fps <= 0:
            raise BenchmarkError(f"--fps must be positive, got {self.fps}")
        for name in ("frames", "min_frames", "per_group_cap"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchmarkError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.frames_mode not in ("uniform", "first"):
            raise BenchmarkError(f"--frames-mode must be 'uniform' or 'first', got {self.frames_mode!r}")
        if self.size is not None and (self.size[0] % 2 or self.size[1] % 2 or min(self.size) < 2):
            raise BenchmarkError(f"--size must be even and positive (H.264), got {self.size[0]}x{self.size[1]}")
        if not 0.0 <= self.min_area <= self.max_area <= 1.0:
            raise BenchmarkError(f"need 0 <= --min-area <= --max-area <= 1, got {self.min_area} and {self.max_area}")

    def to_json(self) -> dict:
        record = asdict(self)
        record["groups"] = list(self.groups)
        record["size"] = list(self.size) if self.size else None
        return record


@dataclass
class BuildSummary:
    """What the build kept and dropped, by reason."""

    seen: int = 0
    written: int = 0
    padded: int = 0
    dropped_samples: Counter = field(default_factory=Counter)
    dropped_objects: Counter = field(default_factory=Counter)
    group_sizes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "seen": self.seen,
            "written": self.written,
            "padded": self.padded,
            "dropped_samples": dict(sorted(self.dropped_samples.items())),
            "dropped_objects": dict(sorted(self.dropped_objects.items())),
            "group_sizes": dict(self.group_sizes),
        }

    def format(self) -> str:
        lines = [f"samples seen: {self.seen}, written: {self.written}, padded: {self.padded}"]
        lines.append("group sizes: " + ", ".join(f"{g}: {n}" for g, n in self.group_sizes.items()))
        for title, counter in (("dropped samples", self.dropped_samples), ("dropped objects", self.dropped_objects)):
            detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(counter.items())) or "none"
            lines.append(f"{title}: {detail}")
        return "\n".join(lines)


def _pad(clip: SourceClip, length: int) -> SourceClip:
    idx = np.minimum(np.arange(length), clip.frames.shape[0] - 1)
    return replace(clip, frames=clip.frames[idx], masks=clip.masks[idx])


def _take(clip: SourceClip, idx: np.ndarray, fps: float) -> SourceClip:
    return replace(clip, frames=clip.frames[idx], masks=clip.masks[idx], fps=fps)


def _fit_length(clip: SourceClip, opts: BuildOptions, summary: BuildSummary) -> SourceClip | None:
    if opts.fps is not None and abs(opts.fps - clip.fps) > 1e-6:
        clip = _take(clip, fps_indices(clip.frames.shape[0], clip.fps, opts.fps), opts.fps)
    want = max(opts.frames or 0, opts.min_frames or 0)
    if clip.frames.shape[0] < want:
        if not opts.pad:
            summary.dropped_samples["too_short"] += 1
            return None
        summary.padded += 1
        clip = _pad(clip, want)
    t = clip.frames.shape[0]
    if opts.frames is not None and t > opts.frames:
        if opts.frames_mode == "first":
            clip = _take(clip, np.arange(opts.frames), clip.fps)
        else:
            fps = clip.fps * (opts.frames - 1) / (t - 1) if opts.frames > 1 else clip.fps
            clip = _take(clip, uniform_indices(t, opts.frames), fps)
    return clip


def _fit_size(clip: SourceClip, opts: BuildOptions) -> SourceClip:
    h, w = clip.frames.shape[1:3]
    if opts.size is not None:
        size = tuple(opts.size)
        return replace(clip, frames=resize_frames(clip.frames, size), masks=resize_masks(clip.masks, size))
    if h % 2 or w % 2:
        he, we = h - h % 2, w - w % 2
        return replace(clip, frames=clip.frames[:, :he, :we], masks=clip.masks[:, :, :he, :we])
    return clip


def _filter_objects(clip: SourceClip, opts: BuildOptions, summary: BuildSummary) -> SourceClip:
    masks = clip.masks
    area = masks.sum(axis=(2, 3)).astype(np.float64)  # (T, N)
    visible = area > 0
    keep = visible.any(axis=0)
    summary.dropped_objects["never_visible"] += int((~keep).sum())
    frame_area = masks.shape[2] * masks.shape[3]
    mean_ratio = np.where(keep, area.sum(axis=0) / np.maximum(visible.sum(axis=0), 1) / frame_area, 0.0)
    too_small = keep & (mean_ratio < opts.min_area)
    too_large = keep & (mean_ratio > opts.max_area)
    summary.dropped_objects["area_below_min"] += int(too_small.sum())
    summary.dropped_objects["area_above_max"] += int(too_large.sum())
    keep &= ~too_small & ~too_large
    if keep.all():
        return clip
    cats = [c for c, k in zip(clip.categories, keep, strict=True) if k] if clip.categories is not None else None
    kinds = [a for a, k in zip(clip.annotations, keep, strict=True) if k] if clip.annotations is not None else None
    return replace(clip, masks=masks[:, keep], categories=cats, annotations=kinds)


def prepare_clip(clip: SourceClip, opts: BuildOptions, summary: BuildSummary) -> SourceClip | None:
    """Apply the `BuildOptions` steps 1-5 and the no-object / no-group checks; None when dropped (counted)."""
    clip = _fit_length(clip, opts, summary)
    if clip is None:
        return None
    clip = _filter_objects(_fit_size(clip, opts), opts, summary)
    n = clip.masks.shape[1]
    if n == 0:
        summary.dropped_samples["no_objects_left"] += 1
        return None
    if group_for_count(n, opts.groups) is None:
        summary.dropped_samples["no_group"] += 1
        return None
    return clip


def write_benchmark(
    clips: Iterable[SourceClip | SkippedClip],
    out: Path,
    name: str,
    opts: BuildOptions,
    build: dict,
    overwrite: bool = False,
    total: int | None = None,
) -> tuple[Benchmark, BuildSummary]:
    """Filter and write `clips` as a benchmark; the summary goes to meta.json `build.summary`.

    A `SkippedClip` counts as seen and dropped for its reason. On any error nothing is left at `out`.
    """
    summary = BuildSummary(group_sizes={g: 0 for g in opts.groups})
    with BenchmarkWriter(out, name=name, groups=opts.groups, build=build, overwrite=overwrite) as writer:
        for clip in tqdm(clips, total=total, desc=f"build {name}", unit="video"):
            summary.seen += 1
            if isinstance(clip, SkippedClip):
                summary.dropped_samples[clip.reason] += 1
                continue
            clip = prepare_clip(clip, opts, summary)
            if clip is None:
                continue
            group = group_for_count(clip.masks.shape[1], opts.groups)
            if opts.per_group_cap is not None and summary.group_sizes[group] >= opts.per_group_cap:
                summary.dropped_samples["group_cap"] += 1
                continue
            writer.add(clip.id, clip.frames, clip.masks, clip.fps, clip.prompt, clip.source, clip.categories,
                       clip.annotations)  # fmt: skip
            summary.group_sizes[group] += 1
            summary.written += 1
        writer.build["options"] = opts.to_json()
        writer.build["summary"] = summary.to_json()
        return writer.close(), summary
