"""`flashbench generate`: run folder contents, resume after a kill, error records, sharding, refusals."""

from __future__ import annotations

import json

import pytest
from harness_bench import make_bench

from flashbench.cli import main
from flashbench.run_files import GENERATION, RunError, append_jsonl, generation_records, read_jsonl
from flashbench.runner import Shard, generate, sample_seed
from flashbench.video import read_video


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_bench(tmp_path_factory.mktemp("bench"))


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_writes_run_folder(bench, tmp_path):
    run = tmp_path / "run"
    summary = generate(bench, run, "static", seed=7, progress=False)
    assert (summary.generated, summary.failed, summary.skipped) == (3, 0, 0)
    info = json.loads((run / "run.json").read_text())
    assert info["generator"] == "static" and info["condition"] == "mask" and info["seed"] == 7
    assert info["bench"]["content_hash"] == bench.meta.content_hash and info["name"] == "static"
    assert info["provenance"]["flashbench_version"] and "torch" in info["provenance"]["packages"]
    records = _lines(run / GENERATION)
    assert [r["id"] for r in records] == [s.id for s in bench.samples]
    for r, s in zip(records, bench.samples, strict=True):
        assert r["status"] == "ok" and r["error"] is None and r["nfe"] == 0 and r["device"] == "cpu"
        assert r["seed"] == sample_seed(7, s.id) and r["wall_seconds"] >= r["denoise_seconds"] >= 0
        frames = read_video(run / "videos" / f"{s.id}.mp4")
        # stored losslessly: every frame is the first frame, bit for bit
        assert frames.shape == (s.num_frames, s.height, s.width, 3) and (frames == bench.first_frame(s)).all()
    assert info["video_store"] == {"codec": "ffv1", "pix_fmt": "bgr0", "level": 3, "container": "mp4",
                                   "lossless": "rgb"}


def test_sample_seed_is_deterministic_and_per_sample():
    assert sample_seed(0, "a") == sample_seed(0, "a")
    assert len({sample_seed(0, "a"), sample_seed(0, "b"), sample_seed(1, "a")}) == 3
    assert 0 <= sample_seed(123, "x") < 2**31


