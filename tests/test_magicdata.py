"""MagicData-style import: colour-coded mask-trajectory videos through lossy H.264, CSV columns, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flashbench.cli import main
from flashbench.data.benchmark import Benchmark, label_map
from flashbench.data.magicdata import MagicDataColumns, build_magicdata, decode_mask_video, parse_palette
from flashbench.data.objects import boxes_from_masks
from flashbench.data.trajectories import object_colors, render_condition
from flashbench.data.validate import validate_benchmark
from flashbench.errors import BenchmarkError
from flashbench.video import read_video, write_video


def moving_disks(t: int = 9, n: int = 3, h: int = 64, w: int = 96) -> np.ndarray:
    """(T, N, H, W): disks of radius 9 moving right; disk 1 overlaps disk 0; disk 2 enters at frame 3."""
    yy, xx = np.mgrid[0:h, 0:w]
    centers = [(20, 20), (32, 30), (45, 70)]
    masks = np.zeros((t, n, h, w), bool)
    for i in range(t):
        for k in range(n):
            cy, cx = centers[k]
            masks[i, k] = (xx - cx - 2 * i) ** 2 + (yy - cy) ** 2 <= 81
    if n > 2:
        masks[:3, 2] = False
    return masks


def visible_parts(masks: np.ndarray) -> np.ndarray:
    n = masks.shape[1]
    labels = np.stack([label_map(m, tuple(range(1, n + 1))) for m in masks])
    return labels[:, None] == np.arange(1, n + 1)[None, :, None, None]


def real_frames(masks: np.ndarray) -> np.ndarray:
    t, n, h, w = masks.shape
    frames = np.full((t, h, w, 3), 110, np.uint8)
    for k in range(n):
        frames[masks[:, k]] = [200 - 40 * k, 60 + 50 * k, 90]
    return frames


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def test_decode_lossy_mask_video(tmp_path):
    masks = moving_disks()
    path = tmp_path / "traj.mp4"
    write_video(path, render_condition(masks, "mask"), fps=8, crf=28)  # lossy, chroma subsampled
    decoded, palette = decode_mask_video(read_video(path))
    assert decoded.shape == masks.shape and len(palette) == 3
    true_colors = object_colors(3).astype(float)
    # Objects come in order of first appearance (then size); match them to the true objects by colour.
    match = [int(np.linalg.norm(true_colors - p.astype(float), axis=1).argmin()) for p in palette]
    assert sorted(match) == [0, 1, 2] and match[-1] == 2  # the late entrant comes last
    for j, k in enumerate(match):
        assert np.linalg.norm(palette[j].astype(float) - true_colors[k]) < 25
        truth = visible_parts(masks)[:, k]
        assert np.mean([iou(decoded[i, j], truth[i]) for i in range(masks.shape[0])]) > 0.85
        assert not decoded[:3, j].any() if k == 2 else decoded[0, j].any()


def test_decode_with_given_palette(tmp_path):
    masks = moving_disks(n=2)
    colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    frames = np.zeros((*masks.shape[:1], *masks.shape[2:], 3), np.uint8)
    for k in range(2):
        frames[masks[:, k]] = colors[k]
    path = tmp_path / "traj.mp4"
    write_video(path, frames, fps=8, crf=28)
    decoded, palette = decode_mask_video(read_video(path), palette=parse_palette("255,0,0;0,0,255"))
    assert np.array_equal(palette, colors)
    truth = visible_parts(masks)
    assert min(iou(decoded[:, k], truth[:, k]) for k in range(2)) > 0.85


def test_parse_palette_errors():
    for bad in ("", "1,2", "300,0,0", "a,b,c"):
        with pytest.raises(BenchmarkError, match="palette"):
            parse_palette(bad)


def make_csv(tmp_path, with_video=True, t_video=None):
    masks = moving_disks()
    write_video(tmp_path / "traj.mp4", render_condition(masks, "mask"), fps=8, crf=23)
    frames = real_frames(moving_disks(t=t_video or masks.shape[0]))
    write_video(tmp_path / "real.mp4", frames, fps=8)
    Image.fromarray(frames[0]).save(tmp_path / "first.png")
    row = {"validation_prompt": "three balls roll right", "validation_images": "first.png",
           "validation_trajectory_maps": "traj.mp4"}  # fmt: skip
    if with_video:
        row["video"] = "real.mp4"
    pd.DataFrame([row]).to_csv(tmp_path / "data.csv", index=False)
    return tmp_path / "data.csv"


def test_build_from_csv_and_validate(tmp_path):
    csv = make_csv(tmp_path)
    bench, summary = build_magicdata(csv, tmp_path / "out")
    assert summary.written == 1
    s = bench.samples[0]
    assert (s.object_count, s.group, s.num_frames, s.fps, s.prompt) == (3, "3", 9, 8.0, "three balls roll right")
    assert s.objects[2].first_visible == 3
    assert bench.meta.build["builder"] == "magicdata" and bench.meta.build["columns"]["video"] == "video"
    assert validate_benchmark(tmp_path / "out", progress=False).ok


def test_still_reference_and_missing_video(tmp_path):
    csv = make_csv(tmp_path, with_video=False)
    with pytest.raises(BenchmarkError, match="--still"):
        build_magicdata(csv, tmp_path / "a")
    bench, _ = build_magicdata(csv, tmp_path / "b", still=True, overwrite=True)
    video = bench.read_video(bench.samples[0])
    assert np.abs(video[-1].astype(int) - video[0].astype(int)).mean() < 2  # a still
    assert bench.meta.build["still_reference"] is True


def test_row_errors(tmp_path):
    csv = make_csv(tmp_path, t_video=7)
    with pytest.raises(BenchmarkError, match="7 frames but the trajectory has 9"):
        build_magicdata(csv, tmp_path / "a")
    with pytest.raises(BenchmarkError, match="no column 'traj'"):
        build_magicdata(csv, tmp_path / "b", columns=MagicDataColumns(trajectory="traj"))
    pd.DataFrame([{"validation_prompt": "x", "validation_trajectory_maps": "missing.mp4"}]).to_csv(
        tmp_path / "bad.csv", index=False
    )
    with pytest.raises(BenchmarkError, match="missing.mp4 not found"):
        build_magicdata(tmp_path / "bad.csv", tmp_path / "c")


def test_cli_magicdata(tmp_path, capsys):
    make_csv(tmp_path)
    df = pd.read_csv(tmp_path / "data.csv").rename(columns={"validation_prompt": "caption"})
    df.to_csv(tmp_path / "renamed.csv", index=False)
    rc = main(["build", "magicdata", "--csv", str(tmp_path / "renamed.csv"), "--out", str(tmp_path / "out"),
               "--prompt-column", "caption", "--min-area", "0.01"])  # fmt: skip
    assert rc == 0 and "written: 1" in capsys.readouterr().out


def moving_ellipses(t: int = 9, h: int = 96, w: int = 128) -> np.ndarray:
    """(T, 2, H, W): two ellipses, one moving right and one moving left (they never touch)."""
    yy, xx = np.mgrid[0:h, 0:w]
    masks = np.zeros((t, 2, h, w), bool)
    for i in range(t):
        masks[i, 0] = ((xx - 30 - 3 * i) / 20) ** 2 + ((yy - 30) / 14) ** 2 <= 1
        masks[i, 1] = ((xx - 95 + 2 * i) / 14) ** 2 + ((yy - 65) / 16) ** 2 <= 1
    return masks


def box_map(masks: np.ndarray, thickness: int = 3) -> np.ndarray:
    """MagicMotion's box trajectory map: filled colour masks in frame 0, box outlines after."""
    frames = render_condition(masks, "mask")
    colors = object_colors(masks.shape[1])
    boxes = boxes_from_masks(masks).astype(int)
    for i in range(1, masks.shape[0]):
        frames[i] = 0
        for k, (x0, y0, x1, y1) in enumerate(boxes[i]):
            ring = np.zeros(masks.shape[2:], bool)
            ring[y0:y1, x0:x1] = True
            ring[y0 + thickness : y1 - thickness, x0 + thickness : x1 - thickness] = False
            frames[i][ring] = colors[k]
    return frames


