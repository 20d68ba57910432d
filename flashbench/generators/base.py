"""The one interface every video generator implements for FlashBench.

A generator turns a `GenerationRequest` (first frame, prompt, target trajectories) into a `GeneratedVideo`.
`check_output` is applied by the runner to every result, so a wrong shape or NaN never reaches the metrics.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from flashbench.errors import GenerationError

if TYPE_CHECKING:
    from flashbench.data.benchmark import Benchmark

Condition = Literal["mask", "box", "sparse_box"]
CONDITIONS: tuple[str, ...] = ("mask", "box", "sparse_box")


@dataclass
class GenerationRequest:
    """What a generator is asked for. masks: (T, N, H, W) bool target masks; boxes: (T, N, 4) float32 xyxy
    (exclusive end, NaN where absent). Both are the trajectory the video must follow; `condition` says which
    one the generator is scored on (a box-conditioned model should look only at boxes)."""

    sample_id: str
    first_frame: np.ndarray
    prompt: str
    masks: np.ndarray
    boxes: np.ndarray
    condition: Condition
    num_frames: int
    fps: float
    height: int
    width: int
    seed: int


@dataclass
class GeneratedVideo:
    """frames: (T, H, W, 3) uint8. nfe: network function evaluations used. denoise_seconds: time spent in the
    denoising loop only (what the paper's "s" column reports). extra: anything the generator wants logged."""

    frames: np.ndarray
    nfe: int = 0
    denoise_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    name: str

    def generate(self, request: GenerationRequest) -> GeneratedVideo: ...


def bind_benchmark(generator: Generator, bench: Benchmark) -> None:
    """Give a generator that declares `bind(bench)` (e.g. the ground-truth reference) access to the benchmark."""
    bind = getattr(generator, "bind", None)
    if callable(bind):
        bind(bench)


MAX_NFE = 100_000  # network evaluations per video: 1000 CFG steps are 2000; more is a unit mistake
MAX_DENOISE_SECONDS = 1e6  # 11.6 days for one video


def check_timing(nfe: object, seconds: object, where: str) -> tuple[int, float]:
    """(nfe, denoise_seconds) as (int, float) when nfe is a whole number in [0, MAX_NFE] and seconds a finite
    number in [0, MAX_DENOISE_SECONDS]; else a one-line GenerationError starting with `where`."""
    real = all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in (nfe, seconds))
    if not real or not all(math.isfinite(v) for v in (nfe, seconds)):
        raise GenerationError(f"{where}: nfe {nfe!r} / denoise_seconds {seconds!r} must be finite numbers")
    if nfe != int(nfe) or not 0 <= nfe <= MAX_NFE:
        raise GenerationError(f"{where}: nfe {nfe!r} is not a whole number in [0, {MAX_NFE}]")
    if not 0 <= seconds <= MAX_DENOISE_SECONDS:
        raise GenerationError(f"{where}: denoise_seconds {seconds!r} is not in [0, {MAX_DENOISE_SECONDS:g}]")
    return int(nfe), float(seconds)


def check_output(video: GeneratedVideo, request: GenerationRequest) -> np.ndarray:
    """Return the frames as uint8 (T, H, W, 3) or raise a one-line GenerationError saying what is wrong."""
    frames = np.asarray(video.frames)
    expected = (request.num_frames, request.height, request.width, 3)
    if np.issubdtype(frames.dtype, np.floating) and not np.isfinite(frames).all():
        raise GenerationError(f"{request.sample_id}: generator returned NaN/inf pixels; check its numerics (fp16 overflow?)")
    if frames.dtype != np.uint8:
        raise GenerationError(f"{request.sample_id}: frames must be uint8 in [0, 255], got {frames.dtype}; convert before returning")
    if frames.shape != expected:
        raise GenerationError(f"{request.sample_id}: generated video is {frames.shape}, expected {expected} (T, H, W, 3)")
    check_timing(video.nfe, video.denoise_seconds, request.sample_id)
    return frames
