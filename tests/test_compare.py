"""Ablation compare: deltas vs base, paired bootstrap on per-sample IoU, pairing by id."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from report_runs import make_run, metrics
from scipy import stats as sps

from flashbench.cli import main
from flashbench.report.compare import compare_runs, write_compare
from flashbench.report.runs import load_runs

N = 40


def _samples(
    mask: np.ndarray, box: np.ndarray, failed: tuple[int, ...] = (), drop: tuple[int, ...] = ()
) -> list:
    rows = []
    for i in range(N):
        if i in drop:
            continue
        ok = i not in failed
        rows.append(
            {
                "id": f"v{i:03d}",
                "group": "1",
                "object_count": 1,
                "status": "ok" if ok else "error",
                "error": None if ok else "decode failed",
                "mask_iou": float(mask[i]) if ok else None,
                "box_iou": float(box[i]) if ok else None,
                "objects": [],
                "denoise_seconds": 1.0,
                "nfe": 4,
            }
        )
    return rows


def _overall(samples: list, fid: float, seconds: float) -> dict:
    ok = [s for s in samples if s["status"] == "ok"]
    return metrics(
        fid,
        2 * fid,
        100 * np.mean([s["mask_iou"] for s in ok]),
        100 * np.mean([s["box_iou"] for s in ok]),
        seconds,
        n=len(ok),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    rng = np.random.default_rng(0)
    base_mask, base_box = rng.uniform(0.3, 0.9, N), rng.uniform(0.3, 0.9, N)
    specs = {
        # consistent +3 points on every sample: significant although small next to the spread between samples
        "better": (
            base_mask + 0.03 + rng.normal(0, 0.01, N),
            base_box + 0.03 + rng.normal(0, 0.01, N),
            (1, 2, 3),
            (),
        ),
        # unbiased noise: not significant
        "noisy": (base_mask + rng.normal(0, 0.1, N), base_box + rng.normal(0, 0.1, N), (), (38, 39)),
    }
    paths = {}
    base_samples = _samples(base_mask, base_box)
    paths["base"] = make_run(
        root / "base", "Base", None, _overall(base_samples, 20.0, 30.0), steps=50, samples=base_samples
    )
    for i, (name, (mask, box, failed, drop)) in enumerate(specs.items()):
        samples = _samples(np.clip(mask, 0, 1), np.clip(box, 0, 1), failed, drop)
        paths[name] = make_run(
            root / name,
            name.title(),
            None,
            _overall(samples, 18.0 + 3 * i, 1.0 + i),
            steps=4,
            samples=samples,
        )
    return root, paths


def test_paired_significance_direction_and_pairing(runs):
    _, paths = runs
    loaded = load_runs([paths["base"], paths["better"], paths["noisy"]])
    record = compare_runs(loaded, loaded[0], n_boot=4000, seed=0)
    base, better, noisy = record["runs"]
    assert base["is_base"] and base["metrics"]["mask_iou"]["test"] is None
    for key in ("mask_iou", "box_iou"):
        test = better["metrics"][key]["test"]
        assert test["n"] == N - 3  # the 3 samples that failed in "better" are left out, not averaged in
        assert 2.0 < test["delta"] < 4.0 and test["ci95"][0] > 0 and test["p_value"] < 0.01
        noisy_test = noisy["metrics"][key]["test"]
        assert noisy_test["n"] == N - 2  # ids missing from "noisy" are not paired
        # agree with an independent paired test on the same pairs
        a = {s["id"]: s[key] for s in loaded[2].samples}
        b = {s["id"]: s[key] for s in loaded[0].samples}
        ids = sorted(set(a) & set(b))
        t_p = sps.ttest_rel([a[i] for i in ids], [b[i] for i in ids]).pvalue
        assert (noisy_test["p_value"] < 0.05) == (t_p < 0.05)
        assert noisy_test["delta"] == pytest.approx(100 * np.mean([a[i] - b[i] for i in ids]))
    assert better["samples"] == {"ok_both": N - 3, "ok_only_run": 0, "ok_only_base": 3}
    # set-level metrics: plain delta, no test
    assert (
        better["metrics"]["fid"]["delta"] == pytest.approx(18.0 - 20.0)
        and better["metrics"]["fid"]["test"] is None
    )
    assert noisy["metrics"]["denoise_seconds"]["delta"] == pytest.approx(2.0 - 30.0)


def test_compare_files_and_markdown(runs, tmp_path):
    _, paths = runs
    loaded = load_runs([paths["base"], paths["better"], paths["noisy"]])
    record, table = write_compare(loaded, loaded[0], tmp_path, n_boot=2000)
    text = (tmp_path / "compare.md").read_text()
    rows = {
        ln.split("|")[1].strip(): [c.strip() for c in ln.strip("|").split("|")]
        for ln in text.splitlines()
        if ln.startswith("| ")
    }
    assert rows["Base (base)"][2] == "base"
    assert rows["Better"][2] == "−2.00"  # FID delta, no test
    assert rows["Better"][6].startswith("**+") and "*" in rows["Better"][6].strip(
        "*"
    )  # significant M-IoU gain
    assert rows["Better"][-1] == str(N - 3)
    assert "37 samples paired; left out 0 ok only in this run and 3 ok only in the base" in text
    frame = pd.read_csv(tmp_path / "compare.csv")
    row = frame[(frame.method == "Better") & (frame.metric == "mask_iou")].iloc[0]
    test = record["runs"][1]["metrics"]["mask_iou"]["test"]
    assert row.p_value == pytest.approx(test["p_value"]) and row.paired_n == N - 3
    assert np.isnan(frame[(frame.method == "Better") & (frame.metric == "fid")].iloc[0].p_value)
    assert json.loads((tmp_path / "compare.json").read_text())["base"] == "Base"


def test_cli_compare_default_base_and_explicit_base(runs, tmp_path, capsys):
    _, paths = runs
    assert (
        main(
            [
                "compare",
                str(paths["better"]),
                str(paths["noisy"]),
                "--base",
                str(paths["base"]),
                "--out",
                str(tmp_path / "c"),
                "--n-boot",
                "500",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "Base (base)" in printed and "written:" in printed
    )  # --base outside RUN... is loaded and listed first
    assert json.loads((tmp_path / "c" / "compare.json").read_text())["runs"][0]["method"] == "Base"
    assert (
        main(
            [
                "compare",
                str(paths["noisy"]),
                str(paths["base"]),
                "--out",
                str(tmp_path / "d"),
                "--n-boot",
                "500",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "d" / "compare.json").read_text())["base"] == "Noisy"  # default: first RUN
