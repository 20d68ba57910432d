"""Wrong scores are never accepted silently: tampered benchmarks, weights and checkpoints are refused, stale or
out-of-range results are refused, and mixed-coverage leaderboards are flagged."""

from __future__ import annotations

import os

import pytest
from harness_bench import make_bench

from flashbench.data.benchmark import Benchmark
from flashbench.data.verify import files_stamp, verify_benchmark
from flashbench.errors import BenchmarkError


def test_same_size_edit_with_mtime_put_back_is_not_passed_by_the_stamp(tmp_path):
    bench = make_bench(tmp_path / "bench")
    assert verify_benchmark(bench) == "full" and verify_benchmark(bench) == "stamp"
    path = bench.root / "samples/sq-1/objects.json"
    st = path.stat()
    text = path.read_text()
    at = text.index('"boxes":[[') + len('"boxes":[[')
    edited = text[:at] + ("9" if text[at] != "9" else "8") + text[at + 1 :]  # one box coordinate, same size
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(BenchmarkError, match="no longer matches its meta.json"):
        verify_benchmark(Benchmark.load(bench.root))
    path.write_text(text)  # put back: the full check passes again and leaves a new stamp
    before = files_stamp(bench.root)
    assert verify_benchmark(Benchmark.load(bench.root)) == "full" and files_stamp(bench.root) == before


def _tiny_checkpoint(root):
    from baseline_checkpoints import _randomise

    from flashmotion.checkpoint import save_checkpoint
    from flashmotion.models.adapters import build_adapter
    from flashmotion.models.backbone import WanBackbone

    backbone = WanBackbone.build("tiny", seed=0)
    return save_checkpoint(root, _randomise(build_adapter("resnet", backbone.transformer, channels=8), 5), backbone)


def _flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_uncarded_or_altered_flashmotion_checkpoint_needs_trust_uncarded(tmp_path):
    """save_checkpoint cards every checkpoint; a flipped adapter byte is refused, with or without the card (unless
    the user passes trust_uncarded=true, which the run's generator args then record)."""
    import json

    from flashbench.runner import generate
    from flashmotion.errors import CheckpointError
    from flashmotion.generator import FlashMotion

    folder = _tiny_checkpoint(tmp_path / "ckpt")
    assert (folder / "card.json").is_file()
    _flip_last_byte(folder / "adapter.safetensors")
    with pytest.raises(CheckpointError, match="adapter.safetensors does not match the sha256 in card.json"):
        FlashMotion(checkpoint=str(folder))  # up front, when the generator is built
    (folder / "card.json").unlink()
    with pytest.raises(CheckpointError, match="has no card.json.*trust_uncarded=true"):
        FlashMotion(checkpoint=str(folder))
    bench = make_bench(tmp_path / "bench", counts=(1,), frames=5, size=32)
    run = tmp_path / "run"
    generate(bench, run, f"flashmotion checkpoint={folder} trust_uncarded=true", progress=False)
    assert json.loads((run / "run.json").read_text())["generator_args"]["trust_uncarded"] is True
    assert (run / "videos/sq-0.mp4").is_file()


class FailsWhileAsked:
    """Test generator: fails on sq-0 while $FAIL_SQ0 is set, else repeats the first frame."""

    name = "fails-while-asked"

    def generate(self, request):
        from flashbench.generators.base import GeneratedVideo

        if request.sample_id == "sq-0" and os.environ.get("FAIL_SQ0"):
            raise RuntimeError("asked to fail")
        import numpy as np

        return GeneratedVideo(frames=np.repeat(request.first_frame[None], request.num_frames, axis=0), nfe=1)


def _stamp_results(run) -> None:
    """What evaluate writes, as far as the report's freshness check reads it."""
    from flashbench.results import Metrics, Results, RunInfo
    from flashbench.run_files import RESULTS, scored_inputs, write_json

    results = Results(schema_version=1, run=RunInfo(name="r"), overall=Metrics(n=2, mask_iou=50.0), groups={},
                      provenance={"scored_inputs": scored_inputs(run)})
    write_json(run / RESULTS, results.to_json())


def test_report_refuses_results_of_a_run_changed_after_evaluation(tmp_path, monkeypatch):
    import shutil

    from flashbench.report.runs import ReportError, load_run
    from flashbench.runner import generate

    bench = make_bench(tmp_path / "bench")
    run = tmp_path / "run"
    spec = f"{__name__}:FailsWhileAsked"
    monkeypatch.setenv("FAIL_SQ0", "1")
    generate(bench, run, spec, progress=False)
    _stamp_results(run)
    assert load_run(run).results.overall.n == 2
    monkeypatch.delenv("FAIL_SQ0")
    generate(bench, run, spec, retry_errors=True, progress=False)  # fixes sq-0: the old scores no longer apply
    with pytest.raises(ReportError, match="results.json is stale: the run's generation log and videos changed"):
        load_run(run)
    _stamp_results(run)  # evaluated again
    assert load_run(run).results.overall.n == 2
    shutil.copyfile(run / "videos/sq-0.mp4", run / "videos/sq-1.mp4")  # a video replaced by hand
    with pytest.raises(ReportError, match="stale: the run's videos changed"):
        load_run(run)


GOOD_BLOCK = {"n": 4, "fid": 10.0, "fvd": 20.0, "mask_iou": 50.0, "box_iou": 60.0, "denoise_seconds": 0.5, "nfe": 4.0,
              "ci95": {"fid": [8.0, 12.0], "fvd": None, "mask_iou": [40.0, 60.0], "box_iou": None}}


