"""results.json as types (flashbench.results): what evaluation writes reads back equal, a malformed file is a
one-line error naming the file, and rank deficiency is a typed field set exactly when rows < dimensions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flashbench.aggregate import metrics_block, tracking_block
from flashbench.report.runs import ReportError, load_run
from flashbench.results import Ceiling, Metrics, Results, ResultsError, RunInfo, SampleError


def _block(rows: int, dims: int, samples: int = 3) -> Metrics:
    rng = np.random.default_rng(0)
    ids = "abcdefgh"[:samples]
    feats = {i: {"fid": rng.normal(size=(rows, dims)), "fvd": rng.normal(size=(2, 4))} for i in ids}
    generation = {i: {"denoise_seconds": 1.0, "nfe": 4} for i in ids}
    records = [{"id": i, "mask_iou": 0.5, "box_iou": 0.5, "objmc": 2.0, "objmc_norm": 0.01} for i in ids]
    return metrics_block(records, generation, feats, feats, n_boot=0, seed=0)


def test_rank_deficiency_is_recorded_exactly_when_rows_are_fewer_than_dimensions():
    assert _block(rows=2, dims=16).rank_deficient == {"fid": [6, 16]}  # 3 samples x 2 rows < 16; FVD 6 >= 4
    assert _block(rows=8, dims=16).rank_deficient == {}  # 24 rows >= 16
    assert _block(rows=1, dims=4, samples=2).rank_deficient == {"fid": [2, 4]}


def test_written_results_read_back_equal_and_legacy_files_still_load(tmp_path):
    block = _block(rows=2, dims=16)
    results = Results(schema_version=1, run=RunInfo("m", "static", "mask", 4, 0), overall=block,
                      groups={"1": block, "2": Metrics.absent("nothing scored")}, settings={"fid": {"stride": 1}},
                      provenance={"git_commit": "abc"}, errors=[SampleError("x", "generate", "GenerationError: boom")],
                      ceiling=Ceiling("mobilesam", "k" * 16, tracking_block([{"id": "a", "mask_iou": 0.9, "box_iou": 0.8,
                                                                               "objmc": 1.0, "objmc_norm": 0.01}], 0, 0), {}))
    text = json.dumps(results.to_json())
    assert Results.from_json(json.loads(text), "r.json") == results
    assert results.ceiling.overall.mask_iou == 90.0 and results.ceiling.overall.objmc_norm == 1.0
    # a file from before the ceiling and ObjMC: no ceiling; ObjMC empty with the reason why
    older = json.loads(text)
    del older["ceiling"]
    older["overall"] = {k: v for k, v in older["overall"].items() if not k.startswith("objmc")}
    old_results = Results.from_json(older, "r.json")
    assert old_results.ceiling is None and old_results.overall.objmc is None
    assert old_results.overall.reason("objmc").startswith("ObjMC is not in this results.json (evaluated before")
    assert Results.from_json(json.loads(text), "r.json").group("3").reason("fvd") == "no 3-object group in this run"
    # a file from before `reasons` and `rank_deficient`: the notes stand in for both
    legacy = {key: value for key, value in block.to_json().items() if key not in ("reasons", "rank_deficient")}
    old = Metrics.from_json(legacy, "overall")
    assert old.reasons is None and old.reason("mask_iou") is None  # it has a value
    assert old.rank_deficient == {"fid": [6, 16]}  # from frechet.py's warning in the notes
    assert Metrics.from_json({**legacy, "fvd": None}, "overall").reason("fvd") == "; ".join(block.notes)


@pytest.mark.parametrize("broken, message", [
    ({"overall": {"n": "four"}}, "overall.n is 'four', not a sample count"),
    ({"overall": {"n": 4, "fid": "12"}}, "overall.fid is '12', not a number or null"),
    ({"overall": {"n": 4, "ci95": {"fid": [1]}}}, "overall.ci95.fid is [1], not [low, high] or null"),
    ({"overall": {"n": 4}, "groups": {"1": []}}, "groups.1 is list, not an object"),
])
def test_a_malformed_results_file_is_one_line_naming_the_file(tmp_path, broken, message):
    with pytest.raises(ResultsError, match=r"r\.json is not a FlashBench results file \(") as caught:
        Results.from_json(broken, "r.json")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "results.json").write_text(json.dumps(broken))
    with pytest.raises(ReportError, match="re-run `flashbench evaluate`"):
        load_run(run)
