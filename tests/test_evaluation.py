"""`flashbench evaluate` with the real metrics (MobileSAM, Inception, I3D) on a tiny synthetic benchmark.

One module-scoped fixture builds the benchmark (groups 1, 2 x 1 video x 10 frames: the least that gives an
overall FID/FVD, 2 videos x one 10-frame I3D clip; I3D needs >= 9 frames), generates the three reference runs
and evaluates them once; the tests share those runs (the slow part is MobileSAM, which encodes every distinct
frame at 1024 x 1024).
Needs the cached weights (`flashbench weights fetch`); skipped with that hint when they are missing.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from harness_bench import metric_components
from pytorch_fid.fid_score import calculate_frechet_distance

from flashbench.aggregate import metrics_block
from flashbench.data.objects import read_objects
from flashbench.errors import FlashBenchError
from flashbench.eval_features import FeatureExtractor, FeatureSettings
from flashbench.evaluation import EvalSettings, evaluate
from flashbench.metrics.frechet import fid_from_features
from flashbench.report.stats import bootstrap_ci
from flashbench.run_files import RunError, append_jsonl
from flashbench.runner import generate
from flashbench.video import write_video

SIZE, FRAMES, BOOT = (128, 128), 10, 200
SETTINGS = EvalSettings(clip_len=FRAMES, bootstrap=BOOT)
METRIC_SECTIONS = ("run", "overall", "groups", "settings", "errors", "ceiling")


@pytest.fixture(scope="module")
def components():
    return metric_components(FRAMES)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, components):
    from flashbench.data.synthetic import build_synthetic

    root = tmp_path_factory.mktemp("eval")
    bench = build_synthetic(root / "bench", videos_per_group=1, frames=FRAMES, size=SIZE, groups="1,2")
    segmenter, features = components
    runs, results = {}, {}
    for name in ("ground-truth", "static", "copy-paste"):
        runs[name] = root / name
        generate(bench, runs[name], name, progress=False)
        results[name] = evaluate(bench, runs[name], SETTINGS, segmenter=segmenter,
                                 features=features, real_cache=root / "real", progress=False)
    return bench, runs, results, root


def _evaluate_again(evaluated, components, run):
    bench, _, _, root = evaluated
    segmenter, features = components
    return evaluate(bench, run, SETTINGS, segmenter=segmenter, features=features,
                    real_cache=root / "real", progress=False)


def _samples(run):
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def test_reference_generators_are_ordered(evaluated):
    _, _, results, _ = evaluated
    gt, static, cp = (results[n].overall for n in ("ground-truth", "static", "copy-paste"))
    assert gt.n == static.n == cp.n == 2
    # runs store frames losslessly: the ground-truth run is the benchmark's real videos, bit for bit
    assert gt.fid == pytest.approx(0, abs=1e-6) and gt.fvd == pytest.approx(0, abs=1e-6)
    assert gt.fid < static.fid and gt.fid < cp.fid
    assert gt.fvd < cp.fvd and 2 * gt.fvd < static.fvd
    assert gt.mask_iou >= 85 and gt.box_iou >= 85
    assert static.mask_iou < gt.mask_iou - 20 and static.box_iou < gt.box_iou - 20
    assert cp.mask_iou > static.mask_iou + 10 and cp.box_iou > static.box_iou + 10
    assert gt.objmc < cp.objmc < static.objmc and gt.objmc_norm < static.objmc_norm


class Refuses:
    """A segmenter with MobileSAM's settings that must not be called: every track has to come from a cache."""

    def __init__(self, segmenter):
        self.settings = segmenter.describe()

    def describe(self) -> dict:
        return self.settings

    def track(self, frames, prompts, start):
        raise AssertionError("tracked again instead of reusing the cache")


