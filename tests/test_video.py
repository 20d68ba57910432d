"""Video IO round trips (PyAV, decord), frame sampling and resizing, error paths."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from flashbench.errors import VideoError
from flashbench.video import (
    decoded_digest,
    fps_indices,
    iter_frames,
    read_video,
    resize_frames,
    resize_masks,
    rgb_to_yuv420p,
    uniform_indices,
    video_info,
    write_rgb_lossless,
    write_video,
)


def smooth_frames(t: int = 9, h: int = 64, w: int = 64) -> np.ndarray:
    """Smooth moving colour gradients: H.264 at crf 12 reproduces them within a few levels."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(t):
        r = 128 + 90 * np.sin((xx + 2 * i) / 11)
        g = 128 + 90 * np.cos((yy - i) / 13)
        b = 60 + 2 * xx + 0 * yy
        frames.append(np.stack([r, g, b], -1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_pyav_round_trip(tmp_path):
    frames = smooth_frames()
    path = tmp_path / "v.mp4"
    write_video(path, frames, fps=24)
    back = read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3.0
    info = video_info(path)
    assert (info.num_frames, info.height, info.width) == (9, 64, 64)
    assert info.fps == pytest.approx(24.0)
    strided = list(iter_frames(path, stride=4))
    assert len(strided) == 3 and np.array_equal(strided[1], back[4])


def test_fractional_fps(tmp_path):
    a = tmp_path / "a.mp4"
    write_video(a, smooth_frames(t=5), fps=24000 / 1001)
    assert video_info(a).fps == pytest.approx(float(Fraction(24000, 1001)), abs=1e-3)


def test_lossless_decodes_to_exact_planes_every_time(tmp_path):
    """The benchmark hash relies on this: decoded planes are a function of the pixels, though mp4 bytes are not."""
    frames = np.random.default_rng(0).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    expected = hashlib.sha256(b"".join(rgb_to_yuv420p(f).tobytes() for f in frames)).hexdigest()
    digests = set()
    for i in range(10):
        write_video(tmp_path / f"{i}.mp4", frames, fps=24, lossless=True)
        digests.add(decoded_digest(tmp_path / f"{i}.mp4"))
    assert digests == {(expected, 9, 64, 64)}


def test_run_store_gives_back_every_rgb_value_bit_for_bit(tmp_path):
    """Run folders store generated frames with write_rgb_lossless: what evaluate decodes is what the generator made
    (a YUV store cannot: the same noise through x264 yuv420p qp 0, the benchmark's lossless store, comes back off)."""
    rng = np.random.default_rng(0)
    for t, h, w in ((5, 64, 64), (3, 33, 47)):  # odd sizes too: no chroma subsampling
        frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
        write_rgb_lossless(tmp_path / "a.mp4", frames, fps=24000 / 1001)
        assert np.array_equal(read_video(tmp_path / "a.mp4"), frames)
        info = video_info(tmp_path / "a.mp4")
        assert (info.num_frames, info.height, info.width) == (t, h, w)
        assert info.fps == pytest.approx(24000 / 1001, abs=1e-3)
        write_rgb_lossless(tmp_path / "b.mp4", frames, fps=24000 / 1001)
        assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()  # deterministic
    write_video(tmp_path / "yuv.mp4", frames[:, :32, :46], fps=24, lossless=True)
    assert np.abs(read_video(tmp_path / "yuv.mp4").astype(int) - frames[:, :32, :46]).max() > 10
    with pytest.raises(VideoError, match="uint8"):
        write_rgb_lossless(tmp_path / "f.mp4", frames.astype(np.float32), fps=24)


def test_rgb_to_yuv420p_matches_swscale():
    frame = smooth_frames(t=1)[0]
    ours = rgb_to_yuv420p(frame).astype(int)
    ref = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 2


def test_decord_matches_pyav_at_width_multiple_of_32(tmp_path):
    pytest.importorskip("decord")
    frames = smooth_frames(t=9, h=48, w=64)
    path = tmp_path / "v.mp4"
    write_video(path, frames, fps=24)
    a, b = read_video(path, backend="pyav"), read_video(path, backend="decord")
    assert a.shape == b.shape == frames.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(VideoError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 63, 64, 3), np.uint8), fps=24)
    with pytest.raises(VideoError, match="empty"):
        write_video(tmp_path / "empty.mp4", np.zeros((0, 64, 64, 3), np.uint8), fps=24)
    with pytest.raises(VideoError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 64, 64, 3), np.float32), fps=24)
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("reader", [read_video, video_info, lambda p: list(iter_frames(p))])
def test_corrupt_mp4_is_one_line_video_error(tmp_path, reader):
    good = tmp_path / "good.mp4"
    write_video(good, smooth_frames(), fps=24)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(VideoError) as err:
        reader(bad)
    assert "\n" not in str(err.value) and "bad.mp4" in str(err.value)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        read_video(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError):
        video_info(junk)


def _reference_fps_indices(n: int, src: float, dst: float) -> list[int]:
    """Exact rational arithmetic: at tick i (time i/dst) show the source frame covering that time."""
    src_f, dst_f = Fraction(src).limit_denominator(1001), Fraction(dst).limit_denominator(1001)
    count = int(Fraction(n) * dst_f / src_f)
    return [min(int(Fraction(i) * src_f / dst_f), n - 1) for i in range(max(count, 1))]


@pytest.mark.parametrize("n,src,dst", [(49, 24, 8), (121, 24, 16), (10, 24, 12), (7, 12, 24), (50, 30, 24), (5, 24, 24)])
def test_fps_indices_against_exact_fractions(n, src, dst):
    assert fps_indices(n, src, dst).tolist() == _reference_fps_indices(n, src, dst)


def test_fps_indices_rejects_nonpositive():
    with pytest.raises(VideoError):
        fps_indices(10, 0, 24)


@pytest.mark.parametrize("n_src,n_dst", [(121, 49), (10, 10), (100, 7), (5, 9), (1, 3)])
def test_uniform_indices(n_src, n_dst):
    idx = uniform_indices(n_src, n_dst)
    assert len(idx) == n_dst and idx[0] == 0 and idx[-1] == n_src - 1
    assert (np.diff(idx) >= 0).all()
    if n_dst > 1:  # each index is the nearest to its ideal position
        ideal = np.arange(n_dst) * (n_src - 1) / (n_dst - 1)
        assert np.abs(idx - ideal).max() <= 0.5 + 1e-9


def test_resize_frames_matches_pil_bilinear():
    frames = smooth_frames(t=2, h=64, w=64)
    ours = resize_frames(frames, (32, 48))
    assert ours.shape == (2, 32, 48, 3)
    ref = np.asarray(Image.fromarray(frames[0]).resize((48, 32), Image.BILINEAR))
    assert np.abs(ours[0].astype(int) - ref.astype(int)).mean() < 2.0
    constant = np.full((1, 30, 30, 3), 77, np.uint8)
    assert (resize_frames(constant, (16, 20)) == 77).all()


def test_resize_masks_nearest():
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=(2, 3, 8, 6)) > 0.5
    up = resize_masks(masks, (16, 12))
    assert up.dtype == bool and np.array_equal(up, masks.repeat(2, axis=-2).repeat(2, axis=-1))
    assert np.array_equal(resize_masks(up, (8, 6)), masks)
