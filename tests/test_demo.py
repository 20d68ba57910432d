"""`flashbench demo` plumbing: build -> generate -> evaluate -> report, rerun reuses the work.

The metric networks are replaced by cheap stand-ins here (test_evaluation.py runs the real ones); the demo's
own job is wiring the stages together, resuming, and printing the report path last.
"""

from __future__ import annotations

import json

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
        return feats[::stride] if not self.per_clip else feats.reshape(2, -1, 6).mean(axis=1)


@pytest.fixture
def cheap_metrics(monkeypatch, tmp_path):
    import flashbench.eval_features as ef
    import flashbench.metrics.segment.base as seg

    monkeypatch.setattr(seg, "load_segmenter", lambda *a, **k: EchoSegmenter())
    monkeypatch.setattr(ef.FeatureExtractor, "_model", lambda self, kind: ColourFeatures(kind == "fvd"))
    # keep the stand-in features out of the real feature cache
    monkeypatch.setattr("flashbench.evaluation.real_cache_dir", lambda content_hash: tmp_path / "real" / content_hash)


def test_demo_end_to_end_and_resume(cheap_metrics, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--groups", "1,2", "--frames", "16", "--size", "32x32"]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == str(out / "index.html") and (out / "index.html").is_file()
    for name in ("ground-truth", "static", "copy-paste"):
        results = json.loads((out / "runs" / name / "results.json").read_text())
        assert results["overall"]["n"] == 2 and results["errors"] == []
    leaderboard = (out / "leaderboard.md").read_text()
    assert all(name in leaderboard for name in ("ground-truth", "static", "copy-paste"))
    videos = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/videos/*.mp4")}
    assert main(args) == 0  # rerun: nothing regenerated
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/videos/*.mp4")} == videos
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "index.html")


def test_demo_refuses_a_benchmark_built_differently(cheap_metrics, tmp_path):
    from flashbench.demo import run_demo

    out = tmp_path / "demo"
    run_demo(out, frames=16, size=(32, 32), groups="1,2")
    with pytest.raises(BenchmarkError, match="built with"):
        run_demo(out, frames=18, size=(32, 32), groups="1,2")
    assert main(["demo", "--out", str(out), "--frames", "8"]) == 2  # too short for one FVD clip
