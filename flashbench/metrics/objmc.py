"""ObjMC, after MotionCtrl's object-motion metric: how far each tracked object is from where it should be.

An object's trajectory is one point per frame: the centroid of its mask (for box-only ground truth, the centre of
its box, and of the tracked mask's box). Per frame and object, the distance between the tracked and the target
point, normalised by the frame diagonal sqrt(H^2 + W^2) (x diagonal: pixels). Convention, frame by frame:

* frames before the object's prompt frame (``start[k]``) are not scored: NaN (as for IoU);
* target absent (empty mask / NaN box): not scored, NaN. There is no target point; a track that shows the
  object there is already penalised by the IoU, which scores that frame 0;
* target present, track empty (the object was lost): 1.0, the frame diagonal, more than any two points in the
  frame can be apart, so losing an object costs more than misplacing it anywhere;
* both present: the Euclidean distance of the two points over the diagonal (< 1).

Lower is better. `flashbench.metrics.iou.summarize` averages the (T, N) values over each object's scored frames,
then over objects; evaluation averages samples.
"""

from __future__ import annotations

import math

import numpy as np

from flashbench.errors import FlashBenchError
from flashbench.metrics.iou import apply_start


def mask_centroids(masks: np.ndarray) -> np.ndarray:
    """(T, N, 2) float64 (x, y) centroid of each (T, N, H, W) mask in pixel indices; NaN where a mask is empty."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4:
        raise FlashBenchError(f"masks must be (T, N, H, W), got shape {masks.shape}")
    t, n, h, w = masks.shape
    out = np.full((t, n, 2), np.nan)
    for i in range(t):  # one frame at a time bounds memory on long, large videos
        area = masks[i].sum(axis=(1, 2))
        xs = masks[i].sum(axis=1) @ np.arange(w, dtype=np.float64)
        ys = masks[i].sum(axis=2) @ np.arange(h, dtype=np.float64)
        present = area > 0
        out[i, present] = np.stack([xs[present], ys[present]], axis=-1) / area[present, None]
    return out


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """(T, N, 2) centre of xyxy boxes (exclusive end) in pixel indices, so a filled box's mask centroid equals it;
    NaN rows (absent) stay NaN."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.stack([(boxes[..., 0] + boxes[..., 2] - 1) / 2, (boxes[..., 1] + boxes[..., 3] - 1) / 2], axis=-1)


def objmc(pred: np.ndarray, target: np.ndarray, size: tuple[int, int], start: np.ndarray | None = None) -> np.ndarray:
    """(T, N) distance of tracked to target points over the frame diagonal; see the module docstring.

    pred, target: (T, N, 2) points (NaN = absent), e.g. from `mask_centroids`; size: (H, W) of the frame;
    start: (N,) prompt frame per object (earlier frames NaN), None scores every frame.
    """
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise FlashBenchError(f"ObjMC needs two (T, N, 2) point arrays, got {pred.shape} and {target.shape}")
    target_absent, pred_absent = np.isnan(target).any(axis=-1), np.isnan(pred).any(axis=-1)
    distance = np.linalg.norm(pred - target, axis=-1) / math.hypot(*size)
    distance[pred_absent & ~target_absent] = 1.0
    distance[target_absent] = np.nan
    return apply_start(distance, start)
