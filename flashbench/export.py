"""`flashbench export`: a benchmark's generator inputs, for generators that run elsewhere.

Each sample's input is the `GenerationRequest` that `flashbench generate` would build (first frame, prompt,
trajectory condition, per-sample seed from the same run seed), written as files:

- format ``folder``: the benchmark's own frames, size and fps.
      OUT/samples/<id>/first_frame.png   lossless first frame
      OUT/samples/<id>/trajectory.mp4    condition map (flashbench.data.trajectories), sample fps
      OUT/samples/<id>/objects.json      the target masks and boxes (objects.json format)
- format ``magicmotion``: MagicMotion's input format (CogVideoX-5B-I2V: 49 frames, 480x720, 8 fps).
      OUT/images/<id>.png                first frame resized to 480x720
      OUT/trajectories/<id>.mp4          condition map of 49 frames at 480x720, 8 fps (see `magicmotion_inputs`)
      OUT/objects/<id>.json              the target masks and boxes at the benchmark's frames and size
      OUT/magicmotion.csv                MagicMotion's validation CSV (absolute paths; output_path -> OUT/videos)

Both write OUT/index.json (settings, provenance, one record per sample with paths relative to OUT) and
OUT/index.csv (the same records, flat). The videos are expected back at OUT/videos/<id>.mp4, where
`flashbench generate --generator "videos dir=OUT/videos"` scores them.

Resumable: index.json is written first (with "complete": false) and again when every sample is done; a rerun
with the same settings skips samples whose files exist (each file is written to a temp name, then renamed),
and a rerun with other settings is refused. OUT must be new, empty or an earlier export (it holds index.json),
and outside the benchmark, so export never overwrites files it did not write.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flashbench import atomic
from flashbench.atomic import atomic_path
from flashbench.errors import FlashBenchError
from flashbench.generators.base import CONDITIONS

if TYPE_CHECKING:
    from flashbench.data.benchmark import Benchmark

EXPORT_FORMATS: tuple[str, ...] = ("magicmotion", "folder")
INDEX_JSON = "index.json"
INDEX_CSV = "index.csv"
OUTPUTS = "videos"
FORMAT_VERSION = 1

# MagicMotion (quanhaol/MagicMotion, magicmotion/inference.py): CogVideoX-5B-I2V, 49 frames at 480x720, 8 fps
MAGICMOTION_FRAMES = 49
MAGICMOTION_SIZE = (480, 720)
MAGICMOTION_FPS = 8.0
MAGICMOTION_CSV = "magicmotion.csv"
MAGICMOTION_COLUMNS = (
    "validation_prompt", "validation_images", "validation_trajectory_maps", "output_path", "controlnet_weights", "seed",
)
INDEX_COLUMNS = (
    "id", "prompt", "seed", "group", "object_count", "num_frames", "fps", "height", "width", "first_frame",
    "trajectory_map", "objects", "output",
)


class ExportError(FlashBenchError):
    """An export folder belongs to other settings, or the export arguments are invalid."""


def resample_tracks(masks: np.ndarray, boxes: np.ndarray, num_frames: int, size: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Target masks (T, N, H, W) and boxes (T, N, 4) mapped onto `num_frames` frames of `size` = (h, w).

    Time: frame i of the result is source frame uniform_indices(T, num_frames)[i], so the trajectory spans the
    same clip (first and last frames kept). Space: masks by nearest neighbour, boxes scaled by (w/W, h/H);
    NaN (absent) boxes stay NaN.
    """
    from flashbench.video import resize_masks, uniform_indices

    t, _, h, w = masks.shape
    idx = uniform_indices(t, num_frames)
    scale = np.array([size[1] / w, size[0] / h, size[1] / w, size[0] / h], dtype=np.float32)
    return resize_masks(masks[idx], size), boxes[idx] * scale


