"""MagicMotion / MagicData-style importer: a CSV of prompts, first frames or videos, and mask-trajectory videos.

MagicMotion (github.com/quanhaol/MagicMotion, magicmotion/validation_args/*.csv) reads CSVs with the columns
`validation_prompt`, `validation_images` (first-frame image) and `validation_trajectory_maps` (an mp4 of
colour-coded object masks on black, one colour per object). Those are the defaults here; a `video` column
gives the real video (the benchmark's reference for FID/FVD). Without one, `still=True` makes a still
reference video by repeating the first frame (recorded in meta.build). Several trajectory videos in one cell
are separated by ';' and their objects are concatenated.

Trajectory videos are lossy (H.264 blurs colours, chroma is subsampled), so object ids are recovered by
colour: the object colours are the dominant non-black colours of the video (or a given palette), and each
pixel goes to the nearest object colour within an L2 RGB `tolerance`; near-black pixels are background.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from flashbench.data.benchmark import Benchmark
from flashbench.data.build import BuildOptions, BuildSummary, SourceClip, write_benchmark
from flashbench.errors import BenchmarkError, VideoError
from flashbench.video import read_video, resize_masks, video_info


@dataclass(frozen=True)
class MagicDataColumns:
    """CSV column names (MagicMotion's defaults); `video` is optional."""

    prompt: str = "validation_prompt"
    image: str = "validation_images"
    trajectory: str = "validation_trajectory_maps"
    video: str = "video"
    id: str = "id"


def estimate_palette(
    frames: np.ndarray, tolerance: float = 40.0, black: int = 40, min_fraction: float = 0.01, max_pixels: int = 500_000
) -> np.ndarray:
    """Dominant object colours of a colour-coded mask video: (K, 3) uint8, in order of first appearance.

    Non-black pixels (max channel > `black`) inside flat regions (not on an edge) are binned (8 levels per
    bin). Bins are taken as candidate colours, most frequent first, skipping those within `tolerance` of a colour already taken and those that look like
    compression blends: a darker shade of a colour (its edge towards the black background) or a mix of two
    colours (the edge between two objects). Each pixel then goes to the nearest candidate within `tolerance`;
    candidates holding less than `min_fraction` of the non-black pixels are dropped and the rest are refined
    to the mean of their pixels.
    """
    t, h, w, _ = frames.shape
    step = max(1, int(np.ceil(t * h * w / max_pixels)))
    sub = frames[::step]
    pixels = sub[_flat(sub)]
    fg = pixels[pixels.max(axis=1) > black].astype(np.float64)
    if len(fg) == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    q = (fg // 8).astype(np.int64)
    keys, counts = np.unique(q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    palette: list[np.ndarray] = []
    for key, count in zip(keys[order], counts[order], strict=True):
        if count < 0.2 * min_fraction * len(fg):
            break
        c = np.array([key // 1024, (key // 32) % 32, key % 32], dtype=np.float64) * 8 + 4
        if not _is_blend(c, palette, tolerance):
            palette.append(c)
    for _ in range(3):
        if not palette:
            break
        d = np.linalg.norm(fg[:, None, :] - np.array(palette)[None], axis=-1)
        nearest = np.where(d.min(axis=1) <= tolerance, d.argmin(axis=1), -1)
        palette = [fg[nearest == k].mean(axis=0) for k in range(len(palette)) if (nearest == k).sum() >= min_fraction * len(fg)]
    if not palette:
        return np.zeros((0, 3), dtype=np.uint8)
    return _order_by_appearance(frames, np.clip(np.round(palette), 0, 255).astype(np.uint8), tolerance, black)


def _segment_distance(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Distance from c to the segment a-b and the position (0 = a, 1 = b) of the closest point."""
    ab = b - a
    s = float(np.clip((c - a) @ ab / max(ab @ ab, 1e-9), 0.0, 1.0))
    return float(np.linalg.norm(c - a - s * ab)), s


def _is_blend(c: np.ndarray, palette: list[np.ndarray], tolerance: float) -> bool:
    """c is within `tolerance` of a taken colour, or on a blend of one with black or with another."""
    black = np.zeros(3)
    for i, p in enumerate(palette):
        if np.linalg.norm(c - p) <= tolerance:
            return True
        dist, s = _segment_distance(c, black, p)
        if dist <= tolerance and s < 0.9:
            return True
        for other in palette[i + 1 :]:
            dist, s = _segment_distance(c, p, other)
            if dist <= tolerance and 0.0 < s < 1.0:
                return True
    return False


def _order_by_appearance(frames: np.ndarray, palette: np.ndarray, tolerance: float, black: int) -> np.ndarray:
    labels = np.stack([_nearest(f, palette, tolerance, black) for f in frames])
    first = [int(np.argmax((labels == k + 1).any(axis=(1, 2)))) for k in range(len(palette))]
    size = [-int((labels == k + 1).sum()) for k in range(len(palette))]
    return palette[np.lexsort((size, first))]


def _nearest(frame: np.ndarray, palette: np.ndarray, tolerance: float, black: int) -> np.ndarray:
    """(H, W) uint8: 1 + index of the object colour a pixel belongs to, 0 = background.

    A pixel x belongs to colour p when it is within `tolerance` of the black-to-p line at a point at least
    half as bright as p (x ~ s * p, s >= 0.5): blurred edges are cut at the 50% blend, where the edge was.
    Among several such colours the nearest wins. Pixels with every channel <= `black` are background.
    """
    x = frame.reshape(-1, 1, 3).astype(np.float32)
    p = palette.astype(np.float32)[None]  # (1, K, 3)
    s = np.clip((x * p).sum(-1) / np.maximum((p * p).sum(-1), 1e-6), 0.0, 1.0)  # (HW, K)
    d = ((x - s[..., None] * p) ** 2).sum(-1)
    d = np.where(s >= 0.5, d, np.inf)
    best = d.argmin(-1)
    ok = (np.take_along_axis(d, best[:, None], -1)[:, 0] <= tolerance**2) & (frame.reshape(-1, 3).max(-1) > black)
    return np.where(ok, best + 1, 0).astype(np.uint8).reshape(frame.shape[:2])


def _flat(frames: np.ndarray, max_step: int = 24) -> np.ndarray:
    """(T, H, W) bool: pixels whose 4 neighbours all have nearly the same colour (object interiors)."""
    f = frames.astype(np.int16)
    flat = np.ones(frames.shape[:3], dtype=bool)
    for axis in (1, 2):
        step = np.abs(np.diff(f, axis=axis)).max(-1) <= max_step
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[axis] = (1, 0)
        flat &= np.pad(step, pad, constant_values=False)
        pad[axis] = (0, 1)
        flat &= np.pad(step, pad, constant_values=False)
    return flat


def decode_mask_video(
    frames: np.ndarray,
    palette: np.ndarray | None = None,
    tolerance: float = 40.0,
    black: int = 40,
    min_fraction: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Colour-coded mask frames (T, H, W, 3) uint8 -> (masks (T, K, H, W) bool, palette (K, 3) uint8)."""
    if palette is None:
        palette = estimate_palette(frames, tolerance, black, min_fraction)
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    labels = np.stack([_nearest(f, palette, tolerance, black) for f in frames])
    masks = labels[:, None] == np.arange(1, len(palette) + 1, dtype=np.uint8)[None, :, None, None]
    return masks, palette


def parse_palette(spec: str) -> np.ndarray:
    """'255,0,0;0,255,0' -> (2, 3) uint8."""
    try:
        colors = [[int(v) for v in item.split(",")] for item in spec.split(";") if item.strip()]
        palette = np.array(colors, dtype=np.int64)
    except ValueError:
        palette = np.zeros((0,))
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.size == 0 or palette.min() < 0 or palette.max() > 255:
        raise BenchmarkError(f"bad --palette {spec!r}: use R,G,B;R,G,B with values 0..255")
    return palette.astype(np.uint8)


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _resolve(base: Path, value: str, row: int, column: str) -> Path:
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        raise BenchmarkError(f"row {row}: {column} file {path} not found; fix the CSV or pass --base-dir")
    return path


def _sanitize(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def iter_magicdata(
    csv: Path,
    columns: MagicDataColumns = MagicDataColumns(),
    base_dir: Path | None = None,
    palette: np.ndarray | None = None,
    tolerance: float = 40.0,
    black: int = 40,
    still: bool = False,
) -> Iterator[SourceClip]:
    """Yield one `SourceClip` per CSV row (see the module docstring for the columns)."""
    import pandas as pd

    try:
        table = pd.read_csv(csv)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise BenchmarkError(f"cannot read {csv}: {e}") from None
    for required in (columns.prompt, columns.trajectory):
        if required not in table.columns:
            raise BenchmarkError(f"{csv} has no column {required!r} (columns: {', '.join(map(str, table.columns))}); "
                                 "name it with --prompt-column / --trajectory-column")  # fmt: skip
    base = Path(base_dir) if base_dir else Path(csv).parent
    for i, row in enumerate(table.to_dict("records")):
        yield _load_row(i, row, columns, base, palette, tolerance, black, still)


def _load_row(
    i: int, row: dict, columns: MagicDataColumns, base: Path, palette: np.ndarray | None,
    tolerance: float, black: int, still: bool,
) -> SourceClip:  # fmt: skip
    traj_paths = [_resolve(base, p.strip(), i, columns.trajectory) for p in _cell(row, columns.trajectory).split(";") if p.strip()]
    if not traj_paths:
        raise BenchmarkError(f"row {i}: empty {columns.trajectory!r}; every row needs a mask-trajectory video")
    traj = [read_video(p) for p in traj_paths]
    if len({v.shape[:3] for v in traj}) != 1:
        raise BenchmarkError(f"row {i}: trajectory videos differ in length or size {[v.shape[:3] for v in traj]}")
    masks = np.concatenate([decode_mask_video(v, palette, tolerance, black)[0] for v in traj], axis=1)
    video_cell, image_cell = _cell(row, columns.video), _cell(row, columns.image)
    if video_cell:
        path = _resolve(base, video_cell, i, columns.video)
        frames, fps = read_video(path), video_info(path).fps
        source = f"magicdata:{video_cell}"
    elif image_cell and still:
        path = _resolve(base, image_cell, i, columns.image)
        image = np.asarray(Image.open(path).convert("RGB"))
        frames, fps = np.repeat(image[None], masks.shape[0], axis=0), video_info(traj_paths[0]).fps
        source = f"magicdata-still:{image_cell}"
    else:
        raise BenchmarkError(
            f"row {i}: no {columns.video!r} video; give the real video (--video-column) or pass --still to "
            f"repeat the first frame from {columns.image!r} as a still reference"
        )
    if frames.shape[0] != masks.shape[0]:
        raise BenchmarkError(
            f"row {i}: video has {frames.shape[0]} frames but the trajectory has {masks.shape[0]}; "
            "they must have the same length"
        )
    if masks.shape[2:] != frames.shape[1:3]:
        masks = resize_masks(masks, frames.shape[1:3])
    if fps <= 0:
        raise VideoError(f"row {i}: cannot tell the frame rate of {path}")
    sample_id = _cell(row, columns.id) or f"{i:05d}-{traj_paths[0].stem}"
    return SourceClip(id=_sanitize(sample_id), frames=frames, masks=masks, fps=fps,
                      prompt=_cell(row, columns.prompt), source=source)  # fmt: skip


def build_magicdata(
    csv: Path,
    out: Path,
    opts: BuildOptions | None = None,
    columns: MagicDataColumns = MagicDataColumns(),
    base_dir: Path | None = None,
    palette: np.ndarray | None = None,
    tolerance: float = 40.0,
    black: int = 40,
    still: bool = False,
    overwrite: bool = False,
) -> tuple[Benchmark, BuildSummary]:
    """Import a MagicData-style CSV as a benchmark (see `BuildOptions` for the filters)."""
    opts = opts or BuildOptions()
    build = {
        "builder": "magicdata",
        "csv": str(Path(csv).resolve()),
        "columns": asdict(columns),
        "base_dir": str(base_dir) if base_dir else None,
        "palette": palette.tolist() if palette is not None else None,
        "tolerance": tolerance,
        "black": black,
        "still_reference": still,
    }
    clips = iter_magicdata(csv, columns, base_dir, palette, tolerance, black, still)
    return write_benchmark(clips, out, "magicdata", opts, build, overwrite=overwrite)
