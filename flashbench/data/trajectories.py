"""Trajectory condition maps, MagicMotion style, rendered from ground-truth masks on demand.

- mask map: every frame shows the colour-coded object masks on black;
- box map: frame 0 shows the colour-coded masks, later frames the coloured box outlines;
- sparse-box map: frame 0 shows the masks, box outlines only every `sparse_every` frames, black elsewhere.

Where objects overlap the later one (front, higher index) is drawn on top, as in the mask PNGs.
"""

from __future__ import annotations

import colorsys

import numpy as np

from flashbench.data.objects import boxes_from_masks

KINDS = ("mask", "box", "sparse_box")
_GOLDEN = 0.6180339887498949


def object_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct, stable colours: hues spaced by the golden ratio, saturated and bright.

    Colour k depends only on k (adding objects never changes earlier colours). Every colour is at least
    half-bright in some channel so it stays clear of a near-black background after lossy compression.
    """
    colors = np.zeros((n, 3), dtype=np.uint8)
    for k in range(n):
        hue = (k * _GOLDEN) % 1.0
        value = 1.0 if (k // 10) % 2 == 0 else 0.7
        saturation = 1.0 if (k // 20) % 2 == 0 else 0.55
        colors[k] = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255)
    return colors


def _outline_thickness(height: int, width: int) -> int:
    return max(1, min(height, width) // 100)


def _draw_masks(canvas: np.ndarray, masks: np.ndarray, colors: np.ndarray) -> None:
    """canvas (H, W, 3); masks (N, H, W): paint objects in index order (later on top)."""
    for k in range(masks.shape[0]):
        canvas[masks[k]] = colors[k]


def _draw_boxes(canvas: np.ndarray, boxes: np.ndarray, colors: np.ndarray, thickness: int) -> None:
    """canvas (H, W, 3); boxes (N, 4) xyxy exclusive end (NaN = absent): coloured outlines drawn inside the box."""
    h, w = canvas.shape[:2]
    for k, box in enumerate(boxes):
        if np.isnan(box).any():
            continue
        x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if x1 <= x0 or y1 <= y0:
            continue
        t = thickness
        canvas[y0 : min(y0 + t, y1), x0:x1] = colors[k]
        canvas[max(y1 - t, y0) : y1, x0:x1] = colors[k]
        canvas[y0:y1, x0 : min(x0 + t, x1)] = colors[k]
        canvas[y0:y1, max(x1 - t, x0) : x1] = colors[k]


def render_condition(
    masks: np.ndarray,
    kind: str,
    boxes: np.ndarray | None = None,
    sparse_every: int = 8,
) -> np.ndarray:
    """Render a trajectory condition video.

    Args:
        masks: (T, N, H, W) bool object masks.
        kind: 'mask' | 'box' | 'sparse_box'.
        boxes: (T, N, 4) xyxy exclusive-end boxes (NaN = absent); derived from `masks` when None.
        sparse_every: for 'sparse_box', boxes are drawn on frames t with t % sparse_every == 0 (t > 0).

    Returns:
        (T, H, W, 3) uint8, black background; object k has colour `object_colors(N)[k]`; box outlines are
        max(1, min(H, W) // 100) pixels thick, drawn inside the box.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4:
        raise ValueError(f"masks must be (T, N, H, W), got shape {masks.shape}")
    if kind not in KINDS:
        raise ValueError(f"unknown condition kind {kind!r}: use one of {', '.join(KINDS)}")
    if sparse_every < 1:
        raise ValueError(f"sparse_every must be >= 1, got {sparse_every}")
    t, n, h, w = masks.shape
    if boxes is None:
        boxes = boxes_from_masks(masks)
    elif boxes.shape != (t, n, 4):
        raise ValueError(f"boxes must be {(t, n, 4)} for masks {masks.shape}, got {boxes.shape}")
    colors = object_colors(n)
    out = np.zeros((t, h, w, 3), dtype=np.uint8)
    thickness = _outline_thickness(h, w)
    for i in range(t):
        if kind == "mask" or i == 0:
            _draw_masks(out[i], masks[i], colors)
        elif kind == "box" or i % sparse_every == 0:
            _draw_boxes(out[i], boxes[i], colors, thickness)
    return out
