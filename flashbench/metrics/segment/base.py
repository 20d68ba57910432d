"""The `Segmenter` protocol (track objects through a video from ground-truth prompts) and its lazy registry."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from flashbench.errors import FlashBenchError, VideoError

# name -> "module:factory"; factory(device, checkpoint, progress) -> Segmenter. Imported only when asked for.
SEGMENTERS: dict[str, str] = {
    "mobilesam": "flashbench.metrics.segment.mobilesam:load_mobilesam",
    "sam": "flashbench.metrics.segment.sam:load_sam",
    "sam2": "flashbench.metrics.segment.sam2:load_sam2",
    "efficienttam": "flashbench.metrics.segment.sam2:load_efficienttam",
}


@runtime_checkable
class Segmenter(Protocol):
    """Semi-supervised video object segmentation from one ground-truth mask per object."""

    name: str

    def track(self, frames: np.ndarray, prompt_masks: np.ndarray, prompt_frames: np.ndarray) -> np.ndarray:
        """Segment N objects through a video.

        Args:
            frames: (T, H, W, 3) uint8 RGB video.
            prompt_masks: (N, H, W) bool, object k's ground-truth mask at frame prompt_frames[k] (non-empty).
            prompt_frames: (N,) int, the frame each object is prompted at (its first visible frame).
        Returns:
            (T, N, H, W) bool masks; object k is empty before prompt_frames[k].
        """
        ...

    def describe(self) -> dict:
        """Provenance: model, checkpoint file and sha256, tracking settings."""
        ...


def check_track_inputs(
    frames: np.ndarray, prompt_masks: np.ndarray, prompt_frames: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate `Segmenter.track` arguments; returns them as (uint8, bool, int64) arrays or raises one-line errors."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise VideoError(f"segmenter needs uint8 frames shaped (T, H, W, 3), got {frames.dtype} {frames.shape}")
    prompt_masks = np.asarray(prompt_masks)
    if prompt_masks.ndim != 3 or prompt_masks.dtype != bool:
        raise FlashBenchError(f"prompt masks must be bool (N, H, W), got {prompt_masks.dtype} {prompt_masks.shape}")
    if prompt_masks.shape[1:] != frames.shape[1:3]:
        raise VideoError(
            f"video frames are {frames.shape[1]}x{frames.shape[2]} but prompt masks are "
            f"{prompt_masks.shape[1]}x{prompt_masks.shape[2]}; resize the video to the benchmark's size"
        )
    prompt_frames = np.asarray(prompt_frames)
    n, t = len(prompt_masks), len(frames)
    if prompt_frames.shape != (n,) or not np.issubdtype(prompt_frames.dtype, np.integer):
        raise FlashBenchError(f"prompt_frames must be ({n},) integers, got {prompt_frames.dtype} {prompt_frames.shape}")
    bad = np.flatnonzero((prompt_frames < 0) | (prompt_frames >= t))
    if bad.size:
        raise VideoError(
            f"object {int(bad[0])} is prompted at frame {int(prompt_frames[bad[0]])} but the video has {t} frames"
        )
    empty = np.flatnonzero(~prompt_masks.reshape(n, -1).any(axis=1))
    if empty.size:
        raise FlashBenchError(
            f"object {int(empty[0])} has an empty prompt mask at frame {int(prompt_frames[empty[0]])}; "
            "prompt each object at a frame where it is visible"
        )
    return frames, prompt_masks, prompt_frames.astype(np.int64)


def load_segmenter(
    name: str, device: str = "cpu", checkpoint: str | Path | None = None, progress: bool = True
) -> Segmenter:
    """Build a registered segmenter ('mobilesam' (default), 'sam', 'sam2', 'efficienttam') on `device`.

    checkpoint: a weight file; MobileSAM defaults to the cached `flashbench weights fetch mobilesam` file,
    SAM, SAM 2 and EfficientTAM need one. progress: show a tqdm bar over frames.
    """
    try:
        target = SEGMENTERS[name]
    except KeyError:
        raise FlashBenchError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}") from None
    module, factory = target.split(":")
    return getattr(importlib.import_module(module), factory)(
        device=device, checkpoint=None if checkpoint is None else Path(checkpoint), progress=progress
    )
