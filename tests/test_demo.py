"""`flashbench demo` plumbing: build -> generate -> evaluate -> report, rerun reuses the work.

The metric networks are replaced by cheap stand-ins here (test_evaluation.py runs the real ones); the demo's
own job is wiring the stages together, resuming, and printing the report path last.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flashbench.cli import main
from flashbench.errors import BenchmarkError


class EchoSegmenter:
    """Predicts each object's prompt mask, unchanged, from its prompt frame on."""

    name = "echo"

    def track(self, frames, prompt_masks, prompt_frames):
        out = np.zeros((len(frames), *prompt_masks.shape), dtype=bool)
        for k, start in enumerate(prompt_frames):
            out[start:, k] = prompt_masks[k]
        return out

    def describe(self):
        return {"segmenter": "echo"}


class ColourFeatures:
    """Per-frame (or per-clip) colour statistics instead of network features."""

    def __init__(self, per_clip: bool):
        self.per_clip = per_clip

    def video_features(self, video, stride=1):
        from flashbench.video import read_video

        frames = (read_video(video) if not isinstance(video, np.ndarray) else video).astype(np.float64)
        feats = np.concatenate([frames.mean(axis=(1, 2)), frames.std(axis=(1, 2))], axis=1)
        return feats[::stride] if not self.per_clip else feats[: len(feats) // 2 * 2].reshape(2, -1, 6).mean(axis=1)


@pytest.fixture
def cheap_metrics(monkeypatch, tmp_path):
    import flashbench.eval_features as ef
    import flashbench.metrics.segment.base as seg

    monkeypatch.setattr(seg, "load_segmenter", lambda *a, **k: EchoSegmenter())
    monkeypatch.setattr(ef.FeatureExtractor, "_model", lambda self, kind: ColourFeatures(kind == "fvd"))
    # keep the stand-in features out of the real feature cache
    monkeypatch.setattr("flashbench.evaluation.real_cache_dir", lambda content_hash: tmp_path / "real" / content_hash)


SHIPPED = Path(__file__).resolve().parent.parent / "data" / "checkpoints"


def _rows():
    from flashbench.demo import REFERENCE_GENERATORS

    return {"FlashMotion (ResNet)": f"flashmotion checkpoint={SHIPPED / 'stage3_hybrid'}",
            **{name: name for name in REFERENCE_GENERATORS}}


def test_demo_end_to_end_and_resume(cheap_metrics, tmp_path, capsys):
    from flashbench.demo import DemoSettings, run_demo

    out = tmp_path / "demo"
    settings = DemoSettings(videos_per_group=2, groups="1,2")
    index = run_demo(out, settings, rows=_rows())
    assert index == out / "index.html" and index.is_file()
    for name in ("flashmotion-resnet", "ground-truth", "static", "copy-paste"):
        results = json.loads((out / "runs" / name / "results.json").read_text())
        assert results["overall"]["n"] == 4 and results["errors"] == []
    run = json.loads((out / "runs" / "flashmotion-resnet" / "run.json").read_text())
    assert "stage3_hybrid" in json.dumps(run)
    leaderboard = (out / "leaderboard.md").read_text()
    assert all(name in leaderboard for name in ("FlashMotion (ResNet)", "ground-truth", "static", "copy-paste"))
    assert (out / "compare.md").is_file()  # the ablation table against FlashMotion (ResNet)
    videos = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/videos/*.mp4")}
    run_demo(out, settings, rows=_rows())  # rerun: nothing regenerated
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/videos/*.mp4")} == videos


def test_demo_rows_name_every_shipped_checkpoint_and_cards_verify():
    from flashbench.demo import demo_rows
    from flashmotion.checkpoint_cards import verify_card

    rows = demo_rows(SHIPPED)
    assert len(rows) == 11
    folders = [Path(spec.split("checkpoint=", 1)[1]) for spec in rows.values() if "checkpoint=" in spec]
    assert len(folders) == 8
    for folder in folders:
        card = verify_card(folder)
        assert card is not None and card["preset"] == "tiny" and card["git_commit"]
        assert card["steps"] > 0 or card["run"] == "ablation_slow_adapter"  # that one only combines two exports
        assert card["bench_content_hash"] or card["steps"] == 0  # the training benchmark, when there was training
        assert set(card["files"]) >= {"adapter.safetensors", "flashmotion.json"}


def test_demo_refuses_a_benchmark_built_differently(cheap_metrics, tmp_path):
    from flashbench.demo import DemoSettings, run_demo

    out = tmp_path / "demo"
    rows = {"ground-truth": "ground-truth"}
    run_demo(out, DemoSettings(videos_per_group=2, groups="1"), rows=rows)
    with pytest.raises(BenchmarkError, match="built with"):
        run_demo(out, DemoSettings(videos_per_group=3, groups="1"), rows=rows)
    assert main(["demo", "--out", str(out), "--videos-per-group", "1"]) == 2  # too few for per-group FID/FVD


def test_demo_names_the_fix_for_a_missing_checkpoint(tmp_path):
    from flashbench.demo import run_demo
    from flashbench.errors import FlashBenchError

    with pytest.raises(FlashBenchError, match="--from-scratch"):
        run_demo(tmp_path / "demo", checkpoints=tmp_path / "nothing-here")


def test_from_scratch_trains_the_tiny_pipeline_on_its_own_benchmark_and_publishes_it(cheap_metrics, tmp_path, monkeypatch):
    import flashmotion.train.pipeline as pipeline
    from flashbench.data.benchmark import Benchmark
    from flashbench.demo import DemoSettings, run_demo
    from tests.test_checkpoint_cards import _fake_run

    calls = []

    def fake_pipeline(preset, bench, out, configs=None, **kwargs):
        calls.append((preset, Benchmark.load(bench).meta.build, Path(configs).name))
        _fake_run(Path(out), "stage3_hybrid", stage="stage3_hybrid")

    monkeypatch.setattr(pipeline, "run_pipeline", fake_pipeline)
    out = tmp_path / "demo"
    run_demo(out, DemoSettings(videos_per_group=2, groups="1"), from_scratch=True, rows={"static": "static"})
    (preset, build, configs), = calls
    assert preset == "tiny" and configs == "tiny" and build["seed"] == 1 and build["videos_per_group"] == 16
    assert (out / "checkpoints" / "stage3_hybrid" / "card.json").is_file()
    assert Benchmark.load(out / "bench").meta.build["seed"] == 7  # scored on held-out scenes