def test_tracker_ceiling_is_the_ground_truth_tracked_once(evaluated, components, tmp_path):
    bench, runs, results, root = evaluated
    ceiling = results["ground-truth"].ceiling
    assert ceiling.segmenter == "mobilesam" and ceiling.overall.n == 2 and ceiling.overall.fid is None
    assert results["static"].ceiling == results["copy-paste"].ceiling == ceiling  # one per benchmark + segmenter
    # the ground-truth run decodes to the real videos bit for bit, so it tracks exactly as the ceiling does
    gt = results["ground-truth"]
    for key in ("mask_iou", "box_iou", "objmc", "objmc_norm"):
        assert ceiling.overall.value(key) == gt.overall.value(key) is not None
        assert all(ceiling.groups[g].value(key) == gt.groups[g].value(key) for g in gt.groups)
    assert len(list((root / "real" / "ceiling" / ceiling.segmenter_key).glob("*.json"))) == 2
    run = shutil.copytree(runs["static"], tmp_path / "static")
    again = evaluate(bench, run, SETTINGS, segmenter=Refuses(components[0]), features=components[1],
                     real_cache=root / "real", progress=False)
    assert again.ceiling == ceiling
    saved = json.loads((run / "results.json").read_text())["ceiling"]
    assert saved["overall"]["mask_iou"] == ceiling.overall.mask_iou and set(saved["groups"]) == {"1", "2"}


def test_results_follow_the_schema_and_match_independent_references(evaluated):
    bench, runs, results, root = evaluated
    res, run = results["copy-paste"], runs["copy-paste"]
    assert json.loads((run / "results.json").read_text()) == res.to_json()
    assert res.run.name == "copy-paste" and res.errors == []
    samples = _samples(run)
    assert [s["id"] for s in samples] == [s.id for s in bench.samples]
    # IoU aggregates are 100 x the mean of the per-sample values; one video per group: no Fréchet distance there
    assert res.overall.mask_iou == pytest.approx(100 * np.mean([s["mask_iou"] for s in samples]))
    lo, hi = res.overall.ci95["mask_iou"]
    assert lo <= res.overall.mask_iou <= hi
    for group, block in res.groups.items():
        (mine,) = [s for s in samples if s["group"] == group]
        assert block.n == 1 and block.mask_iou == pytest.approx(100 * mine["mask_iou"])
        assert block.fid is None and block.fvd is None and block.ci95["mask_iou"] is None
        assert any(note.startswith("FID not computed: 1 generated and 1 real") for note in block.notes)
    # per-sample mask IoU recomputed from the saved tracks with plain numpy (DAVIS-style convention)
    s = samples[-1]
    sample = bench.get(s["id"])
    pred, gt = read_objects(run / "tracks" / f"{s['id']}.json").masks, bench.tracks(sample).masks
    start = gt.any(axis=(2, 3)).argmax(axis=0)
    per_object = []
    for k in range(gt.shape[1]):
        ious = []
        for t in range(start[k], gt.shape[0]):
            union = (pred[t, k] | gt[t, k]).sum()
            ious.append(1.0 if union == 0 else (pred[t, k] & gt[t, k]).sum() / union)
        per_object.append(np.mean(ious))
    assert s["mask_iou"] == pytest.approx(np.mean(per_object), abs=1e-12)
    # FID/FVD of the overall set recomputed from the cached features (FVD with pytorch-fid's scipy-sqrtm
    # Fréchet distance; FID's 2048-d sqrtm takes ~30 s on CPU, so FID uses frechet.py, tested against scipy)
    for kind in ("fid", "fvd"):
        gen = np.concatenate([np.load(run / "features" / f"{i.id}.npz")[kind] for i in bench.samples])
        real = np.concatenate([np.load(root / "real" / f"{i.id}.npz")[kind] for i in bench.samples])
        assert gen.shape == ({"fid": 2 * FRAMES, "fvd": 2}[kind], {"fid": 2048, "fvd": 400}[kind])
        if kind == "fvd":
            ref = calculate_frechet_distance(gen.mean(0), np.cov(gen, rowvar=False), real.mean(0), np.cov(real, rowvar=False))
        else:
            ref = fid_from_features(gen, real)
        assert res.overall.value(kind) == pytest.approx(ref, rel=1e-4)
        assert res.overall.ci95[kind] is None  # two videos are too few to resample
        assert f"{kind.upper()} CI not computed: 2 generated videos, need >= 5" in res.overall.notes
    prov = res.provenance
    assert prov["bench_content_hash"] == bench.meta.content_hash
    assert set(prov["weights"]) == {"inception-fid", "i3d-kinetics400", "mobilesam"}
    assert all(len(v) == 64 for v in prov["weights"].values())
    assert {"git_commit", "git_dirty", "packages", "python", "platform", "device", "timings"} <= set(prov)
    assert res.settings["fid"]["stride"] == 1 and res.settings["fvd"]["clip_len"] == FRAMES
    assert res.settings["bootstrap"] == {**res.settings["bootstrap"], "n": BOOT, "seed": 0}


