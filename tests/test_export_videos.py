"""`flashbench export` (folder format) and the `videos` generator: scoring videos made elsewhere.

The round trip on ground-truth videos must reproduce the `ground-truth` generator exactly: the same decoded
frames, hence byte-identical run videos, hence identical metrics; and a lossy user file is scored as it decodes,
never as a re-encoded copy (checked once with the real evaluate on a tiny synthetic benchmark; needs the cached
metric weights, skipped with the hint otherwise).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from harness_bench import make_bench
from PIL import Image

from flashbench.cli import main
from flashbench.data.objects import read_objects
from flashbench.data.trajectories import render_condition
from flashbench.errors import GenerationError, WeightsError
from flashbench.export import INDEX_COLUMNS, ExportError, export
from flashbench.generators.videos import Videos, fit_video
from flashbench.run_files import read_jsonl
from flashbench.runner import build_request, generate, sample_seed
from flashbench.video import read_video, uniform_indices, write_video

VIDEOS = "flashbench.generators.videos:Videos"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_bench(tmp_path_factory.mktemp("export") / "bench", counts=(1, 2, 2), frames=6, size=64)


def _fill_with_ground_truth(bench, index: dict, out: Path) -> None:
    """What a user does after export: put each generated video where index.json says (here: the real ones)."""
    for record in index["samples"]:
        shutil.copyfile(bench.path(bench.get(record["id"]), "video"), out / record["output"])


def test_folder_export_writes_every_sample_input(bench, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", "--bench", str(bench.root), "--format", "folder", "--out", str(out),
                 "--condition", "box", "--seed", "7"]) == 0
    assert 'videos dir=' in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert index["complete"] and index["format"] == "folder" and index["condition"] == "box"
    assert index["bench"]["content_hash"] == bench.meta.content_hash and "git_commit" in index["provenance"]
    with open(out / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [s.id for s in bench.samples] == [r["id"] for r in index["samples"]]
    assert tuple(rows[0]) == INDEX_COLUMNS
    for sample, record in zip(bench.samples, index["samples"], strict=True):
        request = build_request(bench, sample, "box", 7)
        assert record["seed"] == sample_seed(7, sample.id) and record["prompt"] == sample.prompt
        assert record["output"] == f"videos/{sample.id}.mp4" and (out / "videos").is_dir()
        first = np.asarray(Image.open(out / record["first_frame"]).convert("RGB"))
        assert np.array_equal(first, request.first_frame)  # lossless
        tmap = read_video(out / record["trajectory_map"])
        expected = render_condition(request.masks, "box", request.boxes)
        assert tmap.shape == expected.shape == (6, 64, 64, 3)
        assert np.abs(tmap.astype(int) - expected).mean() < 6  # H.264 of a sharp-edged map
        assert np.array_equal(read_objects(out / record["objects"]).masks, request.masks)
    # a rerun with other settings is refused; with the same ones it keeps the files
    with pytest.raises(ExportError, match="condition 'box', not 'mask'"):
        export(bench, out, "folder", condition="mask", seed=7, progress=False)
    before = (out / index["samples"][0]["trajectory_map"]).stat().st_mtime_ns
    export(bench, out, "folder", condition="box", seed=7, progress=False)
    assert (out / index["samples"][0]["trajectory_map"]).stat().st_mtime_ns == before
    with pytest.raises(SystemExit):  # argparse: formats come from EXPORT_FORMATS
        main(["export", "--bench", str(bench.root), "--format", "zip", "--out", str(tmp_path / "x")])


def test_videos_round_trip_of_ground_truth_equals_the_ground_truth_generator(bench, tmp_path):
    out = tmp_path / "export"
    index = export(bench, out, "folder", progress=False)
    _fill_with_ground_truth(bench, index, out)
    generate(bench, tmp_path / "gt", "ground-truth", progress=False)
    generate(bench, tmp_path / "videos", f"{VIDEOS} dir={out / 'videos'}", progress=False)
    for sample in bench.samples:
        request = build_request(bench, sample, "mask", 0)
        ours = Videos(dir=str(out / "videos")).generate(request)
        assert np.array_equal(ours.frames, bench.read_video(sample)) and "warnings" not in ours.extra
        assert ours.extra["timing"].startswith("not measured")
        assert ((tmp_path / "gt" / "videos" / f"{sample.id}.mp4").read_bytes()
                == (tmp_path / "videos" / "videos" / f"{sample.id}.mp4").read_bytes())
    records = read_jsonl(tmp_path / "videos" / "generation.jsonl")
    assert [r["status"] for r in records] == ["ok"] * 3 and all("warnings" not in r for r in records)


def test_mismatched_videos_are_fitted_with_a_warning_or_refused_when_strict(bench, tmp_path):
    sample = bench.samples[1]
    request = build_request(bench, sample, "mask", 0)
    real = bench.read_video(sample)
    longer = real[np.repeat(np.arange(6), 2)][:11]  # 11 frames of 64x64, written at 128x128
    write_video(tmp_path / f"{sample.id}.mp4", np.repeat(np.repeat(longer, 2, axis=1), 2, axis=2), 8.0)
    video = Videos(dir=str(tmp_path)).generate(request)
    assert video.frames.shape == (6, 64, 64, 3)
    assert video.extra["warnings"] == [f"{sample.id}.mp4: 11 frames resampled uniformly to 6",
                                       f"{sample.id}.mp4: 128x128 resized to 64x64"]
    idx = uniform_indices(11, 6)
    assert np.abs(video.frames.astype(int) - longer[idx]).mean() < 4
    with pytest.raises(GenerationError, match=r"\(11, 128, 128\) \(T, H, W\), the sample is \(6, 64, 64\)"):
        Videos(dir=str(tmp_path), strict=True).generate(request)
    # missing files are per-sample errors: logged by the runner, never skipped
    summary = generate(bench, tmp_path / "run", f"{VIDEOS} dir={tmp_path} strict=true", progress=False)
    records = {r["id"]: r for r in read_jsonl(tmp_path / "run" / "generation.jsonl")}
    assert summary.failed_total == 3 and set(records) == {s.id for s in bench.samples}
    assert "no video" in records[bench.samples[0].id]["error"] and "the sample is" in records[sample.id]["error"]
    with pytest.raises(GenerationError, match="not a folder"):
        Videos(dir=str(tmp_path / "absent"))


def test_timing_sidecar_reports_the_external_models_cost(bench, tmp_path):
    sample = bench.samples[0]
    shutil.copyfile(bench.path(sample, "video"), tmp_path / f"{sample.id}.mp4")
    request = build_request(bench, sample, "mask", 0)
    assert Videos(dir=str(tmp_path), nfe=8).generate(request).nfe == 8
    (tmp_path / f"{sample.id}.json").write_text(json.dumps({"nfe": 100, "denoise_seconds": 12.5}))
    video = Videos(dir=str(tmp_path)).generate(request)
    assert (video.nfe, video.denoise_seconds, video.extra["timing"]) == (100, 12.5, f"from {sample.id}.json")
    (tmp_path / f"{sample.id}.json").write_text("{nope")
    with pytest.raises(GenerationError, match="bad timing sidecar"):
        Videos(dir=str(tmp_path)).generate(request)


def test_fit_video_keeps_first_and_last_frames():
    frames = np.arange(49, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3)
    fitted, notes = fit_video(frames, 5, (4, 4))
    assert fitted[:, 0, 0, 0].tolist() == [0, 12, 24, 36, 48] and notes == ["49 frames resampled uniformly to 5"]
    same, none = fit_video(frames, 49, (4, 4))
    assert same is frames and none == []


class ColourSegmenter:
    """A deterministic stand-in for MobileSAM (which takes minutes here): object k is every pixel within 40 of
    its prompt's mean colour, from its prompt frame on. Equal videos must get equal IoU whatever segments them."""

    name = "colour-threshold"

    def track(self, frames, prompt_masks, prompt_frames):
        t, n = len(frames), len(prompt_masks)
        out = np.zeros((t, n, *frames.shape[1:3]), dtype=bool)
        for k in range(n):
            colour = frames[prompt_frames[k]][prompt_masks[k]].mean(axis=0)
            near = np.abs(frames.astype(float) - colour).max(axis=-1) < 40
            out[prompt_frames[k]:, k] = near[prompt_frames[k]:]
        return out

    def describe(self) -> dict:
        return {"name": self.name}


