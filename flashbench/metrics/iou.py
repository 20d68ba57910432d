"""Per-frame, per-object mask IoU and box IoU between predicted and target tracks.

Convention (DAVIS J style), applied frame by frame to each object:

* frames before the object's prompt frame (``start[k]``) are not scored: NaN;
* prediction and target both empty (box: both absent, NaN rows) -> IoU = 1;
* exactly one of them empty / absent -> IoU = 0;
* otherwise |pred & target| / |pred | target| (boxes: area of intersection / area of union of the
  xyxy boxes, exclusive end, so a one-pixel mask has a 1 x 1 box).

`summarize` averages over the scored frames of each object, then over objects. An object with no
scored frame is left out of the sample mean; a sample with no scored object has mean NaN and
``scored == False`` (callers must report it, never average it in).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

from flashbench.errors import FlashBenchError


class IoUSummary(NamedTuple):
    """Unpacks as ``(per_object, mean)``; ``scored`` says whether the sample mean is defined."""

    per_object: np.ndarray  # (N,) float64, NaN for objects with no scored frame
    mean: float  # mean over scored objects; NaN when none

    @property
    def scored(self) -> bool:
        return not math.isnan(self.mean)

    @property
    def num_scored(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.per_object)))


def _dense_masks(masks: np.ndarray | list, what: str) -> np.ndarray:
    """(T, N, H, W) bool from a bool/0-1 array or a [T][N] nested list of COCO RLE dicts."""
    if isinstance(masks, list | tuple):
        try:
            frames = [
                mask_utils.decode([_rle_bytes(r) for r in row]).transpose(2, 0, 1) if len(row) else None
                for row in masks
            ]
        except (KeyError, TypeError) as e:
            raise FlashBenchError(f"{what}: expected a [T][N] list of COCO RLE dicts ({e})") from None
        if any(f is None for f in frames) or not frames:
            raise FlashBenchError(f"{what}: RLE list has a frame with no objects")
        masks = np.stack(frames, axis=0)
    masks = np.asarray(masks)
    if masks.ndim != 4:
        raise FlashBenchError(f"{what} masks must be (T, N, H, W), got shape {masks.shape}")
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise FlashBenchError(f"{what} masks must be boolean or 0/1, got values outside {{0, 1}}")
        masks = masks.astype(bool)
    return masks


def _rle_bytes(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _check_pair(pred: np.ndarray, target: np.ndarray, kind: str) -> None:
    if pred.shape != target.shape:
        raise FlashBenchError(
            f"{kind} shape mismatch: prediction {tuple(pred.shape)} vs target {tuple(target.shape)}; "
            "resample the prediction to the target's frames and size"
        )


def apply_start(values: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """(T, N) per-frame values with the frames before each object's prompt frame `start[k]` set to NaN."""
    if start is None:
        return values
    t, n = values.shape
    start = np.asarray(start)
    if start.shape != (n,) or not np.issubdtype(start.dtype, np.integer):
        raise FlashBenchError(f"start must be ({n},) integers (one prompt frame per object), got {start.dtype} {start.shape}")
    if (start < 0).any() or (start > t).any():
        raise FlashBenchError(f"start frames must lie in [0, {t}], got {start.tolist()}")
    values[np.arange(t)[:, None] < start[None, :]] = np.nan
    return values


def mask_iou(
    pred: np.ndarray | list, target: np.ndarray | list, start: np.ndarray | None = None
) -> np.ndarray:
    """(T, N) float64 IoU of each object in each frame; see the module docstring for the convention.

    pred, target: (T, N, H, W) bool (or 0/1) arrays, or [T][N] nested lists of COCO RLE dicts.
    start: (N,) int prompt frame per object; earlier frames are NaN. None scores every frame.
    """
    pred = _dense_masks(pred, "prediction")
    target = _dense_masks(target, "target")
    _check_pair(pred, target, "mask")
    t, n = pred.shape[:2]
    inter = np.empty((t, n), dtype=np.int64)
    union = np.empty((t, n), dtype=np.int64)
    for i in range(t):  # one frame at a time bounds memory on long, large videos
        inter[i] = np.logical_and(pred[i], target[i]).sum(axis=(-2, -1))
        union[i] = np.logical_or(pred[i], target[i]).sum(axis=(-2, -1))
    # union == 0 exactly when both are empty (-> 1); one empty gives inter == 0 < union (-> 0).
    iou = np.divide(inter, union, out=np.ones((t, n), dtype=np.float64), where=union > 0)
    return apply_start(iou, start)


def _check_boxes(boxes: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise FlashBenchError(f"{what} boxes must be (T, N, 4) xyxy, got shape {boxes.shape}")
    nan = np.isnan(boxes)
    absent = nan.all(axis=-1)
    if (nan.any(axis=-1) & ~absent).any():
        raise FlashBenchError(f"{what} boxes have rows that are partly NaN; an absent object is a whole NaN row")
    present = boxes[~absent]
    if (present[:, 2] <= present[:, 0]).any() or (present[:, 3] <= present[:, 1]).any():
        raise FlashBenchError(f"{what} boxes must have x1 > x0 and y1 > y0 (xyxy, exclusive end)")
    return boxes, absent


def box_iou(pred_boxes: np.ndarray, target_boxes: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """(T, N) float64 IoU of xyxy boxes (exclusive end, NaN rows = absent); same convention as mask_iou."""
    pred, pred_absent = _check_boxes(pred_boxes, "prediction")
    target, target_absent = _check_boxes(target_boxes, "target")
    _check_pair(pred, target, "box")
    iw = np.clip(np.minimum(pred[..., 2], target[..., 2]) - np.maximum(pred[..., 0], target[..., 0]), 0, None)
    ih = np.clip(np.minimum(pred[..., 3], target[..., 3]) - np.maximum(pred[..., 1], target[..., 1]), 0, None)
    inter = iw * ih
    area_p = (pred[..., 2] - pred[..., 0]) * (pred[..., 3] - pred[..., 1])
    area_t = (target[..., 2] - target[..., 0]) * (target[..., 3] - target[..., 1])
    both = ~pred_absent & ~target_absent
    iou = np.zeros(pred.shape[:2], dtype=np.float64)
    iou[both] = inter[both] / (area_p[both] + area_t[both] - inter[both])
    iou[pred_absent & target_absent] = 1.0
    return apply_start(iou, start)


def summarize(per_frame: np.ndarray) -> IoUSummary:
    """Mean over each object's scored (non-NaN) frames, then over the objects that have any (IoU, or ObjMC's
    normalised distances: flashbench.metrics.objmc).

    Returns IoUSummary(per_object (N,), mean); mean is NaN and ``scored`` False when no object was scored.
    """
    per_frame = np.asarray(per_frame, dtype=np.float64)
    if per_frame.ndim != 2:
        raise FlashBenchError(f"summarize expects (T, N) per-frame IoU, got shape {per_frame.shape}")
    valid = ~np.isnan(per_frame)
    if ((per_frame[valid] < 0) | (per_frame[valid] > 1)).any():
        raise FlashBenchError("per-frame values must lie in [0, 1] (NaN = not scored)")
    counts = valid.sum(axis=0)
    sums = np.where(valid, per_frame, 0.0).sum(axis=0)
    per_object = np.full(per_frame.shape[1], np.nan)
    np.divide(sums, counts, out=per_object, where=counts > 0)
    scored = per_object[~np.isnan(per_object)]
    return IoUSummary(per_object=per_object, mean=float(scored.mean()) if scored.size else math.nan)