@pytest.mark.parametrize("change, match", [
    ({"fid": float("nan")}, "overall.fid is nan, not a finite number"),
    ({"fvd": float("inf")}, "overall.fvd is inf, not a finite number"),
    ({"mask_iou": 1e308}, r"overall.mask_iou is 1e\+308, outside \[0, 100\]"),
    ({"box_iou": -0.5}, r"overall.box_iou is -0.5, outside \[0, 100\]"),
    ({"fid": -1.0}, "overall.fid is -1.0, outside >= 0"),
    ({"n": -5}, "overall.n is -5, not a sample count"),
    ({"ci95": {"fid": [12.0, 8.0]}}, r"overall.ci95.fid is \[12.0, 8.0\], not \[low, high\] with low <= high"),
    ({"ci95": {"mask_iou": [40.0, 101.0]}}, r"overall.ci95.mask_iou is 101.0, outside \[0, 100\]"),
])
def test_results_with_out_of_range_values_are_refused_in_one_line(tmp_path, capsys, change, match):
    import json

    from flashbench.cli import main
    from flashbench.results import Results, ResultsError

    good = {"schema_version": 1, "run": {"name": "r"}, "overall": GOOD_BLOCK, "groups": {"1": GOOD_BLOCK}}
    assert Results.from_json(good, "r/results.json").overall.mask_iou == 50.0
    bad = {**good, "overall": {**GOOD_BLOCK, **change}}
    with pytest.raises(ResultsError, match=match) as e:
        Results.from_json(json.loads(json.dumps(bad)), "r/results.json")  # through JSON: NaN / Infinity literals
    assert "\n" not in str(e.value) and "re-run `flashbench evaluate`" in str(e.value)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"name": "r", "bench": {"content_hash": "f" * 64}}))
    (run / "results.json").write_text(json.dumps(bad))
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "is not a FlashBench results file" in err
    assert not (tmp_path / "report").exists()


def test_a_partial_run_is_marked_and_never_bold_beside_full_runs(tmp_path):
    from report_runs import make_run, metrics

    from flashbench.report.leaderboard import (
        group_table,
        leaderboard_frame,
        leaderboard_table,
        write_leaderboard,
    )
    from flashbench.report.runs import load_runs

    full = make_run(tmp_path / "full", "full", None, metrics(fid=30.0, fvd=300.0, mask_iou=50.0, n=4),
                    groups={"1": metrics(fid=31.0, n=2)}, videos=False, tracks=False)
    part = make_run(tmp_path / "part", "part", None, metrics(fid=10.0, fvd=100.0, mask_iou=40.0, n=2),
                    groups={"1": metrics(fid=11.0, n=2)}, videos=False, tracks=False)
    other = make_run(tmp_path / "other", "other", None, metrics(fid=35.0, fvd=350.0, mask_iou=45.0, n=4),
                     groups={"1": metrics(fid=36.0, n=2)}, videos=False, tracks=False)
    runs = load_runs([full, part, other])
    table = leaderboard_table(runs)
    assert [row[0].text for row in table.rows] == ["full", "part (partial: 2 of 4 samples)", "other"]
    fid = table.headers.index("FID ↓")
    assert table.rows[0][fid].bold and not table.rows[1][fid].bold  # the lower FID of 2 samples is not "best"
    assert any("part is partial (2 of 4 samples)" in note and "not comparable" in note for note in table.notes)
    groups = group_table(runs, "fid")
    assert groups.rows[1][0].text == "part (partial: 2 of 4 samples)" and groups.rows[0][-1].bold
    assert any("not comparable" in note for note in groups.notes)
    assert leaderboard_frame(runs)["partial"].tolist() == [False, True, False]
    write_leaderboard(runs, tmp_path / "report")
    assert "part (partial: 2 of 4 samples)" in (tmp_path / "report/leaderboard.md").read_text()
    assert "not comparable" in (tmp_path / "report/groups.md").read_text()


@pytest.mark.parametrize("sidecar, match", [
    ('{"nfe": 1e23, "denoise_seconds": 1.0}', r"nfe 1e\+23 is not a whole number in \[0, 100000\]"),
    ('{"nfe": 4, "denoise_seconds": 1e308}', r"denoise_seconds 1e\+308 is not in \[0, 1e\+06\]"),
    ('{"nfe": 1e400}', "nfe inf / denoise_seconds 0.0 must be finite numbers"),
    ('{"nfe": 2.5}', "nfe 2.5 is not a whole number"),
    ('{"nfe": "4"}', "must be finite numbers"),
    ("[4, 1.0]", "bad timing sidecar"),
])
def test_videos_sidecar_with_implausible_timing_is_an_error_naming_the_file(tmp_path, sidecar, match):
    import shutil

    from flashbench.errors import GenerationError
    from flashbench.generators.videos import Videos
    from flashbench.runner import build_request

    bench = make_bench(tmp_path / "bench", counts=(1,))
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copyfile(bench.path(bench.get("sq-0"), "video"), folder / "sq-0.mp4")
    (folder / "sq-0.json").write_text(sidecar)
    with pytest.raises(GenerationError, match=match) as e:
        Videos(str(folder)).generate(build_request(bench, bench.get("sq-0"), "mask", 0))
    assert str(folder / "sq-0.json") in str(e.value) and "\n" not in str(e.value)
    (folder / "sq-0.json").write_text('{"nfe": 8, "denoise_seconds": 2.5}')
    video = Videos(str(folder)).generate(build_request(bench, bench.get("sq-0"), "mask", 0))
    assert (video.nfe, video.denoise_seconds) == (8, 2.5)