def test_resume_gives_byte_identical_metrics(evaluated, components, tmp_path):
    _, runs, results, _ = evaluated
    run = shutil.copytree(runs["static"], tmp_path / "static")
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    ids = [json.loads(line)["id"] for line in lines]
    (run / "samples.jsonl").write_text(lines[1])  # "interrupted": the first sample was not scored yet ...
    (run / "features" / f"{ids[1]}.npz").unlink()  # ... and the second one's features not written
    again = _evaluate_again(evaluated, components, run)
    for key in METRIC_SECTIONS:
        mine, theirs = again.to_json()[key], results["static"].to_json()[key]
        assert json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True), key
    assert sorted(s["id"] for s in _samples(run)) == sorted(ids)


def test_a_regenerated_video_is_scored_again(evaluated, components, tmp_path):
    bench, runs, results, _ = evaluated
    run = shutil.copytree(runs["static"], tmp_path / "static")
    sample = bench.samples[1]
    last = bench.read_video(sample)[-1]  # "regenerated": now the LAST real frame, held still
    write_video(run / "videos" / f"{sample.id}.mp4", np.repeat(last[None], sample.num_frames, axis=0), sample.fps)
    before = {s["id"]: s for s in _samples(run)}[sample.id]
    old_fid = np.load(run / "features" / f"{sample.id}.npz")["fid"]
    again = _evaluate_again(evaluated, components, run)
    after = {s["id"]: s for s in _samples(run)}[sample.id]
    assert after["video_sha256"] != before["video_sha256"] and after["mask_iou"] != before["mask_iou"]
    assert not np.allclose(np.load(run / "features" / f"{sample.id}.npz")["fid"], old_fid)
    assert again.overall.mask_iou != results["static"].overall.mask_iou


def test_failed_samples_are_listed_and_excluded(evaluated, components, tmp_path):
    bench, runs, results, _ = evaluated
    run = shutil.copytree(runs["copy-paste"], tmp_path / "cp")
    ids = [s.id for s in bench.samples]
    append_jsonl(run / "generation.jsonl", {"id": ids[0], "status": "error", "error": "GenerationError: boom",
                                            "seed": 0, "nfe": None, "denoise_seconds": None, "wall_seconds": 1.0,
                                            "device": "cpu"})
    res = _evaluate_again(evaluated, components, run)
    assert [e.to_json() for e in res.errors] == [{"id": ids[0], "stage": "generate", "error": "GenerationError: boom"}]
    overall = res.overall
    assert overall.n == 1 and overall.fid is None and overall.fvd is None
    assert any("FVD not computed: 1 generated and 2 real" in note for note in overall.notes)
    (kept,) = [s for s in _samples(run) if s["id"] == ids[1]]
    assert overall.mask_iou == pytest.approx(100 * kept["mask_iou"])
    assert overall.mask_iou != pytest.approx(results["copy-paste"].overall.mask_iou)
    assert res.groups["1"].n == 0 and res.groups["1"].mask_iou is None

    (run / "videos" / f"{ids[1]}.mp4").write_bytes(b"not a video")  # corrupt, and nothing cached for it
    (run / "features" / f"{ids[1]}.npz").unlink()
    (run / "samples.jsonl").unlink()
    res = _evaluate_again(evaluated, components, run)
    assert [(e.id, e.stage) for e in res.errors] == [(ids[0], "generate"), (ids[1], "evaluate")]
    assert "\n" not in res.errors[1].error and str(ids[1]) in res.errors[1].error
    assert res.overall.n == 0 and res.overall.mask_iou is None and res.overall.fid is None


