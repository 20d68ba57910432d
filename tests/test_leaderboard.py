"""Leaderboard / per-group tables / plots / gallery from fake run folders (RUN_SCHEMA)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_runs import build_bench, ceiling, make_run, metrics

from flashbench.cli import main
from flashbench.report import write_report
from flashbench.report.gallery import overlay, strip_indices
from flashbench.report.leaderboard import leaderboard_table
from flashbench.report.runs import ReportError, load_runs
from flashbench.report.tables import to_markdown

FVD_REASON = "I3D weights missing; run `flashbench weights fetch i3d-kinetics400`"
CEILING = ceiling(88.0, 90.0, 1.5, groups=("1", "2", "3+"))
CEILING_ROW = "Tracker ceiling (ground truth, mobilesam)"


def _groups(scale: float) -> dict:
    return {
        g: metrics(30 * scale + i, 300 * scale + i, 80 / scale - i, 82 / scale - i, 1.0, n=1)
        for i, g in enumerate(("1", "2", "3+"))
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    bench = build_bench(root / "bench")
    paths = [
        make_run(
            root / "beta",
            "Beta",
            bench,
            {**metrics(20.1, None, 65.0, 76.3, 35.2, reasons={"fvd": FVD_REASON}, objmc=6.5), "nfe": 100.0},  # CFG
            _groups(1.2),
            steps=50,
            seed=1,
            ceiling=CEILING,
        ),
        make_run(
            root / "alpha", "Alpha", bench, metrics(15.81, 120.3, 71.2, 74.9, 0.42, objmc=4.2), _groups(1.0), steps=4,
            ceiling=CEILING,
        ),
        make_run(
            root / "gamma",
            "Gamma",
            bench,
            metrics(18.0, 140.0, 60.0, 70.0, 0.2, ci=False, n=3),  # 3 scored + 1 failed: the others' 4 samples
            _groups(1.1),
            steps=1,
            seed=2,
            tracks=False,
            errors=[{"id": "zz", "stage": "generate", "error": "oom"}],
        ),
    ]
    return root, bench, paths


@pytest.fixture(scope="module")
def report(runs):
    root, _, paths = runs
    out = root / "report"
    index = write_report(paths, out, gallery_per_group=1)
    return out, index


def _md_rows(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_leaderboard_markdown_order_bold_ci_and_missing(report):
    out, _ = report
    text = (out / "leaderboard.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["Method", "Steps", "NFE", "FID ↓", "FVD ↓", "M-IoU ↑", "B-IoU ↑", "ObjMC ↓", "s ↓"]
    rows = {r[0]: r for r in _md_rows(text)}
    assert [r[0] for r in _md_rows(text)] == ["Beta", "Alpha", "Gamma", CEILING_ROW]  # runs in the order given
    # best per column in bold, CI in brackets (fixture CIs are +-5%)
    assert rows["Alpha"][3] == "**15.81** [15.02, 16.60]"
    assert rows["Alpha"][5].startswith("**71.20**") and not rows["Beta"][5].startswith("**")
    assert rows["Beta"][6] == "**76.30** [72.48, 80.11]"  # B-IoU: higher is better
    assert rows["Alpha"][7] == "**4.20** [3.99, 4.41]" and rows["Beta"][7] == "6.50 [6.17, 6.83]"  # ObjMC: lower
    assert rows["Gamma"][8] == "**0.20**" and rows["Beta"][8] == "35.20"  # s: lower is better, no CI
    assert rows["Gamma"][3] == "18.00"  # no CI recorded -> plain value
    assert [r[1] for r in _md_rows(text)] == ["50", "4", "1", "–"]
    assert [r[2] for r in _md_rows(text)] == ["100", "4", "4", "–"]
    # null metric: dash + footnote carrying the reason from results.json
    assert rows["Beta"][4] == "– [1]"
    assert f"[1] FVD ↓ of Beta: {FVD_REASON}" in text
    assert "Gamma: 1 sample(s) failed" in text
    assert rows["Gamma"][7] == "–"  # a file from before ObjMC (and reasons: no footnote)
    # the tracker ceiling: the ground truth's IoU / ObjMC under the runs, never bold though its IoU is higher
    assert rows[CEILING_ROW][3:9] == ["–", "–", "88.00 [83.60, 92.40]", "90.00 [85.50, 94.50]", "1.50 [1.42, 1.58]", "–"]
    assert rows["Alpha"][5].startswith("**71.20**")
    assert "Tracker ceiling: the benchmark's real videos tracked by the runs' segmenter" in text
    assert "Gamma: its results.json has no tracker ceiling" in text


def test_leaderboard_csv_and_json_round_trip(runs, report):
    out, _ = report
    _, bench, paths = runs
    frame = pd.read_csv(out / "leaderboard.csv")
    assert list(frame["method"]) == ["Beta", "Alpha", "Gamma", CEILING_ROW]
    assert list(frame["row"]) == ["run"] * 3 + ["tracker ceiling"]
    for path, (_, row) in zip(paths, frame.iloc[:3].iterrows(), strict=True):
        overall = json.loads((path / "results.json").read_text())["overall"]
        for key in ("fid", "fvd", "mask_iou", "box_iou", "objmc", "objmc_norm", "denoise_seconds"):
            if key not in overall:  # Gamma: from before ObjMC
                assert np.isnan(row[key])
            elif overall[key] is None:
                assert np.isnan(row[key]) and row[f"{key}_note"].endswith(FVD_REASON)
            else:
                assert row[key] == pytest.approx(overall[key])
            ci = overall["ci95"].get(key)
            if ci:
                assert (row[f"{key}_ci_lo"], row[f"{key}_ci_hi"]) == pytest.approx(tuple(ci))
    assert frame["steps"].iloc[:3].tolist() == [50, 4, 1]
    top = frame.iloc[3]
    assert (top["mask_iou"], top["box_iou"], top["objmc"], top["objmc_norm"]) == (88.0, 90.0, 1.5, 0.75)
    assert (top["mask_iou_ci_lo"], top["objmc_ci_hi"]) == pytest.approx((83.6, 1.575))
    assert np.isnan(top["fid"]) and np.isnan(top["denoise_seconds"]) and top["generator"] == "ground-truth"
    record = json.loads((out / "leaderboard.json").read_text())
    assert [c["key"] for c in record["columns"]][3:5] == ["box_iou", "objmc"]
    (top,) = record["ceiling"]
    assert top["label"] == CEILING_ROW and top["runs"] == ["Beta", "Alpha"] and top["segmenter"] == "mobilesam"
    assert top["overall"]["mask_iou"] == 88.0 and top["groups"]["2"]["objmc"] == 1.5
    html = (out / "index.html").read_text()
    board = html.split('<table class="table" id="leaderboard">')[1].split("</table>")[0]
    assert "<th class=\"r\">ObjMC ↓</th>" in board and f'<th scope="row" class="l">{CEILING_ROW}</th>' in board
    assert "<strong>4.20</strong>" in board
    assert [r["name"] for r in record["runs"]] == ["Beta", "Alpha", "Gamma"]
    for r in record["runs"]:
        assert r["bench_hash"] == bench.meta.content_hash
        assert r["git_commit"] == "0123456789abcdef" and r["created"] == "2025-01-02T03:04:05+00:00"
    assert record["runs"][1]["overall"]["fid"] == 15.81
    assert record["report"]["flashbench_version"]


def test_group_tables(report):
    out, _ = report
    frame = pd.read_csv(out / "groups_mask_iou.csv", index_col="method", dtype={"method": str})
    assert list(frame.columns) == ["1", "2", "3+", "All"]
    assert frame.loc["Alpha", "2"] == pytest.approx(79.0) and frame.loc["Beta", "All"] == pytest.approx(65.0)
    assert frame.loc[CEILING_ROW].tolist() == [88.0] * 4
    assert CEILING_ROW not in pd.read_csv(out / "groups_fid.csv", index_col="method").index
    assert pd.read_csv(out / "groups_objmc.csv", index_col="method").loc[CEILING_ROW, "All"] == 1.5
    text = (out / "groups.md").read_text()
    assert [ln for ln in text.splitlines() if ln.startswith("## ")] == [
        "## FID ↓ by object count",
        "## FVD ↓ by object count",
        "## M-IoU ↑ by object count",
        "## B-IoU ↑ by object count",
        "## ObjMC ↓ by object count",
    ]
    fid = _md_rows(text.split("## FVD")[0])
    assert [r[0] for r in fid] == ["Beta", "Alpha", "Gamma"]
    objmc = _md_rows(text.split("## ObjMC")[1])
    assert [r[0] for r in objmc] == ["Beta", "Alpha", "Gamma", CEILING_ROW] and objmc[3][1:] == ["1.50 [1.42, 1.58]"] * 4
    assert all(c.startswith("**") for c in fid[1][1:])  # Alpha has the lowest FID in every group and overall


def test_plots_are_valid_non_blank_pngs(report):
    out, _ = report
    for name in ("by_group.png", "speed_quality.png"):
        image = np.asarray(Image.open(out / "plots" / name).convert("L"), dtype=np.float64)
        assert image.shape[0] > 300 and image.std() > 5


def test_gallery_strips_per_group_and_method(report, runs):
    out, _ = report
    _, bench, _ = runs
    html = (out / "index.html").read_text()
    groups = {s.group for s in bench}
    folders = sorted(p.name for p in (out / "gallery").iterdir())
    assert len(folders) == len(groups)  # one sample per group
    for folder in folders:
        names = sorted(p.name for p in (out / "gallery" / folder).iterdir())
        assert names == ["00-Beta.png", "01-Alpha.png", "02-Gamma.png", "real.png"]
        strip = Image.open(out / "gallery" / folder / "01-Alpha.png")
        assert strip.height == 96 and strip.width > 4 * 96  # 5 frames of a 3:2 video side by side
    assert "no tracked masks (tracks/ missing)" in html  # Gamma was written without tracks/


def test_strip_indices_and_overlay_colours():
    assert strip_indices(9, 5) == [0, 2, 4, 6, 8]
    assert strip_indices(100, 6) == [0, 20, 40, 60, 80]
    assert strip_indices(1, 6) == [0]
    frame = np.full((12, 12, 3), 100, dtype=np.uint8)
    target = np.zeros((1, 12, 12), dtype=bool)
    target[0, 2:8, 2:8] = True
    pred = np.zeros_like(target)
    pred[0, 5:10, 5:10] = True
    color = np.array([[250.0, 0.0, 0.0]])
    out = overlay(frame, color, target, pred)
    assert out[0, 0].tolist() == [100, 100, 100]  # untouched background
    assert out[2, 4].tolist() == [250, 0, 0]  # target outline
    assert out[4, 4].tolist() == [100, 100, 100]  # target interior, not tracked: no fill
    assert out[9, 9].tolist() == [round(0.55 * 100 + 0.45 * 250), 55, 55]  # tracked fill, alpha 0.45


def test_mixed_benchmark_hash_refused_unless_allowed(runs, tmp_path):
    _, bench, paths = runs
    other = make_run(
        tmp_path / "other", "Other", None, metrics(10.0, 90.0, 50.0, 50.0, 1.0), bench_hash="0" * 64
    )
    with pytest.raises(ReportError, match="--allow-mixed"):
        write_report([paths[0], other], tmp_path / "r1")
    assert main(["report", str(paths[0]), str(other), "--out", str(tmp_path / "r2")]) == 2
    index = write_report([paths[0], other], tmp_path / "r3", allow_mixed=True)
    assert (
        "different benchmark content hashes"
        in (tmp_path / "r3" / "leaderboard.md").read_text().splitlines()[0]
    )
    assert "different benchmark content hashes" in index.read_text()
    assert "gallery empty" in index.read_text()  # no sample is ok in both


def test_missing_results_and_duplicate_names(runs, tmp_path):
    _, _, paths = runs
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "run.json").write_text("{}")
    with pytest.raises(ReportError, match="flashbench evaluate"):
        load_runs([tmp_path / "raw"])
    again = make_run(tmp_path / "alpha2", "Alpha", None, metrics(1.0, 2.0, 3.0, 4.0, 5.0))
    loaded = load_runs([paths[1], again])
    assert [r.name for r in loaded] == ["Alpha (alpha)", "Alpha (alpha2)"]
    assert "| Alpha (alpha2) " in to_markdown(leaderboard_table(loaded))
    with pytest.raises(ReportError, match="clashing"):
        load_runs([paths[1], paths[1]])  # the same folder twice cannot be told apart


def test_cli_report(runs, tmp_path, capsys):
    _, _, paths = runs
    assert (
        main(
            [
                "report",
                *map(str, paths[:2]),
                "--out",
                str(tmp_path / "cli"),
                "--gallery-per-group",
                "0",
                "--base",
                str(paths[1]),
                "--n-boot",
                "200",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| Beta" in printed and str(tmp_path / "cli" / "index.html") in printed
    assert (tmp_path / "cli" / "compare.md").is_file() and not (tmp_path / "cli" / "gallery").exists()


def test_runs_without_groups(runs, tmp_path):
    _, _, paths = runs
    plain = make_run(
        tmp_path / "plain", "Plain", None, metrics(10.0, 90.0, 50.0, 50.0, 1.0), bench_hash="0" * 64
    )
    index = write_report([plain], tmp_path / "r", gallery_per_group=0)
    assert not (tmp_path / "r" / "plots" / "by_group.png").exists()
    assert (tmp_path / "r" / "plots" / "speed_quality.png").is_file()
    assert "No per-group metrics in results.json." in index.read_text()


def test_reasons_come_from_the_metrics_block_not_from_note_wording(tmp_path):
    from flashbench.aggregate import metrics_block

    one = [{"id": "a", "mask_iou": None, "box_iou": 0.5, "objmc": 3.0, "objmc_norm": 0.02}]  # box-only: no mask IoU
    block = metrics_block(one, {"a": {"denoise_seconds": 1.0, "nfe": 4}}, {"a": {"fid": np.zeros((1, 2)), "fvd": np.zeros((1, 2))}},
                          {"a": {"fid": np.zeros((1, 2)), "fvd": np.zeros((1, 2))}}, n_boot=0, seed=0)
    assert block.fvd is None and block.mask_iou is None and block.box_iou == 50.0
    assert set(block.reasons) == {"fid", "fvd", "mask_iou"}
    path = make_run(tmp_path / "n", "Noted", None, {**metrics(None, None, None, 50.0, 1.0), **block.to_json()})
    text = to_markdown(leaderboard_table(load_runs([path])))
    assert "[2] FVD ↓ of Noted: FVD not computed: 1 generated and 1 real videos, need >= 2 of each\n" in text
    assert "[3] M-IoU ↑ of Noted: no mask IoU: every sample has box-only ground truth\n" in text
    # a results file from before `reasons` existed: its notes are shown as they are
    legacy = metrics(12.0, None, None, None, 1.0)
    legacy["notes"] = ["FVD not computed: 1 generated and 1 real videos, need >= 2 of each", "no scored samples"]
    text = to_markdown(leaderboard_table(load_runs([make_run(tmp_path / "o", "Old", None, legacy)])))
    assert "[1] FVD ↓ of Old: FVD not computed: 1 generated and 1 real videos, need >= 2 of each; no scored samples\n" in text


def test_header_states_the_fvd_protocol_and_warns_when_runs_differ(runs, tmp_path):
    from flashbench.eval_features import FeatureSettings

    _, bench, _ = runs
    clips, whole = (FeatureSettings(clip_len=16, fvd_protocol=p).describe() for p in ("clips", "whole-video"))
    a = make_run(tmp_path / "a", "A", bench, metrics(15.0, 120.0, 70.0, 70.0, 1.0), settings=clips)
    b = make_run(tmp_path / "b", "B", bench, metrics(16.0, 130.0, 70.0, 70.0, 1.0), settings=clips)
    c = make_run(tmp_path / "c", "C", bench, metrics(16.0, 130.0, 70.0, 70.0, 1.0), settings=whole)
    index = write_report([a, b], tmp_path / "same", gallery_per_group=0)
    head = (tmp_path / "same" / "leaderboard.md").read_text().split("|")[0]
    assert "FID: Inception pool3 of every frame." in head
    assert "FVD: I3D on non-overlapping 16-frame clips, one feature row per clip." in head
    assert "--fvd-protocol whole-video" in head  # the reference protocol, by name
    assert "FVD: I3D on non-overlapping 16-frame clips" in index.read_text().split("</header>")[0]
    index = write_report([a, c], tmp_path / "mixed", gallery_per_group=0)
    head = (tmp_path / "mixed" / "leaderboard.md").read_text().split("|")[0]
    assert "FVD: WARNING, the runs differ" in head and "C: I3D on each whole video" in head
    assert "FVD: WARNING, the runs differ" in index.read_text().split("</header>")[0]
    record = json.loads((tmp_path / "mixed" / "leaderboard.json").read_text())
    assert record["runs"][1]["settings"]["fvd"]["protocol"] == "whole-video"


def test_rank_deficiency_warning_reaches_markdown_and_html(runs, tmp_path):
    _, bench, _ = runs
    note = ("FID: 40 samples for 2048-d features: the covariance is rank-deficient and the distance is biased; "
            "use more samples (frames/clips) for comparable values")
    overall = {**metrics(15.0, 120.0, 70.0, 70.0, 1.0), "notes": [note]}
    group = {**metrics(15.0, 120.0, 70.0, 70.0, 1.0), "notes": [note.replace("40 samples", "20 samples")]}
    run = make_run(tmp_path / "a", "A", bench, overall, {"1": group, "2": metrics(1.0, 2.0, 3.0, 4.0, 1.0)})
    index = write_report([run], tmp_path / "r", gallery_per_group=0)
    expected = ("Warning: A's FID has fewer feature rows than its 2048 dimensions (all: 40, 1 obj: 20 rows): the "
                "covariance is rank-deficient")
    assert expected in (tmp_path / "r" / "leaderboard.md").read_text()
    assert expected.replace("'", "&#x27;") in index.read_text()
    assert "FVD has fewer" not in index.read_text()  # only the metric whose notes say so
    # what evaluation writes now: the typed field, whatever the notes say
    typed = make_run(tmp_path / "b", "A", bench, {**metrics(15.0, 120.0, 70.0, 70.0, 1.0), "rank_deficient": {"fid": [40, 2048]}},
                     {"1": {**metrics(15.0, 120.0, 70.0, 70.0, 1.0), "rank_deficient": {"fid": [20, 2048]}, "notes": [note]}})
    write_report([typed], tmp_path / "t", gallery_per_group=0)
    assert expected in (tmp_path / "t" / "leaderboard.md").read_text()
