"""A hand-made tiny benchmark for the generator/runner tests: solid squares sliding over a smooth gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flashbench.data.benchmark import Benchmark, BenchmarkWriter
from flashbench.generators.base import GeneratedVideo, GenerationRequest

COLORS = np.array([[230, 20, 20], [20, 220, 30], [30, 40, 235]], dtype=np.uint8)
SQUARE = 8


def square_scene(num_objects: int, frames: int, size: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Object k is an 8x8 square of COLORS[k] starting at (4 + 12k, 4), moving right by `shift` px per frame."""
    yy, xx = np.mgrid[0:size, 0:size]
    background = np.stack([xx * 2 + 40, yy * 2 + 40, np.full_like(xx, 90)], axis=-1).clip(0, 255).astype(np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    masks = np.zeros((frames, num_objects, size, size), dtype=bool)
    for t in range(frames):
        for k in range(num_objects):
            x0, y0 = 4 + shift * t, 4 + 12 * k
            masks[t, k, y0 : y0 + SQUARE, x0 : x0 + SQUARE] = True
            video[t][masks[t, k]] = COLORS[k]
    return video, masks


def make_bench(root: Path, counts: tuple[int, ...] = (1, 2, 2), frames: int = 6, size: int = 32) -> Benchmark:
    """One sample per entry of `counts` (its object count), ids sq-0, sq-1, ..."""
    writer = BenchmarkWriter(root, name="squares", groups=("1", "2", "3"))
    for i, n in enumerate(counts):
        video, masks = square_scene(n, frames, size, shift=2 + i)
        writer.add(f"sq-{i}", video, masks, fps=8.0, prompt=f"{n} squares", source="test")
    return writer.close()


class Flaky:
    """Test generator: NaN float frames for sq-0, a wrong frame count for sq-1, the first frame repeated else."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        self.calls.append(request.sample_id)
        shape = (request.num_frames, request.height, request.width, 3)
        if request.sample_id == "sq-0":
            return GeneratedVideo(frames=np.full(shape, np.nan, dtype=np.float32))
        if request.sample_id == "sq-1":
            return GeneratedVideo(frames=np.zeros((request.num_frames - 1, *shape[1:]), dtype=np.uint8))
        return GeneratedVideo(frames=np.repeat(request.first_frame[None], request.num_frames, axis=0), nfe=3)


class Hostile:
    """Test generator: SystemExit for sq-0, hangs for `hang` seconds on sq-1 (the first time per process),
    repeats the first frame else. Counts instances so tests see the runner rebuild it after a timeout."""

    name = "hostile"
    instances = 0
    hung: set[str] = set()

    def __init__(self, hang: float = 30.0) -> None:
        type(self).instances += 1
        self.hang = float(hang)

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        if request.sample_id == "sq-0":
            raise SystemExit("generator called sys.exit")
        if request.sample_id == "sq-1" and request.sample_id not in self.hung:
            self.hung.add(request.sample_id)
            import time

            time.sleep(self.hang)
        return GeneratedVideo(frames=np.repeat(request.first_frame[None], request.num_frames, axis=0), nfe=1)


class ExitsHard:
    """Test generator: ends its process with os._exit(3) on sq-1 (no exception, no cleanup), repeats the first
    frame else."""

    name = "exits-hard"

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        if request.sample_id == "sq-1":
            import os

            os._exit(3)
        return GeneratedVideo(frames=np.repeat(request.first_frame[None], request.num_frames, axis=0), nfe=1)


def metric_components(clip_len: int):
    """(MobileSAM segmenter, FID/FVD feature extractor with `clip_len`-frame FVD clips) from the weight cache;
    the calling test is skipped when the metric weights are missing."""
    import pytest

    from flashbench.errors import WeightsError
    from flashbench.eval_features import FeatureExtractor, FeatureSettings
    from flashbench.metrics.segment.base import load_segmenter

    try:
        return load_segmenter("mobilesam", progress=False), FeatureExtractor(FeatureSettings(clip_len=clip_len))
    except WeightsError as e:
        pytest.skip(f"metric weights missing: {e}")