def test_resume_after_kill(bench, tmp_path):
    run = tmp_path / "run"
    generate(bench, run, "static", progress=False)
    ids = [s.id for s in bench.samples]
    # simulate kill -9: record 1 half-written, sample 1's video renamed but not logged, sample 2 mid-encode
    log = run / GENERATION
    full = log.read_text().splitlines(keepends=True)
    log.write_text(full[0] + full[1][: len(full[1]) // 2])
    (run / "videos" / f"{ids[2]}.mp4").unlink()
    stale = run / "videos" / f".{ids[2]}.12345.tmp.mp4"
    stale.write_bytes(b"partial")
    assert list(generation_records(run)) == ids[:1]  # the partial line is not read
    summary = generate(bench, run, "static", progress=False)
    assert (summary.generated, summary.skipped, summary.failed) == (2, 1, 0)
    assert not stale.exists()
    records = _lines(log)  # every line is whole JSON again: the partial one was cut off
    assert [r["id"] for r in records] == ids and all(r["status"] == "ok" for r in records)
    assert all(read_video(run / "videos" / f"{i}.mp4").shape[0] == 6 for i in ids)
    assert generate(bench, run, "static", progress=False).generated == 0


def test_append_cuts_partial_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "sta')
    append_jsonl(path, {"id": "c"})
    assert read_jsonl(path) == [{"id": "a"}, {"id": "c"}]
    path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(RunError, match=r"log.jsonl:2"):
        read_jsonl(path)


def test_failing_samples_are_recorded_not_written(bench, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["generate", "--bench", str(bench.root), "--generator", "harness_bench:Flaky", "--out", str(run)])
    assert code == 1
    out = capsys.readouterr().out
    assert "2 sample(s) failed" in out and str(run / GENERATION) in out
    records = {r["id"]: r for r in _lines(run / GENERATION)}
    assert records["sq-0"]["status"] == "error" and "NaN" in records["sq-0"]["error"]
    assert records["sq-1"]["status"] == "error" and "expected" in records["sq-1"]["error"]
    assert all("\n" not in r["error"] for r in (records["sq-0"], records["sq-1"]))
    assert records["sq-2"]["status"] == "ok" and records["sq-2"]["nfe"] == 3
    assert sorted(p.name for p in (run / "videos").iterdir()) == ["sq-2.mp4"]
    again = generate(bench, run, "harness_bench:Flaky", progress=False)
    assert (again.generated, again.skipped, again.failed_total) == (0, 3, 2)
    retried = generate(bench, run, "harness_bench:Flaky", retry_errors=True, progress=False)
    assert (retried.generated, retried.failed, retried.skipped) == (0, 2, 1)
    assert len(_lines(run / GENERATION)) == 5  # append-only: retries add records, the latest one counts


def test_shards_then_merge(bench, tmp_path):
    run = tmp_path / "run"
    first = generate(bench, run, "copy-paste", shard=Shard.parse("1/2"), progress=False)
    assert first.generated == 1 and (run / "generation.shard-1-of-2.jsonl").is_file()
    assert not (run / GENERATION).exists()
    second = generate(bench, run, "copy-paste", shard=Shard(0, 2), progress=False)
    assert second.generated == 2 and second.log == run / GENERATION
    assert not list(run.glob("generation.shard-*"))  # merged automatically once every shard was done
    records = _lines(run / GENERATION)
    assert [r["id"] for r in records] == [s.id for s in bench.samples]
    assert [r["seed"] for r in records] == [sample_seed(0, s.id) for s in bench.samples]
    with pytest.raises(Exception, match="i/N"):
        Shard.parse("2/2")


def test_refuses_to_mix_generators_or_benchmarks(bench, tmp_path):
    run = tmp_path / "run"
    generate(bench, run, "static", limit=1, progress=False)
    with pytest.raises(RunError, match="generator spec 'static'"):
        generate(bench, run, "copy-paste", progress=False)
    with pytest.raises(RunError, match="seed"):
        generate(bench, run, "static", seed=1, progress=False)
    other = make_bench(tmp_path / "other", counts=(1,))
    with pytest.raises(RunError, match="benchmark content"):
        generate(other, run, "static", progress=False)
    assert len(_lines(run / GENERATION)) == 1  # --limit 1 generated only the first sample


def test_runs_stored_lossily_before_are_refused_with_one_line(bench, tmp_path, capsys):
    from flashbench.evaluation import check_run

    run = tmp_path / "run"
    generate(bench, run, "static", progress=False)
    check_run(bench, run)  # a current run passes
    info = json.loads((run / "run.json").read_text())
    del info["video_store"]  # what run.json held before runs were stored losslessly (x264 crf 12)
    (run / "run.json").write_text(json.dumps(info))
    for call in (lambda: generate(bench, run, "static", progress=False), lambda: check_run(bench, run)):
        with pytest.raises(RunError, match="lossy x264 crf 12 .* generate it again into a new --out"):
            call()
    assert main(["evaluate", "--bench", str(bench.root), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "generate it again" in err


def test_cli_generator_args(bench, tmp_path):
    run = tmp_path / "run"
    code = main(["generate", "--bench", str(bench.root), "--generator", "copy-paste", "--gen-arg", "sparse_every=4",
                 "--condition", "sparse_box", "--out", str(run), "--name", "CP"])
    assert code == 0
    info = json.loads((run / "run.json").read_text())
    assert info["generator_args"] == {"sparse_every": 4} and info["generator"] == "copy-paste sparse_every=4"
    assert info["condition"] == "sparse_box" and info["name"] == "CP"
    assert main(["generate", "--bench", str(bench.root), "--generator", "statc", "--out", str(run)]) == 2
