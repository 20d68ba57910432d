"""Dense optical flow between consecutive frames (OpenCV's DIS, no weights) and mask warping along it."""

from __future__ import annotations

import cv2
import numpy as np


class BackwardFlow:
    """Flow from each frame back to the previous one, computed on frames downscaled to `side` (longest side).

    `next(frame)` returns the (H, W, 2) flow from `frame` to the frame given before (None for the first):
    pixel (x, y) of `frame` came from (x + fx, y + fy) of the previous frame.
    """

    def __init__(self, side: int = 320) -> None:
        self.side = side
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.prev: np.ndarray | None = None

    def next(self, frame: np.ndarray) -> np.ndarray | None:
        h, w = frame.shape[:2]
        scale = min(1.0, self.side / max(h, w))
        small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        prev, self.prev = self.prev, gray
        if prev is None:
            return None
        flow = self.dis.calc(gray, prev, None)
        return cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) / scale


def warp(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(H, W) bool mask of the previous frame carried to the current one along its backward `flow`."""
    h, w = mask.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = cv2.remap(mask.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return src > 0.5
