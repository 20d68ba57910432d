"""Procedural scenes and the synthetic benchmark builder."""

from __future__ import annotations

import colorsys
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from flashbench.cli import main
from flashbench.data.benchmark import Benchmark
from flashbench.data.synthetic import SHAPES, build_synthetic, generate_scene
from flashbench.errors import BenchmarkError


def saturation(pixels: np.ndarray) -> np.ndarray:
    """HSV saturation of (..., 3) uint8 pixels via colorsys (independent of the renderer)."""
    flat = pixels.reshape(-1, 3) / 255.0
    return np.array([colorsys.rgb_to_hsv(*p)[1] for p in flat])


def test_scene_shapes_and_visible_masks():
    scene = generate_scene(4, 13, (64, 80), seed=3)
    assert scene.frames.shape == (13, 64, 80, 3) and scene.frames.dtype == np.uint8
    assert scene.masks.shape == (13, 4, 64, 80) and scene.masks.dtype == bool
    assert scene.masks.sum(axis=1).max() <= 1  # visible parts never overlap (occlusion resolved)
    visible = scene.masks.any(axis=(2, 3))
    assert visible.any(axis=0).all()  # every object visible somewhere
    assert visible[0].sum() >= 3  # all but at most one (the "enterer") visible in frame 0
    assert len(scene.categories) == 4 and set(scene.categories) <= set(SHAPES)
    for shape in scene.categories:
        assert shape in scene.prompt


def test_objects_stand_out_from_background():
    scene = generate_scene(3, 5, (64, 64), seed=7)
    fg = scene.masks.any(axis=1)
    rng = np.random.default_rng(0)
    fg_pix = scene.frames[fg][rng.choice(fg.sum(), 300)]
    bg_pix = scene.frames[~fg][rng.choice((~fg).sum(), 300)]
    assert np.median(saturation(fg_pix)) > 0.45 > 0.25 > np.median(saturation(bg_pix))


def _touches_border(masks: np.ndarray) -> np.ndarray:
    """(..., H, W) bool -> (...,) whether the mask has a pixel in the outermost row or column."""
    return masks[..., 0, :].any(-1) | masks[..., -1, :].any(-1) | masks[..., :, 0].any(-1) | masks[..., :, -1].any(-1)


def test_motion_is_smooth_and_nonzero():
    ys, xs = np.mgrid[0:64, 0:64]
    steps = []
    for seed in range(6):
        m = generate_scene(1, 17, (64, 64), seed=seed).masks[:, 0]
        inside = m.any(axis=(1, 2)) & ~_touches_border(m)  # centroids of cut-off shapes jump as they cross an edge
        area = m.sum(axis=(1, 2))[inside]
        cx, cy = (m[inside] * xs).sum(axis=(1, 2)) / area, (m[inside] * ys).sum(axis=(1, 2)) / area
        consecutive = np.diff(np.flatnonzero(inside)) == 1
        steps.append(np.hypot(np.diff(cx), np.diff(cy))[consecutive])
    steps = np.concatenate(steps)
    assert len(steps) >= 40
    assert steps.max() < 6.0  # no teleporting: a few pixels per frame at 64x64 over 17 frames
    assert np.median(steps) > 0.5  # and the objects do move


# a small seeded batch of short clips, as the demo and the tests build them
BATCH = [(n, seed, size) for n in (1, 2, 3, 6) for seed in range(6) for size in ((64, 64), (128, 128))]


@pytest.fixture(scope="module")
def batch():
    return [(n, seed, size, generate_scene(n, 16, size, seed=seed).masks) for n, seed, size in BATCH]


def test_choreography_is_trackable_from_the_first_visible_frame(batch):
    entered = left = occluded = 0
    for n, seed, size, masks in batch:
        area = masks.sum(axis=(2, 3))  # (T, N) visible pixels
        assert (area[0] > 0).sum() >= n - 1, (n, seed, size)  # at most one object enters later
        for k in range(n):
            on = np.flatnonzero(area[:, k])
            first, last = on[0], on[-1]
            where = (n, seed, size, k)
            # visible on one unbroken run of frames: no re-entry after leaving, never fully hidden meanwhile
            assert last - first + 1 == on.size, where
            # the first visible frame (the prompt) is no sliver, and the object is substantially in soon after
            assert area[first, k] >= 16, where
            assert area[first : first + 3, k].max() >= 0.3 * area[:, k].max(), where
            if last < len(area) - 1:
                assert area[last, k] >= 16, where  # a leaver is still clearly there on its last frame
            # partial occlusion: away from the border the object shows >= 25% of its largest unclipped area
            free = (area[:, k] > 0) & ~_touches_border(masks[:, k])
            if free.any():
                assert area[free, k].min() >= 0.25 * area[free, k].max(), where
                occluded += int(area[free, k].min() < 0.6 * area[free, k].max())  # breathing alone: >= 0.72
            entered += int(first > 0)
            left += int(last < len(area) - 1)
    assert entered >= 2 and left >= 2 and occluded >= 2, (entered, left, occluded)


def test_crowded_long_scene_keeps_the_rules():
    masks = generate_scene(8, 40, (64, 64), seed=3).masks
    area = masks.sum(axis=(2, 3))
    for k in range(8):
        on = np.flatnonzero(area[:, k])
        assert on[-1] - on[0] + 1 == on.size and area[on[0], k] >= 16


def test_deterministic_per_seed():
    a = generate_scene(3, 9, (64, 64), seed=5)
    b = generate_scene(3, 9, (64, 64), seed=5)
    c = generate_scene(3, 9, (64, 64), seed=6)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks) and a.prompt == b.prompt
    assert not np.array_equal(a.frames, c.frames)


