"""Damaged benchmarks and hostile generators: verification, fault isolation, resumable repair, CLI input checks."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from harness_bench import make_bench
from PIL import Image

from flashbench.cli import main
from flashbench.data.benchmark import Benchmark, content_hash
from flashbench.data.verify import files_stamp, verify_benchmark
from flashbench.errors import BenchmarkError
from flashbench.eval_features import FeatureExtractor, FeatureSettings
from flashbench.run_files import GENERATION, read_jsonl
from flashbench.runner import generate
from flashbench.video import write_video


@pytest.fixture
def bench(tmp_path):
    return make_bench(tmp_path / "bench")


def _damage_mask(bench):
    png = bench.root / "samples/sq-1/masks/00002.png"
    image = np.asarray(Image.open(png)).copy()
    image[0, 0] = 1
    out = Image.fromarray(image, mode="P")
    out.putpalette(Image.open(png).getpalette())
    out.save(png)


def test_verify_stamp_then_full_check_on_change(bench):
    assert verify_benchmark(bench) == "full"
    assert verify_benchmark(bench) == "stamp"  # nothing changed: no decoding
    assert verify_benchmark(bench, "full") == "full"
    before = files_stamp(bench.root)
    _damage_mask(bench)
    assert files_stamp(bench.root) != before
    with pytest.raises(BenchmarkError, match="no longer matches its meta.json.*--no-verify"):
        verify_benchmark(bench)
    assert verify_benchmark(bench, "off") == "skipped"


def test_generate_refuses_changed_benchmark_unless_no_verify(bench, tmp_path):
    _damage_mask(bench)
    assert main(["generate", "--bench", str(bench.root), "--generator", "static", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()  # refused before anything was written
    generate(bench, tmp_path / "r", "static", verify="off", progress=False)
    assert json.loads((tmp_path / "r/run.json").read_text())["bench"]["verified"] == "skipped"


def test_real_video_frame_count_must_match_manifest(bench):
    """A video replaced by a shorter one, with meta.json's hash updated to match, is still refused."""
    sample = bench.get("sq-0")
    frames = np.zeros((sample.num_frames - 2, sample.height, sample.width, 3), np.uint8)
    write_video(bench.path(sample, "video"), frames, sample.fps, lossless=True)
    meta = json.loads((bench.root / "meta.json").read_text())
    meta["content_hash"] = content_hash(bench.root, bench.samples)
    (bench.root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BenchmarkError, match="sq-0: real video decodes to 4 frames"):
        verify_benchmark(Benchmark.load(bench.root))


def test_hostile_generator_is_isolated_per_sample(bench, tmp_path):
    """SystemExit is recorded; a hanging sample times out, its worker process is killed and the run goes on with
    a fresh one (the hang is 600 s: a run that waited for it would take longer than the bound below)."""
    start = time.perf_counter()
    summary = generate(bench, tmp_path / "r", "harness_bench:Hostile", {"hang": 600}, timeout=1.5, progress=False)
    assert time.perf_counter() - start < 400
    records = {r["id"]: r for r in read_jsonl(tmp_path / "r" / GENERATION)}
    assert records["sq-0"]["status"] == "error" and "SystemExit: generator called sys.exit" in records["sq-0"]["error"]
    assert records["sq-1"]["status"] == "error" and records["sq-1"]["error"].startswith("timeout:")
    assert "worker process was killed" in records["sq-1"]["error"]
    assert records["sq-2"]["status"] == "ok" and (tmp_path / "r/videos/sq-2.mp4").is_file()
    assert not (tmp_path / "r/videos/sq-1.mp4").exists()
    assert (summary.generated, summary.failed) == (1, 2)


def test_broken_sample_files_fail_only_that_sample(bench, tmp_path):
    (bench.root / "samples/sq-1/objects.json").write_text("{ truncated")
    generate(bench, tmp_path / "r", "static", verify="off", progress=False)
    records = {r["id"]: r for r in read_jsonl(tmp_path / "r" / GENERATION)}
    assert records["sq-1"]["status"] == "error" and records["sq-0"]["status"] == records["sq-2"]["status"] == "ok"


