"""The baselines share one leaderboard with the reference generators: generate -> evaluate -> report on a tiny
synthetic benchmark, with the baselines' real code (tiny random-init checkpoints, a fake MagicMotion
installation, an export round trip for `videos`).

evaluate runs for real except its two slow models: a colour-threshold segmenter stands in for MobileSAM and
per-frame colour statistics for the Inception/I3D features (the metric code paths are tested with the real
models in test_evaluation.py). The weights' hashes still go into results.json, so the cached weights are needed.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from baseline_checkpoints import tiny_checkpoints
from test_export_videos import ColourSegmenter
from test_magicmotion import _install

from flashbench.errors import WeightsError
from flashbench.eval_features import FeatureExtractor, FeatureSettings
from flashbench.evaluation import EvalSettings, evaluate
from flashbench.export import export
from flashbench.report.writer import write_report
from flashbench.runner import generate
from flashbench.video import read_video, write_video

FRAMES = 9


class ColourStats:
    """Features of a video (frames or a path): per-frame channel means and standard deviations, (T, 6)."""

    def video_features(self, video, stride: int = 1):
        frames = read_video(video) if not isinstance(video, np.ndarray) else video
        x = frames[::stride].reshape(len(frames[::stride]), -1, 3).astype(np.float64)
        return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)


def test_every_baseline_lands_in_one_report_with_the_references(tmp_path):
    from flashbench.data.synthetic import build_synthetic

    try:
        features = FeatureExtractor(FeatureSettings(clip_len=FRAMES), fid_model=ColourStats(), fvd_model=ColourStats())
    except WeightsError as e:
        pytest.skip(f"metric weights missing: {e}")
    bench = build_synthetic(tmp_path / "bench", videos_per_group=1, frames=FRAMES, size=(32, 32), groups="1,2")
    ckpt = tiny_checkpoints(tmp_path / "ckpts")
    root = _install(tmp_path / "MagicMotion")
    exported = export(bench, tmp_path / "export", "folder", progress=False)
    for record in exported["samples"]:  # "the model run elsewhere": here the static reference's output
        frame = np.asarray(bench.first_frame(bench.get(record["id"])))
        write_video(tmp_path / "export" / record["output"], np.repeat(frame[None], FRAMES, axis=0), 8.0)
    specs = {
        "ground-truth": "ground-truth",
        "static": "static",
        "wan-resnet": f"baselines.multistep:WanResNet checkpoint={ckpt['stage1']}",
        "dmd-resnet": f"baselines.dmd:DMDResNet generator_checkpoint={ckpt['stage2']} adapter_checkpoint={ckpt['stage1']}",
        "magicmotion": f"baselines.magicmotion:MagicMotion root={root}",
        "videos": f"flashbench.generators.videos:Videos dir={tmp_path / 'export' / 'videos'} nfe=7",
    }
    runs = []
    for name, spec in specs.items():
        run = tmp_path / "runs" / name
        summary = generate(bench, run, spec, progress=False)
        assert summary.failed_total == 0, name
        evaluate(bench, run, EvalSettings(clip_len=FRAMES, bootstrap=0), segmenter=ColourSegmenter(),
                 features=features, real_cache=tmp_path / "real", progress=False)
        runs.append(run)
    write_report(runs, tmp_path / "report", gallery_per_group=0, n_boot=100)
    board = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    rows = {r["name"]: r for r in board["runs"]}
    assert list(rows) == list(specs)
    nfe = {name: rows[name]["overall"]["nfe"] for name in rows}
    assert nfe == {"ground-truth": 0, "static": 0, "wan-resnet": 100, "dmd-resnet": 4, "magicmotion": 100, "videos": 7}
    assert all(rows[n]["overall"]["denoise_seconds"] > 0 for n in ("wan-resnet", "dmd-resnet", "magicmotion"))
    assert all(set(rows[n]["groups"]) == {"1", "2"} for n in rows)
    assert rows["ground-truth"]["overall"]["mask_iou"] > rows["static"]["overall"]["mask_iou"]
    markdown = (tmp_path / "report" / "leaderboard.md").read_text()
    assert all(name in markdown for name in specs)
    shutil.rmtree(tmp_path / "runs")