def write_row_files(folder, masks, traj: np.ndarray) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "traj.mp4", traj, fps=8, crf=23)
    write_video(folder / "real.mp4", real_frames(masks), fps=8)
    return {"validation_prompt": "two balls", "validation_trajectory_maps": "traj.mp4", "video": "real.mp4"}


def test_box_map_is_imported_as_box_trajectory(tmp_path):
    masks = moving_ellipses()
    row = write_row_files(tmp_path, masks, box_map(masks))
    pd.DataFrame([row]).to_csv(tmp_path / "box.csv", index=False)
    bench, _ = build_magicdata(tmp_path / "box.csv", tmp_path / "out")
    sample = bench.samples[0]
    assert [o.annotation for o in sample.objects] == ["box", "box"]
    assert all(o["annotation"] == "box" for o in sample.to_json()["objects"])
    tracks = bench.tracks(sample)
    truth = boxes_from_masks(masks)
    # objects come in order of first appearance, then size: the larger ellipse (object 0) first
    assert np.abs(tracks.boxes[1:] - truth[1:]).max() <= 1.5  # the outlines' boxes, frame after frame
    for i in range(1, masks.shape[0]):  # later masks are the filled boxes, not hollow outlines
        x0, y0, x1, y1 = tracks.boxes[i, 0].astype(int)
        assert tracks.masks[i, 0, y0:y1, x0:x1].all() and tracks.masks[i, 0].sum() == (x1 - x0) * (y1 - y0)
    assert iou(tracks.masks[0, 0], masks[0, 0]) > 0.85  # frame 0 keeps the real filled mask (the prompt)
    assert validate_benchmark(tmp_path / "out", progress=False).ok

    row = write_row_files(tmp_path / "m", masks, render_condition(masks, "mask"))  # the same objects as a mask map
    pd.DataFrame([row]).to_csv(tmp_path / "m" / "mask.csv", index=False)
    bench, _ = build_magicdata(tmp_path / "m" / "mask.csv", tmp_path / "out-mask")
    assert [o.annotation for o in bench.samples[0].objects] == ["mask", "mask"]
    assert "annotation" not in json.dumps(bench.samples[0].to_json())  # old manifests read back the same