def test_truncated_video_in_run_is_regenerated(bench, tmp_path):
    run = tmp_path / "r"
    generate(bench, run, "static", progress=False)
    video = run / "videos/sq-2.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    summary = generate(bench, run, "static", progress=False)
    assert (summary.generated, summary.skipped) == (1, 2)
    from flashbench.video import video_info

    assert video_info(video).num_frames == bench.get("sq-2").num_frames


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04garbage", None])
def test_unreadable_feature_cache_is_recomputed_with_warning(tmp_path, monkeypatch, damage):
    extractor = FeatureExtractor(FeatureSettings(1, 16, "cpu"))
    monkeypatch.setattr(extractor, "keys", {"fid": "k1", "fvd": "k2"})
    calls = []

    def compute(kind, frames):
        calls.append(kind)
        return np.ones((2, 3)) * len(calls)

    monkeypatch.setattr(extractor, "_compute", compute)
    path = tmp_path / "f.npz"
    first = extractor.get(path, lambda: None, source="v")
    if damage is None:  # truncated
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.write_bytes(damage)
    with pytest.warns(UserWarning, match="unreadable.*recomputing"):
        again = extractor.get(path, lambda: None, source="v")
    assert calls == ["fid", "fvd", "fid", "fvd"] and not np.array_equal(first["fid"], again["fid"])
    assert extractor.get(path, lambda: None, source="v")["fid"].tolist() == again["fid"].tolist()  # saved again


def _one_line_error(capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error:") and match in err, err


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "x"])
def test_cli_refuses_bad_fps(tmp_path, capsys, value):
    _one_line_error(capsys, ["build", "synthetic", "--out", str(tmp_path / "b"), "--fps", value], "--fps")
    assert not (tmp_path / "b").exists()


def test_cli_refuses_bad_inputs_up_front(tmp_path, capsys, bench):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    _one_line_error(capsys, ["build", "synthetic", "--out", str(afile)], "is a file")
    _one_line_error(capsys, ["build", "synthetic", "--out", str(tmp_path / "b"), "--size", "0x64"], "--size")
    _one_line_error(capsys, ["generate", "--bench", str(bench.root), "--generator", "static", "--out", str(afile)],
                    "is a file")
    _one_line_error(capsys, ["evaluate", "--bench", str(bench.root), "--run", str(tmp_path), "--bootstrap", "0"],
                    "--bootstrap")
    assert main(["generate", "--out", str(tmp_path / "missing"), "--merge"]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "b").exists()


def test_flashmotion_sample_refuses_a_folder_as_out(tmp_path, capsys):
    from flashmotion.cli import main as flashmotion_main

    with pytest.raises(SystemExit) as e:
        flashmotion_main(["sample", "--bench", "b", "--sample", "s", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "not an .mp4 file path" in err and len(err.strip().splitlines()) == 1


def test_evaluate_exit_code_reflects_failed_samples(monkeypatch, bench, tmp_path, capsys):
    from flashbench.results import Metrics, Results, RunInfo, SampleError

    results = Results(schema_version=1, run=RunInfo(name="x"), overall=Metrics(n=2, mask_iou=50.0, box_iou=50.0),
                      groups={}, errors=[SampleError("sq-0", "generate", "boom")])
    monkeypatch.setattr("flashbench.evaluation.evaluate", lambda *a, **k: results)
    argv = ["evaluate", "--bench", str(bench.root), "--run", str(tmp_path)]
    assert main(argv) == 1 and "1 sample(s) failed" in capsys.readouterr().err
    assert main([*argv, "--allow-errors"]) == 0


def test_compare_refuses_runs_of_different_benchmarks(tmp_path):
    from report_runs import make_run, metrics

    from flashbench.report.compare import compare_runs
    from flashbench.report.runs import ReportError, load_run

    a = load_run(make_run(tmp_path / "a", "a", None, metrics(fid=1.0), videos=False, tracks=False, bench_hash="a" * 64))
    b = load_run(make_run(tmp_path / "b", "b", None, metrics(fid=2.0), videos=False, tracks=False, bench_hash="b" * 64))
    with pytest.raises(ReportError, match="compare only runs of the same benchmark"):
        compare_runs([a, b], a)
    assert compare_runs([a], a)["runs"][0]["is_base"]