def magicmotion_inputs(first_frame: np.ndarray, masks: np.ndarray, boxes: np.ndarray, condition: str
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(first frame (480, 720, 3), condition map (49, 480, 720, 3)) in MagicMotion's input format.

    The sample is stretched to 480x720 (CogVideoX-5B-I2V's only size) and its clip to 49 frames (see
    `resample_tracks`); the map is rendered at that size, so mask edges and outlines stay crisp: mask maps
    are colour masks on black, box maps the frame-0 masks then box outlines, sparse-box maps outlines every
    8th frame (flashbench.data.trajectories).
    """
    from flashbench.data.trajectories import render_condition
    from flashbench.video import resize_frames

    masks49, boxes49 = resample_tracks(masks, boxes, MAGICMOTION_FRAMES, MAGICMOTION_SIZE)
    image = resize_frames(np.array(first_frame, dtype=np.uint8)[None], MAGICMOTION_SIZE)[0]
    return image, render_condition(masks49, condition, boxes49)


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(Path(path)) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """RFC 4180 CSV (quoted where needed, so prompts may hold commas), as pandas.read_csv reads it."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(Path(path), buffer.getvalue())


def _settings(bench: Benchmark, fmt: str, condition: str, seed: int, limit: int | None) -> dict:
    return {"format_version": FORMAT_VERSION, "format": fmt, "condition": condition, "seed": int(seed),
            "limit": limit, "bench": {"root": str(bench.root.resolve()), "name": bench.meta.name,
                                      "content_hash": bench.meta.content_hash}}


def _check_out(out: Path, bench: Benchmark) -> None:
    """Refuse an --out that is a file, lies in the benchmark, or holds files other than an earlier export."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file; give a new or empty folder")
    root, target = bench.root.resolve(), out.resolve()
    if target == root or root in target.parents:
        raise ExportError(f"--out {out} is inside the benchmark {bench.root}; export to a folder outside it")
    if out.is_dir() and not (out / INDEX_JSON).is_file() and any(out.iterdir()):
        raise ExportError(f"--out {out} is not empty and holds no {INDEX_JSON} of an earlier export; "
                          "give a new or empty folder")


def _check_existing(out: Path, settings: dict) -> None:
    from flashbench.run_files import read_json

    path = out / INDEX_JSON
    if not path.is_file():
        return
    existing = read_json(path, "delete the export folder or choose another --out")
    if not isinstance(existing, dict) or "format_version" not in existing:
        raise ExportError(f"{path} was not written by flashbench export; give a new or empty folder as --out")
    for key in ("format", "condition", "seed", "limit"):
        if existing.get(key) != settings[key]:
            raise ExportError(f"{out} was exported with {key} {existing.get(key)!r}, not {settings[key]!r}; "
                              "use another --out (or delete it)")
    if (existing.get("bench") or {}).get("content_hash") != settings["bench"]["content_hash"]:
        raise ExportError(f"{out} was exported from other benchmark content; use another --out for this benchmark")


def export(bench: Benchmark, out: Path, fmt: str, condition: str = "mask", seed: int = 0, limit: int | None = None,
           progress: bool = True) -> dict:
    """Write the inputs of every sample (see the module docstring); returns the index.json record."""
    from tqdm import tqdm

    from flashbench import provenance
    from flashbench.data.trajectories import render_condition
    from flashbench.run_files import write_json
    from flashbench.runner import build_request, selected_samples
    from flashbench.video import write_video

    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if condition not in CONDITIONS:
        raise ExportError(f"unknown condition {condition!r}: use one of {', '.join(CONDITIONS)}")
    out = Path(out)
    settings = _settings(bench, fmt, condition, seed, limit)
    _check_out(out, bench)
    _check_existing(out, settings)
    index = {**settings, "complete": False, "created": provenance.now(), "provenance": provenance.collect(),
             "outputs": OUTPUTS, "samples": []}
    out.mkdir(parents=True, exist_ok=True)
    (out / OUTPUTS).mkdir(exist_ok=True)
    write_json(out / INDEX_JSON, index)
    records, mm_rows = [], []
    for sample in tqdm(selected_samples(bench, limit), desc=f"export {fmt}", unit="sample", disable=not progress):
        request = build_request(bench, sample, condition, seed)
        if fmt == "magicmotion":
            paths = {"first_frame": f"images/{sample.id}.png", "trajectory_map": f"trajectories/{sample.id}.mp4",
                     "objects": f"objects/{sample.id}.json"}
        else:
            folder = f"samples/{sample.id}"
            paths = {"first_frame": f"{folder}/first_frame.png", "trajectory_map": f"{folder}/trajectory.mp4",
                     "objects": f"{folder}/objects.json"}
        if not all((out / p).is_file() for p in paths.values()):
            if fmt == "magicmotion":
                image, tmap = magicmotion_inputs(request.first_frame, request.masks, request.boxes, condition)
                fps = MAGICMOTION_FPS
            else:
                image, fps = request.first_frame, sample.fps
                tmap = render_condition(request.masks, condition, request.boxes)
            atomic.write_bytes(out / paths["objects"], bench.path(sample, "objects").read_bytes())
            write_png(out / paths["first_frame"], image)
            write_video(out / paths["trajectory_map"], tmap, fps)
        output = f"{OUTPUTS}/{sample.id}.mp4"
        records.append({"id": sample.id, "prompt": sample.prompt, "seed": request.seed, "group": sample.group,
                        "object_count": sample.object_count, "num_frames": sample.num_frames, "fps": sample.fps,
                        "height": sample.height, "width": sample.width, **paths, "output": output})
        if fmt == "magicmotion":
            mm_rows.append({"validation_prompt": sample.prompt,
                            "validation_images": str((out / paths["first_frame"]).resolve()),
                            "validation_trajectory_maps": str((out / paths["trajectory_map"]).resolve()),
                            "output_path": str((out / output).resolve()), "controlnet_weights": 1.0,
                            "seed": request.seed})
    if fmt == "magicmotion":
        write_csv(out / MAGICMOTION_CSV, MAGICMOTION_COLUMNS, mm_rows)
    write_csv(out / INDEX_CSV, INDEX_COLUMNS, records)
    index.update(complete=True, samples=records)
    write_json(out / INDEX_JSON, index)
    return index
