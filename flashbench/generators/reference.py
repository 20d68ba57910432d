"""Reference generators that bracket every real model on the leaderboard.

- ``ground-truth``: returns the benchmark's real video (upper bound: what perfect generation scores);
- ``static``: repeats the first frame (lower bound: no motion at all);
- ``copy-paste``: cuts each object out of the first frame and pastes it, translated and scaled, into the
  target box of every frame over an inpainted first-frame background (a motion-only, appearance-free baseline).

All three are deterministic, use no network (nfe = 0) and report their own run time as denoise_seconds.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from flashbench.data.benchmark import Benchmark
from flashbench.errors import GenerationError
from flashbench.generators.base import GeneratedVideo, GenerationRequest
from flashbench.video import resize_frames, resize_masks


class GroundTruth:
    """Returns the real video of the requested sample (needs `bind(bench)`, which the runner calls)."""

    name = "ground-truth"
    steps = None

    def __init__(self) -> None:
        self._bench: Benchmark | None = None

    def bind(self, bench: Benchmark) -> None:
        self._bench = bench

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        if self._bench is None:
            raise GenerationError("ground-truth needs the benchmark: call bind_benchmark(generator, bench) first")
        start = time.perf_counter()
        frames = self._bench.read_video(self._bench.get(request.sample_id))
        return GeneratedVideo(frames=frames, nfe=0, denoise_seconds=time.perf_counter() - start)


class Static:
    """Repeats the first frame `num_frames` times."""

    name = "static"
    steps = None

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        start = time.perf_counter()
        frames = np.repeat(np.asarray(request.first_frame, dtype=np.uint8)[None], request.num_frames, axis=0)
        return GeneratedVideo(frames=frames, nfe=0, denoise_seconds=time.perf_counter() - start)


def fill_from_nearest(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W, 3) image with every `hole` pixel replaced by its nearest non-hole pixel (mean colour if all hole)."""
    if not hole.any():
        return image.copy()
    if hole.all():
        return np.broadcast_to(image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), image.shape).copy()
    _, (rows, cols) = ndimage.distance_transform_edt(hole, return_indices=True)
    return image[rows, cols]


def sparse_boxes(boxes: np.ndarray, every: int) -> np.ndarray:
    """What a sparse-box condition reveals: boxes on frames t % every == 0, linearly interpolated between
    consecutive keyframes where the object is present at both, else held from the previous keyframe."""
    t = boxes.shape[0]
    keys = np.arange(0, t, every)
    out = np.empty_like(boxes)
    for i in range(t):
        a = keys[keys <= i][-1]
        later = keys[keys > i]
        b = later[0] if later.size else a
        if b == a:
            out[i] = boxes[a]
            continue
        w = (i - a) / (b - a)
        both = ~np.isnan(boxes[a, :, 0]) & ~np.isnan(boxes[b, :, 0])
        out[i] = boxes[a]
        out[i, both] = (1 - w) * boxes[a, both] + w * boxes[b, both]
    return out


class CopyPaste:
    """Moves first-frame object crops along the target boxes over an inpainted first frame.

    Per object k visible in frame 0, its crop (pixels and mask inside its frame-0 box) is resized to the target
    box of frame t and pasted where the resized mask is set; objects are pasted in index order (later on top).
    Objects absent from frame 0 are skipped (there is nothing to copy). Only the boxes of the target trajectory
    are used (plus the frame-0 masks the condition map shows); with condition 'sparse_box' only the boxes on
    frames t % sparse_every == 0, interpolated in between.
    """

    name = "copy-paste"
    steps = None

    def __init__(self, sparse_every: int = 8) -> None:
        if sparse_every < 1:
            raise ValueError(f"sparse_every must be >= 1, got {sparse_every}")
        self.sparse_every = int(sparse_every)

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        start = time.perf_counter()
        first = np.asarray(request.first_frame, dtype=np.uint8)
        masks0 = np.asarray(request.masks[0], dtype=bool)  # (N, H, W)
        boxes = np.asarray(request.boxes, dtype=np.float64)
        if request.condition == "sparse_box":
            boxes = sparse_boxes(boxes, self.sparse_every)
        background = fill_from_nearest(first, masks0.any(axis=0))
        crops = [self._crop(first, masks0[k]) for k in range(masks0.shape[0])]
        frames = np.repeat(background[None], request.num_frames, axis=0)
        for t in range(request.num_frames):
            for k, crop in enumerate(crops):
                if crop is not None and not np.isnan(boxes[t, k]).any():
                    self._paste(frames[t], *crop, boxes[t, k])
        return GeneratedVideo(frames=frames, nfe=0, denoise_seconds=time.perf_counter() - start)

    @staticmethod
    def _crop(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if not mask.any():
            return None
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        return image[sl], mask[sl]

    @staticmethod
    def _paste(frame: np.ndarray, pixels: np.ndarray, mask: np.ndarray, box: np.ndarray) -> None:
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = np.round(box).astype(int)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            return
        size = (y1 - y0, x1 - x0)
        scaled = resize_frames(pixels[None], size)[0]
        scaled_mask = resize_masks(mask, size)
        frame[y0:y1, x0:x1][scaled_mask] = scaled[scaled_mask]
