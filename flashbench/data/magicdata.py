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
Connected pieces of an object smaller than `SPECKLE` of its largest piece in that frame are dropped: they are
blur at the edges of other objects (desaturated red reads as a darker pink), never object parts.

Box maps (MagicMotion's `box_trajectory`: filled masks in the first frame, rectangle outlines after) are
recognised (`is_box_map`: most visible object-frames are hollow rectangles) and imported as box
trajectories: each outline becomes its box (the bounding box of the outline's largest connected piece), its
mask the filled box, and the objects are marked `annotation="box"`, so evaluation scores box IoU but not mask
IoU for them. Frames where a box-map object has no box (sparse-box maps) are imported as "object absent", with
a warning.

Relative paths in the CSV start at `base_dir` (`--root`, default the CSV's folder); MagicMotion's own CSVs
(magicmotion/validation_args/demo/*.csv) are relative to its repo folder, so pass `--root MagicMotion`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from flashbench.data.benchmark import Benchmark
from flashbench.data.build import BuildOptions, BuildSummary, SkippedClip, SourceClip, write_benchmark
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


SPECKLE = 0.005  # pieces below this fraction of an object's largest piece (in one frame) are decoding noise
_EIGHT = np.ones((3, 3), dtype=bool)


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected pieces of an (H, W) mask: (labels (H, W) int, sizes (n,) of pieces 1..n)."""
    labels, n = ndimage.label(mask, structure=_EIGHT)
    return labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]


def despeckle(masks: np.ndarray, fraction: float = SPECKLE) -> np.ndarray:
    """(T, N, H, W) bool with, per object and frame, the pieces smaller than `fraction` of the largest dropped."""
    out = masks.copy()
    for t, k in zip(*np.nonzero(masks.any(axis=(2, 3))), strict=True):
        labels, sizes = _pieces(masks[t, k])
        small = np.flatnonzero(sizes < fraction * sizes.max()) + 1
        if small.size:
            out[t, k] &= ~np.isin(labels, small)
    return out


def outline_box(mask: np.ndarray) -> tuple[tuple[int, int, int, int], bool] | None:
    """Bounding box (x0, y0, x1, y1, exclusive end) of the largest piece of an (H, W) mask, and whether that
    piece is a hollow rectangle outline; None for an empty mask.

    Outline: with b = max(1, min(box w, h) // 8), under 5% of the piece lies inside the box shrunk by 2b, and
    each of the four bands of width b along the box's sides has pixels on at least 80% of its length (a side
    on the image border counts as present: the outline of a box leaving the frame is cut open there).
    """
    labels, sizes = _pieces(mask)
    if sizes.size == 0:
        return None
    piece = labels == int(np.argmax(sizes)) + 1
    ys, xs = np.nonzero(piece)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    w, h = x1 - x0, y1 - y0
    b = max(1, min(w, h) // 8)
    if min(w, h) <= 4 * b:
        return (x0, y0, x1, y1), False
    box = piece[y0:y1, x0:x1]
    inside = box[2 * b : h - 2 * b, 2 * b : w - 2 * b].sum() / box.sum()
    height, width = mask.shape
    sides = (
        (box[:b].any(0).mean(), y0 == 0),
        (box[-b:].any(0).mean(), y1 == height),
        (box[:, :b].any(1).mean(), x0 == 0),
        (box[:, -b:].any(1).mean(), x1 == width),
    )
    return (x0, y0, x1, y1), bool(inside < 0.05 and all(cover >= 0.8 or border for cover, border in sides))


def is_box_map(masks: np.ndarray) -> bool:
    """Whether decoded (T, N, H, W) trajectory masks are a box map: at least half of the visible
    (frame, object) pairs after the first frame are rectangle outlines (`outline_box`)."""
    outlines = [outline_box(masks[t, k]) for t in range(1, masks.shape[0]) for k in range(masks.shape[1])]
    found = [o[1] for o in outlines if o is not None]
    return bool(found) and sum(found) >= 0.5 * len(found)


def boxes_to_masks(masks: np.ndarray) -> np.ndarray:
    """Box-map masks (T, N, H, W) -> filled boxes: in every frame after the first, the box of the object's
    largest piece (its outline; other pieces are colour blur from other outlines); in the first frame, the
    filled object mask is kept unless it is itself an outline."""
    out = np.zeros_like(masks)
    for t, k in zip(*np.nonzero(masks.any(axis=(2, 3))), strict=True):
        found = outline_box(masks[t, k])
        assert found is not None  # the mask is not empty
        (x0, y0, x1, y1), hollow = found
        if t == 0 and not hollow:
            out[t, k] = masks[t, k]
        else:
            out[t, k, y0:y1, x0:x1] = True
    return out


def _has_gaps(masks: np.ndarray) -> bool:
    """Some object is absent in a frame between two frames where it is visible."""
    visible = masks.any(axis=(2, 3))  # (T, N)
    for k in range(visible.shape[1]):
        idx = np.flatnonzero(visible[:, k])
        if idx.size and not visible[idx[0] : idx[-1] + 1, k].all():
            return True
    return False


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


class MissingFile(BenchmarkError):
    """A file a CSV row points at does not exist (`--skip-missing` skips the row); `short` says which."""

    def __init__(self, short: str, hint: str):
        super().__init__(f"{short}{hint}")
        self.short = short


def _resolve(csv: Path, base: Path, root_given: bool, value: str, row: int, column: str) -> Path:
    """The file a CSV cell points at; MissingFile naming the path tried and, for a relative path, what it is
    relative to and a `--root` that would find it (an ancestor folder of the CSV holding it, as MagicMotion's
    repo folder does for its demo CSVs)."""
    if Path(value).is_absolute():
        path = Path(value)
        if not path.is_file():
            raise MissingFile(f"row {row}: {column} file {path} not found", "; fix the CSV or pass --skip-missing")
        return path
    path = base / value
    if path.is_file():
        return path
    where = f"relative to --root {base}" if root_given else f"relative to the CSV's folder {base}"
    ancestors = [p for p in Path(csv).resolve().parents if (p / value).is_file()]
    hint = (f"it exists under {ancestors[0]}: pass --root {ancestors[0]}" if ancestors else
            "pass --root DIR, the folder the CSV's paths start from (for MagicMotion's CSVs, its repo folder)")  # fmt: skip
    raise MissingFile(f"row {row}: {column} file {path} not found", f" ({where}); {hint}, or --skip-missing")


def _sanitize(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def _warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def iter_magicdata(
    csv: Path,
    columns: MagicDataColumns = MagicDataColumns(),
    base_dir: Path | None = None,
    palette: np.ndarray | None = None,
    tolerance: float = 40.0,
    black: int = 40,
    still: bool = False,
    skip_missing: bool = False,
) -> Iterator[SourceClip | SkippedClip]:
    """Yield one `SourceClip` per CSV row (see the module docstring for the columns); with `skip_missing`, a
    row whose files are missing is a `SkippedClip` ("missing_files", with a warning) instead of an error."""
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
    resolve = functools.partial(_resolve, Path(csv), base, base_dir is not None)
    for i, row in enumerate(table.to_dict("records")):
        try:
            yield _load_row(i, row, columns, resolve, palette, tolerance, black, still)
        except MissingFile as e:
            if not skip_missing:
                raise
            _warn(f"{e.short}; row skipped (--skip-missing)")
            yield SkippedClip(id=f"row-{i}", reason="missing_files")


def _decode_trajectory(i: int, path: Path, frames: np.ndarray, palette: np.ndarray | None, tolerance: float,
                       black: int) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Masks (T, K, H, W) and per-object annotation kinds of one trajectory video (mask or box map)."""
    masks = despeckle(decode_mask_video(frames, palette, tolerance, black)[0])
    if not is_box_map(masks):
        return masks, ["mask"] * masks.shape[1]
    if _has_gaps(masks):
        _warn(f"row {i}: {path} is a box map with frames where an object has no box (a sparse-box map?); "
              "those frames are imported as 'object absent'")  # fmt: skip
    return boxes_to_masks(masks), ["box"] * masks.shape[1]


def _load_row(
    i: int, row: dict, columns: MagicDataColumns, resolve, palette: np.ndarray | None,
    tolerance: float, black: int, still: bool,
) -> SourceClip:  # fmt: skip
    traj_paths = [resolve(p.strip(), i, columns.trajectory) for p in _cell(row, columns.trajectory).split(";") if p.strip()]
    if not traj_paths:
        raise BenchmarkError(f"row {i}: empty {columns.trajectory!r}; every row needs a mask-trajectory video")
    video_cell, image_cell = _cell(row, columns.video), _cell(row, columns.image)
    if video_cell:
        path = resolve(video_cell, i, columns.video)
    elif image_cell and still:
        path = resolve(image_cell, i, columns.image)
    else:
        raise BenchmarkError(
            f"row {i}: no {columns.video!r} video; give the real video (--video-column) or pass --still to "
            f"repeat the first frame from {columns.image!r} as a still reference"
        )
    traj = [read_video(p) for p in traj_paths]
    if len({v.shape[:3] for v in traj}) != 1:
        raise BenchmarkError(f"row {i}: trajectory videos differ in length or size {[v.shape[:3] for v in traj]}")
    decoded = [_decode_trajectory(i, p, v, palette, tolerance, black) for p, v in zip(traj_paths, traj, strict=True)]
    masks = np.concatenate([m for m, _ in decoded], axis=1)
    kinds = [kind for _, ks in decoded for kind in ks]
    if video_cell:
        frames, fps = read_video(path), video_info(path).fps
        source = f"magicdata:{video_cell}"
    else:
        image = np.asarray(Image.open(path).convert("RGB"))
        frames, fps = np.repeat(image[None], masks.shape[0], axis=0), video_info(traj_paths[0]).fps
        source = f"magicdata-still:{image_cell}"
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
                      prompt=_cell(row, columns.prompt), source=source,
                      annotations=kinds if "box" in kinds else None)  # fmt: skip


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
    skip_missing: bool = False,
) -> tuple[Benchmark, BuildSummary]:
    """Import a MagicData-style CSV as a benchmark (see `BuildOptions` for the filters); rows skipped for
    missing files (`skip_missing`) are counted in the summary as `missing_files`."""
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
        "skip_missing": skip_missing,
    }
    clips = iter_magicdata(csv, columns, base_dir, palette, tolerance, black, still, skip_missing)
    return write_benchmark(clips, out, "magicdata", opts, build, overwrite=overwrite)
