"""Per-sample gallery: PNG strips of every k-th frame with target masks (outline) vs tracked masks (fill).

For a few samples per object-count group (ids scored ok in every run), one strip for the real video with its
target masks, and one per method: the generated video, the benchmark's target masks as coloured outlines and
the segmenter's tracked masks (RUN/tracks/<id>.json) as translucent fills. A strip that cannot be drawn
(missing video or tracks, unreadable file) is reported with its reason, never silently dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from flashbench.data.benchmark import Benchmark, davis_palette
from flashbench.data.objects import read_objects
from flashbench.errors import FlashBenchError
from flashbench.report.runs import RunRecord
from flashbench.video import iter_frames, resize_masks

FILL_ALPHA = 0.45
GAP = 3  # white pixels between frames of a strip


@dataclass
class Strip:
    label: str
    image: str | None  # path relative to the report folder
    note: str | None = None  # why there is no image, or what is partial about it


@dataclass
class GalleryItem:
    sample_id: str
    group: str
    object_count: int
    prompt: str
    frame_indices: list[int]
    strips: list[Strip] = field(default_factory=list)


@dataclass
class Gallery:
    items: list[GalleryItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    """A file-name-safe version of a method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "run"


def strip_indices(num_frames: int, max_frames: int) -> list[int]:
    """Frame 0 and every k-th frame after it, k chosen so at most `max_frames` frames are shown."""
    k = max(1, math.ceil((num_frames - 1) / max(1, max_frames - 1))) if num_frames > 1 else 1
    return list(range(0, num_frames, k))[:max_frames]


def _pick_frames(path: Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    wanted = set(indices)
    last = max(wanted)
    frames = {}
    for i, frame in enumerate(iter_frames(path)):
        if i in wanted:
            frames[i] = frame
        if i >= last:
            break
    return frames


def _boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of `mask` within `width` pixels of its edge (4-neighbour erosion, repeated)."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def overlay(
    frame: np.ndarray, colors: np.ndarray, target: np.ndarray | None, pred: np.ndarray | None
) -> np.ndarray:
    """Draw tracked masks `pred` (N,H,W) as translucent fills and `target` (N,H,W) as outlines on `frame`."""
    out = frame.astype(np.float32)
    if pred is not None:
        for k in range(pred.shape[0]):
            out[pred[k]] = (1 - FILL_ALPHA) * out[pred[k]] + FILL_ALPHA * colors[k]
    if target is not None:
        width = max(1, round(min(frame.shape[:2]) / 120))
        for k in range(target.shape[0]):
            edge = _boundary(target[k], width)
            out[edge] = colors[k]
    return out.round().clip(0, 255).astype(np.uint8)


def _fit(masks: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    return None if masks is None else resize_masks(masks, size)


def _save_strip(tiles: list[np.ndarray], path: Path, height: int) -> None:
    h, w = tiles[0].shape[:2]
    width = max(1, round(w * height / h))
    resized = [
        np.asarray(Image.fromarray(t).resize((width, height), Image.Resampling.BILINEAR)) for t in tiles
    ]
    canvas = np.full((height, len(resized) * (width + GAP) - GAP, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(resized):
        canvas[:, i * (width + GAP) : i * (width + GAP) + width] = tile
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path, optimize=True)


def _strip(
    video: Path, indices: list[int], target, pred, colors: np.ndarray, path: Path, height: int
) -> str | None:
    """Render one strip; returns a note when the video is shorter than the target (frames cut)."""
    frames = _pick_frames(video, indices)
    tiles = []
    for i in indices:
        if i not in frames:
            break
        frame = frames[i]
        size = frame.shape[:2]
        tiles.append(
            overlay(
                frame,
                colors,
                _fit(None if target is None else target[i], size),
                _fit(None if pred is None or i >= pred.shape[0] else pred[i], size),
            )
        )
    if not tiles:
        raise FlashBenchError(f"{video} has no frames")
    _save_strip(tiles, path, height)
    return None if len(tiles) == len(indices) else f"video has only {max(frames) + 1} frames"


def select_samples(runs: list[RunRecord], bench: Benchmark, per_group: int) -> list:
    """First `per_group` samples of each group (manifest order) that every run scored ok."""
    common = None
    for run in runs:
        ids = set(run.ok_samples())
        common = ids if common is None else common & ids
    picked = []
    for samples in bench.by_group().values():
        picked += [s for s in samples if s.id in (common or set())][:per_group]
    return picked


def write_gallery(
    runs: list[RunRecord], out: Path, per_group: int = 2, max_frames: int = 6, height: int = 96
) -> Gallery:
    """Draw strips under `out`/gallery/<sample id>/ for the samples picked by `select_samples`."""
    out = Path(out)
    gallery = Gallery()
    root = runs[0].bench_root
    try:
        if root is None:
            raise FlashBenchError("run.json records no bench root")
        bench = Benchmark.load(root)
    except FlashBenchError as e:
        gallery.notes.append(f"gallery skipped: benchmark not readable ({e})")
        return gallery
    samples = select_samples(runs, bench, per_group)
    if not samples:
        gallery.notes.append("gallery empty: no sample was scored ok in every run")
    palette = np.array(davis_palette(), dtype=np.float32).reshape(256, 3)
    for sample in samples:
        indices = strip_indices(sample.num_frames, max_frames)
        item = GalleryItem(sample.id, sample.group, sample.object_count, sample.prompt, indices)
        folder = Path("gallery") / slug(sample.id)
        try:
            target = bench.tracks(sample)
        except FlashBenchError as e:
            gallery.notes.append(f"{sample.id}: target masks unreadable ({e})")
            continue
        colors = palette[list(target.object_ids)]
        jobs = [("Real video (target masks)", bench.path(sample, "video"), None, folder / "real.png")]
        for i, run in enumerate(runs):  # the index keeps names that slug alike apart
            rel = folder / f"{i:02d}-{slug(run.name)}.png"
            jobs.append((run.name, run.path / "videos" / f"{sample.id}.mp4", run, rel))
        for label, video, run, rel in jobs:
            pred, notes = None, []
            if run is not None:
                tracks_path = run.path / "tracks" / f"{sample.id}.json"
                if tracks_path.is_file():
                    try:
                        pred = read_objects(tracks_path).masks
                    except FlashBenchError as e:
                        notes.append(f"tracks unreadable ({e})")
                else:
                    notes.append("no tracked masks (tracks/ missing)")
                if pred is not None and pred.shape[1] != target.num_objects:
                    notes.append(
                        f"tracks have {pred.shape[1]} objects, target {target.num_objects}; fills not drawn"
                    )
                    pred = None
            try:
                if not video.is_file():
                    raise FlashBenchError(f"{video} missing")
                cut = _strip(video, indices, target.masks, pred, colors, out / rel, height)
                item.strips.append(
                    Strip(label, rel.as_posix(), "; ".join(notes + ([cut] if cut else [])) or None)
                )
            except FlashBenchError as e:
                item.strips.append(Strip(label, None, "; ".join(notes + [str(e)])))
        gallery.items.append(item)
    return gallery