def test_incomplete_or_foreign_runs_are_refused(evaluated, components, tmp_path):
    bench, runs, _, _ = evaluated
    run = shutil.copytree(runs["static"], tmp_path / "static")
    lines = (run / "generation.jsonl").read_text().splitlines(keepends=True)
    (run / "generation.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(RunError, match="not generated yet"):
        _evaluate_again(evaluated, components, run)
    info = json.loads((run / "run.json").read_text())
    info["bench"]["content_hash"] = "0" * 64
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="benchmark content"):
        _evaluate_again(evaluated, components, run)


def test_metrics_block_never_averages_in_missing_values():
    rng = np.random.default_rng(0)
    ids, values = "abcdef", (0.2, 0.5, 0.8, 0.4, 0.6, 0.5)
    feats = {i: {"fid": rng.normal(size=(5, 8)), "fvd": rng.normal(size=(2, 4))} for i in ids}
    # real videos by sample id: a..f pair with the generated ones, g's generation failed (real set only)
    real = {i: {"fid": rng.normal(size=(5, 8)) + 0.5, "fvd": rng.normal(size=(2, 4))} for i in "abcdefg"}
    generation = {i: {"denoise_seconds": 1.0 + k, "nfe": 4} for k, i in enumerate(ids)}
    samples = [{"id": i, "mask_iou": v, "box_iou": v} for i, v in zip(ids, values, strict=True)]
    block = metrics_block(samples, generation, feats, real, n_boot=100, seed=0)
    assert block.n == 6 and block.mask_iou == pytest.approx(50) and block.denoise_seconds == 3.5
    gen_fid = np.concatenate([f["fid"] for f in feats.values()])
    real_fid = np.concatenate([r["fid"] for r in real.values()])
    assert block.fid == pytest.approx(fid_from_features(gen_fid, real_fid))
    assert block.ci95["mask_iou"] == pytest.approx([100 * v for v in bootstrap_ci(values, n=100)])
    for kind in ("fid", "fvd"):
        lo, hi = block.ci95[kind]
        assert lo <= block.value(kind) <= hi and lo < hi
    few = metrics_block(samples[:3], generation, feats, real, n_boot=100, seed=0)
    assert few.fid is not None and few.ci95["fid"] is None and few.ci95["mask_iou"] is not None
    single = metrics_block(samples[:1], generation, feats, real, n_boot=100, seed=0)
    assert single.fid is None and single.ci95["fid"] is None and single.ci95["mask_iou"] is None
    empty = metrics_block([], generation, feats, real, n_boot=100, seed=0)
    assert empty.n == 0 and empty.mask_iou is None and empty.nfe is None
    assert "no scored samples in this group" in empty.notes


class FixedSegmenter:
    """Returns the masks it was given, whatever the video: a stand-in that makes the IoU known."""

    def __init__(self, masks: np.ndarray):
        self.masks = masks

    def track(self, frames, prompts, start):
        return self.masks


