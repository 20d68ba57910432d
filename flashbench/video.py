"""Video IO: PyAV primary (decord optional for reading), H.264 mp4 writing (benchmarks), the lossless RGB store of
run folders (`write_rgb_lossless`), frame resampling and resizing.

Frames are always uint8 arrays shaped (T, H, W, 3), RGB.
"""

from __future__ import annotations

import hashlib
import math
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from flashbench.atomic import atomic_path
from flashbench.errors import VideoError

# x264's AVX-512 kernels encode the same input to different bitstreams now and then (on this AMD EPYC with PyAV
# 18's x264: up to 14 different files out of 15 encodes of one 6-frame clip, for lossy and lossless alike).
# Capped at AVX2, x264 gave identical bytes in every trial at the same speed (tests/test_video_determinism.py).
_X264_ASM = {
    machine: "MMX2,SSE,SSE2,SSE2Fast,SSSE3,SSE4.1,SSE4.2,AVX,FMA3,BMI1,BMI2,AVX2" for machine in ("x86_64", "AMD64")
}
# How run folders store generated frames (recorded in run.json as `video_store`): FFV1 on bgr0, bit-exact RGB.
# Measured against libx264rgb qp 0 and YUV stores by benchmarks/lossless_storage.py (docs/ARCHITECTURE.md).
RUN_VIDEO_STORE = {"codec": "ffv1", "pix_fmt": "bgr0", "level": 3, "container": "mp4", "lossless": "rgb"}
_FIX = "re-encode it (ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4) or regenerate it"


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    height: int
    width: int