def _without_timing(block):
    if isinstance(block, dict):
        return {k: _without_timing(v) for k, v in block.items() if k != "denoise_seconds"}
    return block


def test_export_then_videos_reproduces_ground_truth_metrics(tmp_path):
    """evaluate (real FID Inception and I3D features) on both runs gives identical metric sections; a crf-28 user
    mp4 scores what PyAV decodes from it, through the same feature path."""
    from flashbench.data.synthetic import build_synthetic
    from flashbench.eval_features import FeatureExtractor, FeatureSettings
    from flashbench.evaluation import EvalSettings, evaluate, score_sample
    from flashbench.metrics.frechet import fid_from_features

    frames = 10  # I3D needs >= 9 frames; one clip per video
    try:
        features = FeatureExtractor(FeatureSettings(clip_len=frames))
    except WeightsError as e:
        pytest.skip(f"metric weights missing: {e}")
    bench = build_synthetic(tmp_path / "bench", videos_per_group=1, frames=frames, size=(64, 64), groups="1,2")
    out = tmp_path / "export"
    _fill_with_ground_truth(bench, export(bench, out, "folder", progress=False), out)
    lossy = tmp_path / "lossy"  # what a user's model may write: a lossy H.264 file
    for sample in bench.samples:
        write_video(lossy / f"{sample.id}.mp4", bench.read_video(sample), sample.fps, crf=28)
    settings = EvalSettings(clip_len=frames, bootstrap=50)
    results = {}
    for name, spec in (("gt", "ground-truth"), ("videos", f"{VIDEOS} dir={out / 'videos'}"),
                       ("lossy", f"{VIDEOS} dir={lossy}")):
        generate(bench, tmp_path / name, spec, progress=False)
        results[name] = evaluate(bench, tmp_path / name, settings, segmenter=ColourSegmenter(), features=features,
                                 real_cache=tmp_path / "real", progress=False)
    for sample in bench.samples:
        assert ((tmp_path / "gt" / "videos" / f"{sample.id}.mp4").read_bytes()
                == (tmp_path / "videos" / "videos" / f"{sample.id}.mp4").read_bytes())
    gt, ours = results["gt"].to_json(), results["videos"].to_json()
    assert gt["overall"]["n"] == 2 and gt["overall"]["fvd"] is not None and gt["overall"]["mask_iou"] > 50
    for key in ("overall", "groups", "settings", "errors", "ceiling"):  # all but the time each generator took
        assert _without_timing(ours[key]) == _without_timing(gt[key]), key
    assert gt["overall"]["fid"] == pytest.approx(0, abs=1e-6) and gt["overall"]["fvd"] == pytest.approx(0, abs=1e-6)

    # the lossy files: the run holds their decoded frames bit for bit, and the scores are those frames' scores
    decoded = {s.id: read_video(lossy / f"{s.id}.mp4") for s in bench.samples}
    gen, real, iou = {"fid": [], "fvd": []}, {"fid": [], "fvd": []}, []
    for sample in bench.samples:
        assert np.array_equal(read_video(tmp_path / "lossy" / "videos" / f"{sample.id}.mp4"), decoded[sample.id])
        mine = features.get(tmp_path / "check" / f"{sample.id}.npz", lambda s=sample: decoded[s.id])
        theirs = np.load(tmp_path / "real" / f"{sample.id}.npz")  # the real videos' features evaluate cached
        for kind in gen:
            gen[kind].append(mine[kind])
            real[kind].append(theirs[kind])
        iou.append(score_sample(sample, bench, decoded[sample.id], ColourSegmenter(), tmp_path / "t.json")["mask_iou"])
    overall = results["lossy"].overall
    for kind in gen:
        assert overall.value(kind) == pytest.approx(fid_from_features(np.concatenate(gen[kind]),
                                                                      np.concatenate(real[kind])), rel=1e-6)
    assert overall.fid > 0.1 and overall.fvd > 0.1  # crf 28 loses detail; the score shows it
    assert overall.mask_iou == pytest.approx(100 * np.mean(iou))
    assert all("warnings" not in r for r in read_jsonl(tmp_path / "lossy" / "generation.jsonl"))  # no resampling
