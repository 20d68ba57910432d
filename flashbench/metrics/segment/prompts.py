"""Prompts for SAM derived from masks: box, interior positive points, negative points, dense mask logits."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from flashbench.data.objects import boxes_from_masks

MASK_LOGIT = 8.0  # |logit| given to a binary mask used as SAM's dense mask prompt


def interior_points(mask: np.ndarray, num_points: int) -> np.ndarray:
    """(num_points, 2) xy pixel centres inside a non-empty (H, W) mask: its most interior pixel
    (distance-transform maximum) first, then pixels maximising the distance to the border and to the points
    already chosen."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1  # work inside the mask's box
    crop = mask[y0:y1, x0:x1]
    score = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0]
    points = np.zeros((num_points, 2))
    for p in range(num_points):
        y, x = np.unravel_index(np.argmax(score), score.shape)
        points[p] = (x + x0 + 0.5, y + y0 + 0.5)
        score = np.minimum(score, np.hypot(yy - y, xx - x))
    return points


def mask_prompts(
    masks: np.ndarray, num_points: int, box_margin: float, prev_boxes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Box and positive points for each non-empty mask, optionally moved on by constant velocity.

    masks: (B, H, W) bool, none empty. prev_boxes: (B, 4) boxes of the same objects one frame earlier (NaN rows
    when unknown). Returns boxes (B, 4) xyxy float in continuous pixel coordinates (exclusive end) and points
    (B, num_points, 2) xy at pixel centres. The box is the mask's box; with prev_boxes, united with its
    constant-velocity extrapolation (each edge moved by its last displacement) and the points shifted by the
    box centre's last displacement; then widened by `box_margin` of its size (at least 2 px) and clipped to
    the image. Points: `interior_points`.
    """
    b, h, w = masks.shape
    boxes = boxes_from_masks(masks).astype(np.float64)
    shift = np.zeros((b, 2))
    if prev_boxes is not None:
        known = ~np.isnan(prev_boxes).any(axis=1)
        step = np.where(known[:, None], boxes - np.nan_to_num(prev_boxes), 0.0)
        ahead = boxes + step
        boxes = np.concatenate([np.minimum(boxes, ahead)[:, :2], np.maximum(boxes, ahead)[:, 2:]], axis=1)
        shift = (step[:, :2] + step[:, 2:]) / 2
    size = boxes[:, 2:] - boxes[:, :2]
    pad = np.maximum(box_margin * size, 2.0)
    boxes[:, :2] = np.maximum(boxes[:, :2] - pad, 0.0)
    boxes[:, 2:] = np.minimum(boxes[:, 2:] + pad, [w, h])
    points = np.stack([interior_points(m, num_points) for m in masks]) if b else np.zeros((0, num_points, 2))
    points = np.clip(points + shift[:, None, :], 0.5, [w - 0.5, h - 0.5])
    return boxes, points


def negative_points(own: np.ndarray, box: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """(M, 2) xy negative points: the most interior pixel of each other object's mask whose centre lies in
    `box` but outside `own` (an object next to or in front of this one is excluded from its mask)."""
    out = []
    for other in others:
        if not other.any():
            continue
        visible = other & ~own
        if not visible.any():
            continue
        x, y = interior_points(visible, 1)[0]
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            out.append((x, y))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def mask_logits(mask: np.ndarray, input_hw: tuple[int, int], image_size: int, low_res: int) -> torch.Tensor:
    """A binary (H, W) mask as SAM's dense mask prompt: (1, low_res, low_res) logits of +-MASK_LOGIT, laid out
    like the model input (resized to `input_hw`, zero-padded to `image_size`, area-averaged to `low_res`)."""
    m = torch.as_tensor(mask, dtype=torch.float32)[None, None]
    m = F.interpolate(m, size=input_hw, mode="bilinear", align_corners=False)
    m = F.pad(m, (0, image_size - input_hw[1], 0, image_size - input_hw[0]))
    m = F.interpolate(m, size=(low_res, low_res), mode="area")
    return ((m[0] > 0.5).float() * 2 - 1) * MASK_LOGIT