def test_sparse_box_map_warns(tmp_path, capsys):
    masks = moving_ellipses()
    traj = box_map(masks)
    traj[3:6] = 0  # no boxes on frames 3-5
    row = write_row_files(tmp_path, masks, traj)
    pd.DataFrame([row]).to_csv(tmp_path / "sparse.csv", index=False)
    bench, _ = build_magicdata(tmp_path / "sparse.csv", tmp_path / "out")
    tracks = bench.tracks(bench.samples[0])
    assert np.isnan(tracks.boxes[3:6]).all() and not np.isnan(tracks.boxes[6:]).any()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(err) == 1 and "sparse-box map" in err[0] and "traj.mp4" in err[0]


def test_missing_files_hint_root_and_skip(tmp_path, capsys):
    """MagicMotion's layout: the CSV sits in magicmotion/validation_args/demo/, its paths start at the repo."""
    repo = tmp_path / "MagicMotion"
    masks = moving_ellipses()
    row = write_row_files(repo / "assets", masks, render_condition(masks, "mask"))
    row = {**row, "validation_trajectory_maps": "assets/traj.mp4", "video": "assets/real.mp4"}
    missing = {**row, "validation_trajectory_maps": "assets/gone.mp4"}
    csv = repo / "magicmotion" / "validation_args" / "demo" / "demo.csv"
    csv.parent.mkdir(parents=True)
    pd.DataFrame([row, missing]).to_csv(csv, index=False)
    out = tmp_path / "out"

    assert main(["build", "magicdata", "--csv", str(csv), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    tried = csv.parent / "assets" / "traj.mp4"
    assert err == (f"error: row 0: validation_trajectory_maps file {tried} not found (relative to the CSV's "
                   f"folder {csv.parent}); it exists under {repo}: pass --root {repo}, or --skip-missing")  # fmt: skip
    assert not out.exists()

    assert main(["build", "magicdata", "--csv", str(csv), "--out", str(out), "--root", str(repo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"row 1: validation_trajectory_maps file {repo / 'assets' / 'gone.mp4'} not found" in err
    assert f"relative to --root {repo}" in err and not out.exists()

    args = ["build", "magicdata", "--csv", str(csv), "--out", str(out), "--root", str(repo), "--skip-missing"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "samples seen: 2, written: 1" in captured.out and "missing_files: 1" in captured.out
    assert "warning: row 1: validation_trajectory_maps file" in captured.err and "row skipped" in captured.err
    bench = Benchmark.load(out)
    assert len(bench) == 1 and bench.meta.build["summary"]["dropped_samples"] == {"missing_files": 1}


def test_failed_build_leaves_nothing_and_a_retry_works(tmp_path):
    masks = moving_ellipses()
    good = write_row_files(tmp_path, masks, render_condition(masks, "mask"))
    bad = {**good, "validation_trajectory_maps": "short.mp4"}
    write_video(tmp_path / "short.mp4", render_condition(masks[:5], "mask"), fps=8)
    pd.DataFrame([good, bad]).to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "out"
    with pytest.raises(BenchmarkError, match="row 1: video has 9 frames but the trajectory has 5"):
        build_magicdata(tmp_path / "data.csv", out)  # row 0 was written before row 1 failed
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".") or p.name == "out") == []
    pd.DataFrame([good]).to_csv(tmp_path / "data.csv", index=False)
    bench, _ = build_magicdata(tmp_path / "data.csv", out)  # same --out, no --overwrite needed
    assert len(bench) == 1 and validate_benchmark(out, progress=False).ok
    before = (out / "meta.json").read_text()
    pd.DataFrame([good, bad]).to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(BenchmarkError, match="trajectory has 5"):
        build_magicdata(tmp_path / "data.csv", out, overwrite=True)
    assert (out / "meta.json").read_text() == before and validate_benchmark(out, progress=False).ok  # untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
