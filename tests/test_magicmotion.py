"""The MagicMotion wrapper against a fake installation that mimics quanhaol/MagicMotion's interface: the script
`magicmotion/inference.py` with its argument names, the validation CSV read with pandas, ckpts/stage*/ files,
output written to each row's output_path (rows whose output exists are skipped, as the real script does).

The fake writes 49 frames of 480x720 whose grey level encodes the frame index (5 * i), so the test can check
the 49 -> T frame mapping exactly; it logs its argv and what it read to calls.jsonl in the installation.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from harness_bench import make_bench
from PIL import Image
from scipy import ndimage

from baselines.magicmotion import CHECKPOINTS, MODEL_ID, MagicMotion, inference_command
from flashbench.cli import main
from flashbench.data.trajectories import object_colors
from flashbench.errors import GenerationError
from flashbench.export import MAGICMOTION_COLUMNS, resample_tracks
from flashbench.generators.base import CONDITIONS
from flashbench.run_files import read_jsonl
from flashbench.runner import build_request, generate, sample_seed
from flashbench.video import read_video, resize_frames, uniform_indices

FAKE_SCRIPT = textwrap.dedent('''
    """Fake MagicMotion inference.py: same arguments and CSV; output frame i is grey 5 * i."""
    import argparse, json, os, sys
    from fractions import Fraction

    import av
    import numpy as np
    import pandas as pd

    p = argparse.ArgumentParser()
    p.add_argument("--pretrained_model_name_or_path", required=True)
    p.add_argument("--pretrained_controlnet_path", default=None)
    p.add_argument("--pretrained_perception_head_path", default="")
    p.add_argument("--use_perception_head", action="store_true")
    p.add_argument("--validation_args_csv", default=None)
    p.add_argument("--num_validation_videos", type=int, default=1)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=720)
    p.add_argument("--guidance_scale", type=float, default=6)
    args = p.parse_args()
    if os.environ.get("FAKE_MAGICMOTION_FAIL"):
        print("loading transformer...")
        sys.exit("torch.OutOfMemoryError: CUDA out of memory")
    assert os.path.isfile(args.pretrained_controlnet_path), args.pretrained_controlnet_path  # torch.load
    table = pd.read_csv(args.validation_args_csv)
    for row in table.to_dict("records"):
        with av.open(row["validation_trajectory_maps"]) as c:
            maps = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        with open(os.path.join(os.path.dirname(__file__), "..", "calls.jsonl"), "a") as log:
            log.write(json.dumps({"script": sys.argv[0], "argv": sys.argv[1:], "row": row, "map": [len(maps), *maps[0].shape]}) + "\\n")
        if os.path.exists(row["output_path"]):
            continue
        os.makedirs(os.path.dirname(row["output_path"]), exist_ok=True)
        with av.open(row["output_path"], "w") as c:
            s = c.add_stream("libx264", rate=Fraction(8))
            s.width, s.height, s.pix_fmt = args.width, args.height, "yuv420p"
            for i in range(49):
                frame = np.full((args.height, args.width, 3), 5 * i, np.uint8)
                c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            c.mux(s.encode())
''')


def _install(root: Path, conditions=CONDITIONS) -> Path:
    (root / "magicmotion").mkdir(parents=True)
    (root / "magicmotion" / "inference.py").write_text(FAKE_SCRIPT)
    for condition in conditions:
        for rel in CHECKPOINTS[condition]:
            if rel is not None:
                (root / "ckpts" / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / "ckpts" / rel).write_bytes(b"weights")
    return root


def _calls(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]


def _arg(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_bench(tmp_path_factory.mktemp("mm") / "bench", counts=(1, 2), frames=6, size=64)


def test_box_run_end_to_end_writes_magicmotion_inputs_and_maps_frames_back(bench, tmp_path):
    root = _install(tmp_path / "MagicMotion")
    work = tmp_path / "work"
    spec = f"baselines.magicmotion:MagicMotion root={root} work_dir={work}"
    summary = generate(bench, tmp_path / "run", spec, condition="box", progress=False)
    assert summary.generated == 2 and summary.failed_total == 0
    records = {r["id"]: r for r in read_jsonl(tmp_path / "run" / "generation.jsonl")}
    assert {r["status"] for r in records.values()} == {"ok"} and {r["nfe"] for r in records.values()} == {100}
    calls = {Path(c["row"]["output_path"]).stem: c for c in _calls(root)}
    for sample in bench.samples:
        request = build_request(bench, sample, "box", 0)
        # the command line of the repo's inference_box.sh
        argv = calls[sample.id]["argv"]
        assert calls[sample.id]["script"] == "magicmotion/inference.py"
        assert _arg(argv, "--pretrained_model_name_or_path") == MODEL_ID
        assert _arg(argv, "--pretrained_controlnet_path") == str((root / "ckpts/stage2/box.pt").resolve())
        assert _arg(argv, "--pretrained_perception_head_path").endswith("stage2/box_perception_head.pt")
        assert "--use_perception_head" in argv
        assert (_arg(argv, "--height"), _arg(argv, "--width"), _arg(argv, "--guidance_scale")) == ("480", "720", "6.0")
        # the CSV: MagicMotion's columns in order, the sample's prompt and per-sample seed
        columns, rows = _read_csv(work / sample.id / "magicmotion.csv")
        assert tuple(columns) == MAGICMOTION_COLUMNS and len(rows) == 1
        row = rows[0]
        assert row["validation_prompt"] == sample.prompt and float(row["controlnet_weights"]) == 1.0
        assert int(row["seed"]) == request.seed == sample_seed(0, sample.id)
        image = np.asarray(Image.open(row["validation_images"]).convert("RGB"))
        assert np.array_equal(image, resize_frames(np.array(request.first_frame)[None], (480, 720))[0])
        # the box map: 49 frames of 480x720; frame 0 = colour masks, later frames = box outlines on black
        tmap = read_video(Path(row["validation_trajectory_maps"]))
        assert tmap.shape == (49, 480, 720, 3) and calls[sample.id]["map"] == [49, 480, 720, 3]
        masks49, boxes49 = resample_tracks(request.masks, request.boxes, 49, (480, 720))
        colors = object_colors(sample.object_count).astype(int)
        for k in range(sample.object_count):
            inside = ndimage.binary_erosion(masks49[0, k], iterations=4)
            assert np.abs(tmap[0][inside].astype(int) - colors[k]).mean() < 12
            for j in (1, 30, 48):
                x0, y0, x1, y1 = np.round(boxes49[j, k]).astype(int)
                assert np.abs(tmap[j, y0:y0 + 4, x0 + 8:x1 - 8].astype(int) - colors[k]).mean() < 25  # top edge
                assert tmap[j, y0 + 10:y1 - 10, x0 + 10:x1 - 10].max() < 20  # inside: black
            # the box follows the clip in time: map frame j shows source frame uniform_indices(6, 49)[j]
            assert uniform_indices(6, 49)[48] == 5 and boxes49[48, k, 0] == request.boxes[5, k, 0] * 720 / 64
        # the video back: 49 grey levels 5i mapped onto the sample's 6 frames, resized to 64x64
        video = read_video(tmp_path / "run" / "videos" / f"{sample.id}.mp4")
        assert video.shape == (6, 64, 64, 3)
        expected = 5 * uniform_indices(49, 6)
        assert np.abs(video.reshape(6, -1).mean(axis=1) - expected).max() < 2.5  # neighbours are 5 apart


def test_mask_condition_uses_the_stage1_checkpoint_and_mask_maps(bench, tmp_path):
    root = _install(tmp_path / "MagicMotion", conditions=("mask",))
    generator = MagicMotion(root=str(root), work_dir=str(tmp_path / "work"))
    sample = bench.samples[0]
    request = build_request(bench, sample, "mask", 0)
    video = generator.generate(request)
    assert video.frames.shape == (6, 64, 64, 3) and video.nfe == 100 and video.denoise_seconds > 0
    assert video.extra["fitted"] == ["49 frames resampled uniformly to 6", "480x720 resized to 64x64"]
    (call,) = _calls(root)
    assert _arg(call["argv"], "--pretrained_controlnet_path").endswith("ckpts/stage1/mask.pt")
    assert "--use_perception_head" not in call["argv"]
    tmap = read_video(Path(call["row"]["validation_trajectory_maps"]))
    masks49, _ = resample_tracks(request.masks, request.boxes, 49, (480, 720))
    inside = ndimage.binary_erosion(masks49[30, 0], iterations=4)
    assert np.abs(tmap[30][inside].astype(int) - object_colors(1)[0]).mean() < 12  # masks on every frame
    assert tmap[30][~ndimage.binary_dilation(masks49[30, 0], iterations=4)].max() < 20
    # box checkpoints are absent in this installation: a one-line per-sample error naming the file
    with pytest.raises(GenerationError, match=r"stage2/box\.pt .* missing"):
        generator.generate(build_request(bench, sample, "box", 0))
    # a guidance of 1 turns CFG off in MagicMotion's pipeline: one network call per step
    assert MagicMotion(root=str(root), guidance=1.0).nfe == 50


def test_missing_installation_checkpoints_or_failing_script_are_one_line_errors(bench, tmp_path):
    assert set(CHECKPOINTS) == set(CONDITIONS)  # one stage checkpoint per condition flashbench knows
    with pytest.raises(GenerationError, match="no MagicMotion installation at .*git clone"):
        MagicMotion(root=str(tmp_path / "nowhere"))
    bare = tmp_path / "bare"
    (bare / "magicmotion").mkdir(parents=True)
    (bare / "magicmotion" / "inference.py").write_text(FAKE_SCRIPT)
    with pytest.raises(GenerationError, match="no MagicMotion checkpoints in .*huggingface-cli download"):
        MagicMotion(root=str(bare))
    root = _install(tmp_path / "MagicMotion")
    with pytest.raises(GenerationError, match="python=.*not an executable"):
        MagicMotion(root=str(root), python=str(tmp_path / "nopython"))
    with pytest.raises(GenerationError, match="model_path=.*not a folder"):
        MagicMotion(root=str(root), model_path=str(tmp_path / "nomodel"))
    generator = MagicMotion(root=str(root))
    request = build_request(bench, bench.samples[0], "mask", 0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_MAGICMOTION_FAIL", "1")
        with pytest.raises(GenerationError, match="exited with 1: torch.OutOfMemoryError: CUDA out of memory") as e:
            generator.generate(request)
    assert "\n" not in str(e.value)


def test_export_then_one_magicmotion_run_then_videos_matches_the_per_sample_wrapper(bench, tmp_path, capsys):
    root = _install(tmp_path / "MagicMotion")
    out = tmp_path / "export"
    assert main(["export", "--bench", str(bench.root), "--format", "magicmotion", "--out", str(out),
                 "--condition", "sparse_box", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "magicmotion/inference.py" in printed and "stage3/sparse_box.pt" in printed
    columns, rows = _read_csv(out / "magicmotion.csv")
    assert tuple(columns) == MAGICMOTION_COLUMNS
    assert [int(r["seed"]) for r in rows] == [sample_seed(3, s.id) for s in bench.samples]
    assert [Path(r["output_path"]) for r in rows] == [(out / "videos" / f"{s.id}.mp4").resolve() for s in bench.samples]
    # one MagicMotion run over the whole CSV (the model is loaded once), as a user would run it
    command = inference_command(out / "magicmotion.csv", "sparse_box", (root / "ckpts").resolve(), python=sys.executable)
    subprocess.run(command, cwd=root, check=True, capture_output=True)
    assert all(c["map"] == [49, 480, 720, 3] for c in _calls(root))
    generate(bench, tmp_path / "videos-run", f"flashbench.generators.videos:Videos dir={out / 'videos'}",
             condition="sparse_box", seed=3, progress=False)
    generate(bench, tmp_path / "mm-run", f"baselines.magicmotion:MagicMotion root={root}", condition="sparse_box",
             seed=3, progress=False)
    records = read_jsonl(tmp_path / "videos-run" / "generation.jsonl")
    assert all(r["status"] == "ok" for r in records)
    assert records[0]["warnings"] == [f"{bench.samples[0].id}.mp4: 49 frames resampled uniformly to 6",
                                      f"{bench.samples[0].id}.mp4: 480x720 resized to 64x64"]
    for sample in bench.samples:
        a = (tmp_path / "videos-run" / "videos" / f"{sample.id}.mp4").read_bytes()
        assert a == (tmp_path / "mm-run" / "videos" / f"{sample.id}.mp4").read_bytes()