def test_rejects_bad_arguments():
    with pytest.raises(BenchmarkError):
        generate_scene(0, 9, (64, 64), seed=0)
    with pytest.raises(BenchmarkError, match="even"):
        build_synthetic("/nonexistent/never-written", videos_per_group=1, frames=9, size=(63, 64))


def test_build_balanced_groups_and_hash(tmp_path):
    kwargs = dict(videos_per_group=2, frames=9, size=(64, 64), groups="1,3,6+")
    a = build_synthetic(tmp_path / "a", seed=0, **kwargs)
    assert a.meta.group_sizes == {"1": 2, "3": 2, "6+": 2}
    counts = {g: [s.object_count for s in v] for g, v in a.by_group().items()}
    assert counts["1"] == [1, 1] and counts["3"] == [3, 3] and all(6 <= n <= 8 for n in counts["6+"])
    assert a.meta.build["builder"] == "synthetic" and a.meta.build["seed"] == 0 and a.meta.build["frames"] == 9
    s = a.samples[0]
    assert (s.num_frames, s.height, s.width, s.fps) == (9, 64, 64, 24.0)
    b = build_synthetic(tmp_path / "b", seed=0, **kwargs)
    c = build_synthetic(tmp_path / "c", seed=1, **kwargs)
    assert a.meta.content_hash == b.meta.content_hash != c.meta.content_hash
    assert Benchmark.load(tmp_path / "a").compute_content_hash() == a.meta.content_hash


def test_cli_build_synthetic(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["build", "synthetic", "--out", str(out), "--videos-per-group", "1", "--frames", "9",
            "--size", "64x64", "--groups", "1,2"]  # fmt: skip
    assert main(args) == 0
    assert "wrote 2 samples" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_interrupted_build_leaves_nothing_and_a_retry_works(tmp_path, monkeypatch):
    import flashbench.data.synthetic as synthetic

    calls = []

    def flaky_scene(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second video
        return generate_scene(*args, **kwargs)

    monkeypatch.setattr(synthetic, "generate_scene", flaky_scene)
    kwargs = dict(videos_per_group=1, frames=9, size=(64, 64), groups="1,2")
    with pytest.raises(KeyboardInterrupt):
        build_synthetic(tmp_path / "bench", **kwargs)
    assert list(tmp_path.iterdir()) == []  # neither --out nor the staging folder
    bench = build_synthetic(tmp_path / "bench", **kwargs)  # the same --out, no --overwrite
    assert len(bench) == 2 and [p.name for p in tmp_path.iterdir()] == ["bench"]


HASH_SCRIPT = """
import sys
from flashbench.data.synthetic import build_synthetic
print(build_synthetic(sys.argv[1], videos_per_group=1, frames=9, size=(64, 64), groups="1,3,6+", seed=0).meta.content_hash)
"""


def test_content_hash_reproducible_in_and_across_processes(tmp_path):
    """x264 does not give the same bytes every time (see flashbench.video.write_video); the hash must not care."""
    kwargs = dict(videos_per_group=1, frames=9, size=(64, 64), groups="1,3,6+", seed=0)
    hashes = {build_synthetic(tmp_path / f"in-{i}", **kwargs).meta.content_hash for i in range(10)}
    for i in range(2):
        out = subprocess.run([sys.executable, "-c", HASH_SCRIPT, str(tmp_path / f"sub-{i}")], capture_output=True,
                             text=True, check=True)
        hashes.add(out.stdout.strip().splitlines()[-1])
    assert len(hashes) == 1
    bench = Benchmark.load(tmp_path / "in-0")
    assert bench.meta.hash_version == 2 and bench.compute_content_hash() == hashes.pop()


def _high_frequency(frames: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute difference of the grey image from its Gaussian blur (1.5 px) inside `region` shrunk by
    3 px (away from object edges)."""
    grey = frames.astype(np.float64).mean(-1)
    detail = np.abs(grey - ndimage.gaussian_filter(grey, (0, 1.5, 1.5)))
    inner = ndimage.binary_erosion(region, structure=np.ones((1, 3, 3)), iterations=3)
    return float(detail[inner].mean())


def test_flat_style_is_smooth_plain_and_larger_with_the_same_rules():
    textured = [generate_scene(3, 9, (96, 96), seed=s) for s in range(4)]
    flat = [generate_scene(3, 9, (96, 96), seed=s, style="flat") for s in range(4)]
    for name, region in (("background", lambda s: ~s.masks.any(1)), ("objects", lambda s: s.masks.any(1))):
        hf = {style: np.mean([_high_frequency(s.frames, region(s)) for s in scenes])
              for style, scenes in (("flat", flat), ("textured", textured))}  # fmt: skip
        assert hf["flat"] < 0.3 * hf["textured"], (name, hf)  # no fine texture, no patterns on the objects
    area = lambda scenes: np.mean([s.masks[0].sum((1, 2)).max() for s in scenes])  # noqa: E731
    assert area(flat) > 1.3 * area(textured)  # 1.3x the radius
    assert all("textured" not in s.prompt for s in flat) and all("textured" in s.prompt for s in textured)
    for s in flat:  # the choreography rules hold for the larger objects too
        on = s.masks.sum((2, 3))
        assert (on[0] > 0).sum() >= 2 and s.masks.sum(1).max() <= 1
    with pytest.raises(BenchmarkError, match="unknown synthetic style"):
        generate_scene(1, 3, (32, 32), seed=0, style="glossy")
