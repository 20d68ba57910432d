"""DAVIS importer and the shared build filters, on tiny DAVIS-layout folders made with PIL."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from flashbench.cli import main
from flashbench.data.benchmark import davis_palette
from flashbench.data.build import BuildOptions
from flashbench.data.davis import build_davis, load_sequence
from flashbench.data.validate import validate_benchmark
from flashbench.errors import BenchmarkError


def labels_for(t: int, h: int, w: int, objects: int, void: bool = True) -> np.ndarray:
    """(T, H, W) uint8 labels: object k is a 10x10 square moving right; a void (255) border strip."""
    labels = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        for k in range(objects):
            labels[i, 4 + 12 * k : 14 + 12 * k, 4 + i : 14 + i] = k + 1
        if void:
            labels[i, :, -2:] = 255
    return labels


def make_sequence(root, name, labels, mode="P", res="480p", frames=None):
    t, h, w = labels.shape
    jdir, adir = root / "JPEGImages" / res / name, root / "Annotations" / res / name
    jdir.mkdir(parents=True)
    adir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(t if frames is None else frames):
        img = np.full((h, w, 3), 100, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(jdir / f"{i:05d}.jpg", quality=95)
    for i in range(t):
        png = Image.fromarray(labels[i], mode="L" if mode == "L" else "P")
        if mode == "P":
            png.putpalette(davis_palette())
        png.save(adir / f"{i:05d}.png")


@pytest.fixture
def davis_root(tmp_path):
    root = tmp_path / "DAVIS"
    make_sequence(root, "bmx-trees", labels_for(9, 48, 64, 2))
    make_sequence(root, "car-shadow", labels_for(12, 48, 64, 3))
    make_sequence(root, "blackswan", np.where(labels_for(9, 48, 64, 1, void=False) > 0, 255, 0).astype(np.uint8), mode="L")
    return root


def test_load_sequence_palette_and_void(davis_root):
    clip = load_sequence(davis_root, "bmx-trees")
    labels = labels_for(9, 48, 64, 2)
    assert clip.frames.shape == (9, 48, 64, 3) and clip.masks.shape == (9, 2, 48, 64)
    for k in range(2):
        assert np.array_equal(clip.masks[:, k], labels == k + 1)
    assert not clip.masks[:, :, :, -2:].any()  # void is background
    assert clip.prompt == "bmx trees" and clip.fps == 24.0


def test_load_sequence_binary_davis2016(davis_root):
    clip = load_sequence(davis_root, "blackswan")
    assert clip.masks.shape[1] == 1
    assert np.array_equal(clip.masks[:, 0], labels_for(9, 48, 64, 1, void=False) > 0)


def test_import_and_validate(davis_root, tmp_path):
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"car-shadow": "A car drives past its shadow"}))
    bench, summary = build_davis(davis_root, tmp_path / "out", captions=captions)
    assert [s.id for s in bench.samples] == ["blackswan", "bmx-trees", "car-shadow"]
    assert [s.object_count for s in bench.samples] == [1, 2, 3]
    assert [s.num_frames for s in bench.samples] == [9, 9, 12]  # native lengths kept
    assert bench.get("car-shadow").prompt == "A car drives past its shadow"
    assert summary.written == 3 and not summary.dropped_samples
    assert bench.meta.build["builder"] == "davis" and bench.meta.build["summary"]["written"] == 3
    report = validate_benchmark(tmp_path / "out", progress=False)
    assert report.ok, report.problems


def test_filters_pad_drop_frames_size(davis_root, tmp_path):
    # --min-frames 10 --drop: the two 9-frame sequences are dropped, counted.
    bench, summary = build_davis(davis_root, tmp_path / "a", BuildOptions(min_frames=10))
    assert [s.id for s in bench.samples] == ["car-shadow"] and summary.dropped_samples == {"too_short": 2}
    assert bench.meta.build["summary"]["dropped_samples"] == {"too_short": 2}
    # --pad: repeated last frame.
    bench, summary = build_davis(davis_root, tmp_path / "b", BuildOptions(min_frames=10, pad=True), sequences=["bmx-trees"])
    tracks = bench.tracks(bench.samples[0])
    assert bench.samples[0].num_frames == 10 and summary.padded == 1
    assert np.array_equal(tracks.masks[9], tracks.masks[8])
    # --frames 5 uniform over 12 frames, and resize to 24x32.
    bench, _ = build_davis(davis_root, tmp_path / "c", BuildOptions(frames=5, size=(24, 32)), sequences=["car-shadow"])
    s = bench.samples[0]
    assert (s.num_frames, s.height, s.width) == (5, 24, 32)
    assert s.fps == pytest.approx(24.0 * 4 / 11)  # duration kept
    labels = labels_for(12, 48, 64, 3)[[0, 3, 6, 8, 11]]  # uniform_indices(12, 5)
    expected = labels[:, 1::2, 1::2] == 1  # nearest-exact halving samples pixel centres 2i + 1
    assert np.array_equal(bench.tracks(s).masks[:, 0], expected)
    # --fps 12: every other frame.
    bench, _ = build_davis(davis_root, tmp_path / "d", BuildOptions(fps=12), sequences=["car-shadow"])
    assert bench.samples[0].num_frames == 6 and bench.samples[0].fps == 12.0


def test_filters_area_groups_cap(davis_root, tmp_path):
    # Each square covers 100 / 3072 = 0.033 of the frame.
    bench, summary = build_davis(davis_root, tmp_path / "a", BuildOptions(min_area=0.05))
    assert len(bench) == 0 and summary.dropped_objects == {"area_below_min": 6, "area_above_max": 0, "never_visible": 0}
    assert summary.dropped_samples == {"no_objects_left": 3}
    bench, summary = build_davis(davis_root, tmp_path / "b", BuildOptions(groups=("1", "2")))
    assert [s.id for s in bench.samples] == ["blackswan", "bmx-trees"] and summary.dropped_samples == {"no_group": 1}
    bench, summary = build_davis(davis_root, tmp_path / "c", BuildOptions(groups=("1", "2+"), per_group_cap=1))
    assert [s.id for s in bench.samples] == ["blackswan", "bmx-trees"] and summary.dropped_samples == {"group_cap": 1}


def test_never_visible_object_dropped(tmp_path):
    root = tmp_path / "DAVIS"
    labels = labels_for(9, 48, 64, 2)
    make_sequence(root, "seq", labels)
    clip = load_sequence(root, "seq")
    assert clip.masks.shape[1] == 2
    # Object 2 only exists in frame 8; cut to the first 4 frames -> never visible there.
    labels[:8][labels[:8] == 2] = 0
    root2 = tmp_path / "DAVIS2"
    make_sequence(root2, "seq", labels)
    bench, summary = build_davis(root2, tmp_path / "out", BuildOptions(frames=4, frames_mode="first"))
    assert bench.samples[0].object_count == 1 and summary.dropped_objects["never_visible"] == 1


def test_mask_frame_count_mismatch_is_one_line_error(tmp_path):
    root = tmp_path / "DAVIS"
    make_sequence(root, "short-masks", labels_for(5, 48, 64, 1), frames=6)
    with pytest.raises(BenchmarkError) as err:
        load_sequence(root, "short-masks")
    assert "6 frames but 5 annotations" in str(err.value) and "\n" not in str(err.value)


def test_mask_size_mismatch_is_one_line_error(tmp_path):
    root = tmp_path / "DAVIS"
    make_sequence(root, "seq", labels_for(3, 48, 64, 1))
    Image.fromarray(np.zeros((40, 64), np.uint8), mode="L").save(root / "Annotations/480p/seq/00001.png")
    with pytest.raises(BenchmarkError, match="different sizes"):
        load_sequence(root, "seq")
    for i in range(3):
        Image.fromarray(labels_for(3, 40, 64, 1)[i], mode="L").save(root / f"Annotations/480p/seq/{i:05d}.png")
    with pytest.raises(BenchmarkError, match="masks are 40x64 but frames are 48x64"):
        load_sequence(root, "seq")


def test_bad_root_and_sequence(tmp_path, davis_root):
    with pytest.raises(BenchmarkError, match="JPEGImages"):
        build_davis(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(BenchmarkError, match="not-there"):
        build_davis(davis_root, tmp_path / "out", sequences=["not-there"])
    with pytest.raises(BenchmarkError, match="even"):
        BuildOptions(size=(25, 32))


def test_cli_build_davis_then_validate(davis_root, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["build", "davis", "--root", str(davis_root), "--out", str(out), "--sequences", "bmx-trees,car-shadow",
               "--min-frames", "10", "--pad", "--size", "32x48"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "padded: 1" in printed and "written: 2" in printed
    assert main(["validate", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    make_sequence(davis_root, "broken", labels_for(5, 48, 64, 1), frames=6)
    assert main(["build", "davis", "--root", str(davis_root), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: DAVIS sequence broken: 6 frames but 5 annotations")