def test_box_only_objects_get_box_iou_but_no_mask_iou(tmp_path):
    from flashbench.data.benchmark import BenchmarkWriter
    from flashbench.evaluation import score_sample

    t, h, w = 4, 32, 32
    gt = np.zeros((t, 2, h, w), bool)
    gt[:, 0, 4:20, 4:20] = True  # object 0: box ground truth (a filled box)
    gt[:, 1, 22:30, 22:30] = True  # object 1: a real mask
    frames = np.zeros((t, h, w, 3), np.uint8)
    writer = BenchmarkWriter(tmp_path / "bench", name="boxes", groups=("1", "2"))
    writer.add("mixed", frames, gt, 8.0, "p", "test", annotations=["box", "mask"])
    writer.add("boxes", frames, gt[:, :1], 8.0, "p", "test", annotations=["box"])
    bench = writer.close()
    assert [o.annotation for o in bench.get("mixed").objects] == ["box", "mask"]
    pred = gt.copy()
    pred[:, 0, 5:19, 5:19] = False  # a hollow outline: the same box, a poor mask
    pred[:, 1, 22:30, 26:30] = False  # half the mask, half the box
    mixed = score_sample(bench.get("mixed"), bench, frames, FixedSegmenter(pred), tmp_path / "m.json")
    assert mixed["status"] == "ok"
    assert mixed["objects"][0]["mask_iou"] is None and mixed["objects"][0]["box_iou"] == 1.0
    assert mixed["objects"][1]["mask_iou"] == pytest.approx(0.5) and mixed["objects"][1]["box_iou"] == pytest.approx(0.5)
    assert mixed["mask_iou"] == pytest.approx(0.5) and mixed["box_iou"] == pytest.approx(0.75)
    assert mixed["objects"][0]["frames_scored"] == t
    boxes = score_sample(bench.get("boxes"), bench, frames, FixedSegmenter(pred[:, :1]), tmp_path / "b.json")
    assert boxes["status"] == "ok" and boxes["mask_iou"] is None and boxes["box_iou"] == 1.0

    rng = np.random.default_rng(0)  # a sample without mask IoU is left out of the mask mean and CI only
    feats = {i: {"fid": rng.normal(size=(3, 4)), "fvd": rng.normal(size=(2, 4))} for i in "abc"}
    generation = {i: {"denoise_seconds": 1.0, "nfe": 4} for i in "abc"}
    samples = [{"id": "a", "mask_iou": 0.4, "box_iou": 0.5}, {"id": "b", "mask_iou": None, "box_iou": 1.0},
               {"id": "c", "mask_iou": 0.6, "box_iou": 0.9}]  # fmt: skip
    block = metrics_block(samples, generation, feats, feats, n_boot=50, seed=0)
    assert block.mask_iou == pytest.approx(50) and block.box_iou == pytest.approx(80)
    assert block.ci95["mask_iou"] == pytest.approx([100 * v for v in bootstrap_ci([0.4, 0.6], n=50)])
    assert "mask IoU over 2 of 3 samples (the others have box-only ground truth)" in block.notes


def test_whole_video_fvd_protocol_is_recorded_and_gives_one_row_per_video(evaluated, components, tmp_path):
    from dataclasses import replace

    bench, runs, results, _ = evaluated
    run = shutil.copytree(runs["static"], tmp_path / "static")
    clips_key = str(np.load(run / "features" / f"{bench.samples[0].id}.npz")["fvd_key"])
    features = FeatureExtractor(FeatureSettings(clip_len=FRAMES, fvd_protocol="whole-video"))
    res = evaluate(bench, run, replace(SETTINGS, fvd_protocol="whole-video"), segmenter=components[0],
                   features=features, real_cache=tmp_path / "real", progress=False)
    fvd = res.settings["fvd"]
    assert fvd["protocol"] == "whole-video" and fvd["clip_len"] == "whole video" and "TF" in fvd["protocol_text"]
    for sample in bench.samples:
        cached = np.load(run / "features" / f"{sample.id}.npz")
        assert cached["fvd"].shape == (1, 400) and str(cached["fvd_key"]) != clips_key  # not reused
    # 10-frame videos are one 10-frame clip either way: the same I3D input, the same FVD
    assert res.overall.fvd == pytest.approx(results["static"].overall.fvd, rel=1e-9)
    with pytest.raises(FlashBenchError, match="--fvd-protocol"):
        FeatureSettings(fvd_protocol="clips16")


def test_results_are_stamped_with_the_generation_log_and_videos_they_scored(evaluated):
    """What reports check (flashbench.report.runs): a later generate or a replaced video makes results.json stale."""
    from flashbench.run_files import scored_inputs

    _, runs, results, _ = evaluated
    for name, run in runs.items():
        stamp = json.loads((run / "results.json").read_text())["provenance"]["scored_inputs"]
        assert stamp == results[name].provenance["scored_inputs"] == scored_inputs(run)
    assert len({json.dumps(r.provenance["scored_inputs"]) for r in results.values()}) == 3
