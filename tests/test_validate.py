"""`validate_benchmark` / `flashbench validate`: a clean benchmark passes; each kind of damage is reported."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from flashbench.cli import main
from flashbench.data.synthetic import build_synthetic
from flashbench.data.validate import validate_benchmark


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "b"
    build_synthetic(root, videos_per_group=1, frames=9, size=(64, 64), groups="1,2", seed=0)
    return root


@pytest.fixture
def bench(pristine, tmp_path):
    root = tmp_path / "b"
    shutil.copytree(pristine, root)
    return root


def problems(root) -> list[str]:
    return validate_benchmark(root, progress=False).problems


def test_clean_benchmark_passes(bench):
    report = validate_benchmark(bench, progress=False)
    assert report.ok and report.problems == []
    table = report.table()
    assert table["group"].tolist() == ["1", "2"] and table["samples"].tolist() == [1, 1]
    assert table["expected"].tolist() == [1, 1] and table["problems"].tolist() == [0, 0]
    assert report.content_hash == json.loads((bench / "meta.json").read_text())["content_hash"]


def test_truncated_video(bench):
    video = bench / "samples/syn-1-000/video.mp4"
    video.write_bytes(video.read_bytes()[:200])
    found = problems(bench)
    assert any(p.startswith("syn-1-000: ") and "video" in p for p in found)
    assert any("content hash" in p for p in found)


def test_wrong_size_mask_png(bench):
    png = Image.fromarray(np.zeros((32, 64), np.uint8), mode="P")
    png.save(bench / "samples/syn-2-000/masks/00004.png")
    assert "syn-2-000: mask 00004.png is (32, 64), expected (64, 64)" in problems(bench)


def test_mask_png_disagrees_with_objects_json(bench):
    path = bench / "samples/syn-1-000/masks/00002.png"
    png = Image.open(path)
    labels = np.asarray(png).copy()
    labels[0, 0] = 1 - labels[0, 0]
    out = Image.fromarray(labels, mode="P")
    out.putpalette(png.getpalette())
    out.save(path)
    assert "syn-1-000: mask 00002.png differs from objects.json frame 2" in problems(bench)


def test_missing_mask_png_and_missing_files(bench):
    (bench / "samples/syn-1-000/masks/00008.png").unlink()
    (bench / "samples/syn-2-000/first_frame.png").unlink()
    found = problems(bench)
    assert any(p.startswith("syn-1-000: 8 mask PNGs") for p in found)
    assert any(p.startswith("syn-2-000: missing first_frame") for p in found)


def test_manifest_inconsistencies(bench):
    lines = (bench / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    records[0]["group"] = "2"
    records[1]["num_frames"] = 8
    records[1]["objects"][0]["first_visible"] = 3
    (bench / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    found = problems(bench)
    assert "syn-1-000: 1 objects belong to group '1', manifest says '2'" in found
    assert any(p.startswith("syn-2-000: video is 9 frames") for p in found)
    assert "group 1: meta.json says 1 samples, manifest has 0" in found


def test_boxes_inconsistent_with_masks(bench):
    path = bench / "samples/syn-1-000/objects.json"
    record = json.loads(path.read_text())
    record["objects"][0]["boxes"][0] = [0.0, 0.0, 1.0, 1.0]
    path.write_text(json.dumps(record))
    assert "syn-1-000: objects.json boxes differ from the boxes of its masks" in problems(bench)


def test_not_a_benchmark(tmp_path):
    found = problems(tmp_path)
    assert len(found) == 1 and "not a benchmark" in found[0]


def test_cli_exit_codes_and_one_line_problems(bench, capsys):
    assert main(["validate", str(bench)]) == 0
    assert "OK: no problems found" in capsys.readouterr().out
    (bench / "samples/syn-1-000/masks/00008.png").unlink()
    (bench / "samples/stray").mkdir()
    assert main(["validate", str(bench)]) == 1
    out = capsys.readouterr().out
    listed = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert "sample folders not in the manifest: stray" in listed
    assert any(line.startswith("syn-1-000: 8 mask PNGs") for line in listed)
    assert any(line.startswith("content hash") for line in listed)
