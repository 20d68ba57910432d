"""DAVIS-2016/2017 importer.

Layout: ROOT/JPEGImages/<resolution>/<seq>/00000.jpg ... and ROOT/Annotations/<resolution>/<seq>/00000.png ...
Annotations are palette PNGs (index k = object k, 0 = background, 255 = void, read as background), or
binary 0/255 PNGs (DAVIS-2016: 255 = the one object). A sequence whose indices are only {0, 255} is read
as binary. Every frame must have its annotation (same file stems, same size).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from flashbench.data.benchmark import Benchmark
from flashbench.data.build import BuildOptions, BuildSummary, SourceClip, write_benchmark
from flashbench.errors import BenchmarkError

VOID = 255
DAVIS_FPS = 24.0
_FRAME_EXTS = (".jpg", ".jpeg", ".png")


def list_sequences(root: Path, resolution: str = "480p") -> list[str]:
    """Sequence names that have a frame folder, sorted."""
    frames_dir = Path(root) / "JPEGImages" / resolution
    if not frames_dir.is_dir():
        raise BenchmarkError(f"{frames_dir} not found: --root must be a DAVIS folder with JPEGImages/{resolution}/<seq>/")
    return sorted(p.name for p in frames_dir.iterdir() if p.is_dir())


def _read_label_png(path: Path) -> np.ndarray:
    image = Image.open(path)
    if image.mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8)
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * 255
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"))
        if (rgb == rgb[..., :1]).all():
            return rgb[..., 0].copy()
    raise BenchmarkError(f"{path}: annotation mode {image.mode} is not a palette, grey or binary PNG; convert it")


def read_davis_labels(paths: list[Path]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read a sequence's annotation PNGs: (T, H, W) uint8 labels (0 = background) and the object labels found."""
    labels = [_read_label_png(p) for p in paths]
    shapes = {lab.shape for lab in labels}
    if len(shapes) != 1:
        raise BenchmarkError(f"{paths[0].parent}: annotations have different sizes {sorted(shapes)}; fix the folder")
    labels = np.stack(labels)
    values = set(np.unique(labels).tolist())
    if values <= {0, VOID}:  # DAVIS-2016 binary: 255 is the object
        labels = (labels == VOID).astype(np.uint8)
    else:  # DAVIS-2017 palette: 255 is void
        labels[labels == VOID] = 0
    ids = tuple(int(v) for v in np.unique(labels) if v != 0)
    return labels, ids


def _frame_files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in exts)


def load_sequence(
    root: Path, name: str, resolution: str = "480p", fps: float = DAVIS_FPS, prompt: str | None = None
) -> SourceClip:
    """Read one DAVIS sequence at its native length and size; masks are (T, N, H, W) for its N objects."""
    root = Path(root)
    frame_dir = root / "JPEGImages" / resolution / name
    ann_dir = root / "Annotations" / resolution / name
    for folder in (frame_dir, ann_dir):
        if not folder.is_dir():
            raise BenchmarkError(f"DAVIS sequence {name}: {folder} not found; fix the folder or leave it out with --sequences")
    frame_paths = _frame_files(frame_dir, _FRAME_EXTS)
    ann_paths = _frame_files(ann_dir, (".png",))
    if not frame_paths:
        raise BenchmarkError(f"DAVIS sequence {name}: no frames in {frame_dir}")
    if len(frame_paths) != len(ann_paths) or [p.stem for p in frame_paths] != [p.stem for p in ann_paths]:
        raise BenchmarkError(
            f"DAVIS sequence {name}: {len(frame_paths)} frames but {len(ann_paths)} annotations (or different "
            f"file names) in {ann_dir}; every frame needs its mask: fix the folder or leave it out with --sequences"
        )
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in frame_paths]
    if len({f.shape for f in frames}) != 1:
        raise BenchmarkError(f"DAVIS sequence {name}: frames have different sizes; fix the folder")
    frames = np.stack(frames)
    labels, ids = read_davis_labels(ann_paths)
    if labels.shape[1:] != frames.shape[1:3]:
        raise BenchmarkError(
            f"DAVIS sequence {name}: masks are {labels.shape[1]}x{labels.shape[2]} but frames are "
            f"{frames.shape[1]}x{frames.shape[2]}; use the annotations of the same --resolution"
        )
    masks = labels[:, None] == np.array(ids, dtype=np.uint8).reshape(1, -1, 1, 1)
    return SourceClip(
        id=name,
        frames=frames,
        masks=masks,
        fps=fps,
        prompt=prompt if prompt is not None else name.replace("-", " ").replace("_", " "),
        source=f"davis:{resolution}/{name}",
    )


def iter_davis(
    root: Path,
    resolution: str = "480p",
    sequences: list[str] | None = None,
    captions: dict[str, str] | None = None,
    fps: float = DAVIS_FPS,
) -> Iterator[SourceClip]:
    """Load the sequences one at a time (so memory holds one sequence)."""
    available = list_sequences(root, resolution)
    names = sequences or available
    missing = sorted(set(names) - set(available))
    if missing:
        raise BenchmarkError(f"sequences not in {root}/JPEGImages/{resolution}: {', '.join(missing)}")
    for name in names:
        yield load_sequence(root, name, resolution, fps, (captions or {}).get(name))


def read_captions(path: Path) -> dict[str, str]:
    """A JSON object mapping sequence name -> prompt."""
    try:
        captions = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BenchmarkError(f"cannot read captions {path}: {e}; give a JSON object {{sequence: prompt}}") from None
    if not isinstance(captions, dict) or not all(isinstance(v, str) for v in captions.values()):
        raise BenchmarkError(f"{path}: captions must be a JSON object {{sequence: prompt}}")
    return captions


def build_davis(
    root: Path,
    out: Path,
    opts: BuildOptions | None = None,
    resolution: str = "480p",
    sequences: list[str] | None = None,
    captions: Path | None = None,
    source_fps: float = DAVIS_FPS,
    overwrite: bool = False,
) -> tuple[Benchmark, BuildSummary]:
    """Import a DAVIS folder as a benchmark (see `BuildOptions` for the filters)."""
    opts = opts or BuildOptions()
    names = sequences or list_sequences(root, resolution)
    build = {
        "builder": "davis",
        "root": str(Path(root).resolve()),
        "resolution": resolution,
        "sequences": names,
        "captions": str(captions) if captions else None,
        "source_fps": source_fps,
    }
    caption_map = read_captions(captions) if captions else None
    clips = iter_davis(root, resolution, names, caption_map, source_fps)
    return write_benchmark(clips, out, "davis", opts, build, overwrite=overwrite, total=len(names))