def _open(path: Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot open video {path} ({e}); {_FIX}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream; {_FIX}")
    return container


def iter_frames(path: Path, stride: int = 1) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 RGB frames, every `stride`-th one, decoding as it goes (no full load)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = 0
        for i, frame in enumerate(container.decode(stream)):
            if i % stride == 0:
                yield frame.to_ndarray(format="rgb24")
            count += 1
    except av.error.FFmpegError as e:
        raise VideoError(f"corrupt video {path} ({e}); {_FIX}") from None
    finally:
        container.close()
    if count == 0:
        raise VideoError(f"{path} decodes to zero frames; {_FIX}")


def read_video(path: Path, backend: str = "pyav") -> np.ndarray:
    """Read a whole video as (T, H, W, 3) uint8. backend: 'pyav' or 'decord' (when installed)."""
    if backend == "decord":
        return _read_decord(Path(path))
    if backend != "pyav":
        raise VideoError(f"unknown video backend {backend!r}: use 'pyav' or 'decord'")
    return np.stack(list(iter_frames(path)))


def _read_decord(path: Path) -> np.ndarray:
    try:
        import decord
    except ImportError:
        raise VideoError("decord is not installed: pip install 'flashbench[decord]' or use backend='pyav'") from None
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        frames = reader.get_batch(list(range(len(reader)))).asnumpy()
    except decord.DECORDError as e:
        raise VideoError(f"corrupt video {path} ({e}); {_FIX}") from None
    if len(frames) == 0:
        raise VideoError(f"{path} decodes to zero frames; {_FIX}")
    return frames


def video_info(path: Path) -> VideoInfo:
    """Frame count (decoded, not trusted from the header), fps and size."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        count = sum(1 for _ in container.demux(stream) if _.size > 0)
        height, width = stream.codec_context.height, stream.codec_context.width
    except av.error.FFmpegError as e:
        raise VideoError(f"corrupt video {path} ({e}); {_FIX}") from None
    finally:
        container.close()
    if count == 0:
        raise VideoError(f"{path} has zero frames; {_FIX}")
    return VideoInfo(num_frames=count, fps=fps, height=height, width=width)


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H * 3 / 2, W) uint8 planar yuv420p (Y, then U, then V), as PyAV lays it out.

    BT.601 limited range (what decoders assume for untagged video, as swscale's default); chroma is the mean of
    each 2x2 block (centre siting). Done here, not by swscale, so a lossless file's decoded planes are a function
    of the pixels alone, whatever the FFmpeg build.
    """
    rgb = frame.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = y.shape

    def down(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).reshape(h // 4, w)

    return np.clip(np.rint(np.concatenate([y, down(u), down(v)])), 0, 255).astype(np.uint8)


def write_video(
    path: Path, frames: np.ndarray, fps: float, crf: int = 12, preset: str = "medium", lossless: bool = False
) -> None:
    """Write (T, H, W, 3) uint8 frames as H.264 yuv420p mp4, atomically (temp file, then rename).

    lossless=True (x264 qp 0, what benchmarks store) makes the decoded yuv420p planes exactly
    `rgb_to_yuv420p(frame)` on any machine. Even single-threaded, PyAV 18.1's libx264 gave a different bitstream
    for the same input now and then (1 to 4 of 15 writes of a 64x64 clip; 0 of 180 with asm off): its AVX-512
    kernels, which `_X264_ASM` leaves out on x86-64, so the same frames now give the same file on one machine.
    Other machines (other x264 builds, other SIMD) may still differ: hash decoded frames (`decoded_digest`),
    never mp4 bytes.
    """
    frames = _checked(path, frames, fps)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise VideoError(f"H.264 yuv420p needs even sizes, got {h}x{w} for {path}; resize to even height and width")
    quality = {"qp": "0"} if lossless else {"crf": str(crf)}
    with atomic_path(Path(path)) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {**quality, "preset": preset}
        if platform.machine() in _X264_ASM:
            stream.options = {**stream.options, "x264-params": f"asm={_X264_ASM[platform.machine()]}"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")))
        container.mux(stream.encode())


def write_rgb_lossless(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write (T, H, W, 3) uint8 frames so that `read_video` gives them back bit for bit (RUN_VIDEO_STORE), atomically.

    FFV1 codes the RGB planes losslessly (no YUV conversion, no chroma subsampling; any size, odd ones too) and
    is deterministic: the same frames give the same bytes. The container is MP4 (FFmpeg maps FFV1 into it), so
    run folders keep their `<id>.mp4` names; players that know only H.264 will not play these files.
    """
    frames = _checked(path, frames, fps)
    with atomic_path(Path(path)) as tmp, av.open(str(tmp), mode="w", format=RUN_VIDEO_STORE["container"]) as container:
        stream = container.add_stream(RUN_VIDEO_STORE["codec"], rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = RUN_VIDEO_STORE["pix_fmt"]
        stream.codec_context.thread_count = 1
        stream.options = {"level": str(RUN_VIDEO_STORE["level"])}
        for frame in frames:  # rgb24 -> bgr0 is a byte shuffle: nothing is lost
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(video_frame.reformat(format=RUN_VIDEO_STORE["pix_fmt"])))
        container.mux(stream.encode())


def _checked(path: Path, frames: np.ndarray, fps: float) -> np.ndarray:
    """`frames` as an array, or a VideoError naming `path` when they or `fps` cannot be written."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoError(f"writing {path} needs uint8 frames shaped (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise VideoError(f"refusing to write an empty video to {path}")
    if not math.isfinite(fps) or fps <= 0:
        raise VideoError(f"fps must be a positive number, got {fps} for {path}")
    return frames


def decoded_digest(path: Path) -> tuple[str, int, int, int]:
    """(sha256 of the decoded yuv420p planes of every frame, frame count, height, width) of a video."""
    container = _open(path)
    h = hashlib.sha256()
    count, height, width = 0, 0, 0
    try:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p")
            h.update(np.ascontiguousarray(frame.to_ndarray()).tobytes())
            count, height, width = count + 1, frame.height, frame.width
    except av.error.FFmpegError as e:
        raise VideoError(f"corrupt video {path} ({e}); {_FIX}") from None
    finally:
        container.close()
    if count == 0:
        raise VideoError(f"{path} decodes to zero frames; {_FIX}")
    return h.hexdigest(), count, height, width


def fps_indices(num_src: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Source frame index shown at each tick of `dst_fps` (frame i covers [i/fps, (i+1)/fps))."""
    if src_fps <= 0 or dst_fps <= 0:
        raise VideoError(f"fps must be positive, got source {src_fps} and target {dst_fps}")
    num_dst = max(1, int(np.floor(num_src * dst_fps / src_fps + 1e-6)))
    idx = np.floor(np.arange(num_dst) * src_fps / dst_fps + 1e-6).astype(np.int64)
    return np.minimum(idx, num_src - 1)


def uniform_indices(num_src: int, num_dst: int) -> np.ndarray:
    """`num_dst` indices spread uniformly over [0, num_src - 1], first and last included."""
    if num_src < 1 or num_dst < 1:
        raise VideoError(f"cannot pick {num_dst} frames from {num_src}")
    return np.round(np.linspace(0, num_src - 1, num_dst)).astype(np.int64)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (T, H, W, 3) frames to size=(h, w) with antialiased bilinear interpolation."""
    if frames.shape[1:3] == tuple(size):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize bool (..., H, W) masks to size=(h, w) with nearest-neighbour sampling."""
    if masks.shape[-2:] == tuple(size):
        return masks
    lead = masks.shape[:-2]
    x = torch.from_numpy(masks.reshape(-1, 1, *masks.shape[-2:]).astype(np.uint8))
    y = F.interpolate(x, size=size, mode="nearest-exact")
    return y.reshape(*lead, *size).numpy().astype(bool)
