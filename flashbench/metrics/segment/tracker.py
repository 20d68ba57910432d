"""Track objects through a video with a SAM-family promptable image segmenter, frame by frame.

Algorithm (the same for MobileSAM and SAM vit_b/l/h):

1. Object k starts at frame ``prompt_frames[k]``, prompted with its ground-truth mask there; before that
   frame its masks are empty.
2. Every frame from the first prompt frame on is encoded once (SamPredictor preprocessing: resize the
   longest side to 1024, normalise, pad; a frame identical to the last encoded one reuses its embedding, so
   frozen videos are cheap); all active objects are decoded together in one batch.
3. The prompt of an object is derived from a mask (the ground truth at its prompt frame, else its own
   prediction in the previous frame): the mask's box, united with its constant-velocity extrapolation from
   the frame before and widened by ``box_margin`` (at least 2 px), plus ``num_points`` positive points at the
   most interior pixels, shifted by the last displacement (see `mask_prompts`). No dense mask prompt: SAM's
   mask input is meant for refinement on the same image, and across frames it made masks stick to where
   the object was (mean IoU 0.52-0.71 instead of 0.75-0.90 on synthetic scenes).
4. SAM returns 3 candidate masks; the one with the highest predicted IoU is kept.
5. Lost objects: when the kept mask is empty, SAM's predicted IoU for it is below ``min_score``, or more than
   ``max_outside`` of its pixels lie outside the prompt box (the object left the frame, was fully occluded, or
   the video no longer shows it, so the box holds background: a box prompt always yields some mask, and a
   background patch grows past the box frame after frame), the object's mask is empty from that frame on. There is no re-detection: an object that comes back is
   scored 0 on the frames where the target shows it (same for every video; SAM 2, with its memory, handles
   re-appearance).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from segment_anything.modeling import Sam
from segment_anything.predictor import SamPredictor
from tqdm import tqdm

from flashbench.data.objects import boxes_from_masks
from flashbench.metrics.segment.base import check_track_inputs


def mask_prompts(
    masks: np.ndarray, num_points: int, box_margin: float, prev_boxes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Box and positive points for each non-empty mask, optionally moved on by constant velocity.

    masks: (B, H, W) bool, none empty. prev_boxes: (B, 4) boxes of the same objects one frame earlier (NaN rows
    when unknown). Returns boxes (B, 4) xyxy float in continuous pixel coordinates (exclusive end) and points
    (B, num_points, 2) xy at pixel centres. The box is the mask's box; with prev_boxes, united with its
    constant-velocity extrapolation (each edge moved by its last displacement) and the points shifted by the
    box centre's last displacement; then widened by `box_margin` of its size (at least 2 px) and clipped to
    the image. Points: the mask's most interior pixel (distance-transform maximum) first, then pixels
    maximising the distance to the mask border and to the points already chosen.
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
    points = np.zeros((b, num_points, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(b):
        score = ndimage.distance_transform_edt(np.pad(masks[i], 1))[1:-1, 1:-1]
        for p in range(num_points):
            y, x = np.unravel_index(np.argmax(score), score.shape)
            points[i, p] = (x + 0.5, y + 0.5)
            score = np.minimum(score, np.hypot(yy - y, xx - x))
    points = np.clip(points + shift[:, None, :], 0.5, [w - 0.5, h - 0.5])
    return boxes, points


def outside_fraction(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(B, H, W) bool masks, (B, 4) xyxy boxes -> (B,) fraction of each mask's pixels whose centre lies outside
    its box; 1.0 for an empty mask."""
    h, w = masks.shape[1:]
    cx, cy = np.arange(w) + 0.5, np.arange(h) + 0.5
    in_x = (cx >= boxes[:, 0:1]) & (cx <= boxes[:, 2:3])  # (B, W)
    in_y = (cy >= boxes[:, 1:2]) & (cy <= boxes[:, 3:4])  # (B, H)
    area = masks.sum(axis=(1, 2))
    inside = np.einsum("bhw,bh,bw->b", masks.astype(np.int64), in_y.astype(np.int64), in_x.astype(np.int64))
    return np.where(area > 0, 1.0 - inside / np.maximum(area, 1), 1.0)


class SamTracker:
    """A `Segmenter` built on a segment_anything `Sam` model (see the module docstring for the algorithm).

    `timings` accumulates seconds spent encoding and decoding and the number of frames encoded / decoded.
    """

    def __init__(
        self,
        model: Sam,
        name: str,
        checkpoint: Path | None = None,
        checkpoint_sha256: str | None = None,
        num_points: int = 1,
        box_margin: float = 0.1,
        min_score: float = 0.9,
        max_outside: float = 0.25,
        progress: bool = True,
    ) -> None:
        self.name = name
        self.predictor = SamPredictor(model.eval())
        self.checkpoint = checkpoint
        self.checkpoint_sha256 = checkpoint_sha256
        self.num_points = num_points
        self.box_margin = box_margin
        self.min_score = min_score
        self.max_outside = max_outside
        self.progress = progress
        self.timings = {"encode_s": 0.0, "decode_s": 0.0, "encoded": 0, "decoded": 0}

    def describe(self) -> dict:
        return {
            "segmenter": self.name,
            "checkpoint": None if self.checkpoint is None else self.checkpoint.name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "tracker": "SAM prompted per frame from the previous mask (flashbench.metrics.segment.tracker)",
            "num_points": self.num_points,
            "box_margin": self.box_margin,
            "min_score": self.min_score,
            "max_outside": self.max_outside,
            "image_size": self.predictor.model.image_encoder.img_size,
        }

    @torch.inference_mode()
    def track(self, frames: np.ndarray, prompt_masks: np.ndarray, prompt_frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 video, (N, H, W) bool prompts at (N,) frames -> (T, N, H, W) bool masks."""
        frames, prompt_masks, prompt_frames = check_track_inputs(frames, prompt_masks, prompt_frames)
        t_total, n = len(frames), len(prompt_masks)
        out = np.zeros((t_total, n, *frames.shape[1:3]), dtype=bool)
        current = np.zeros_like(prompt_masks)  # the mask each object is prompted from in the next frame
        prev_boxes = np.full((n, 4), np.nan)  # box of that mask's predecessor (for the motion model)
        lost = np.zeros(n, dtype=bool)
        start = int(prompt_frames.min())
        encoded = None  # index of the frame whose embedding the predictor holds
        bar = tqdm(range(start, t_total), desc=f"segment ({self.name})", unit="frame", disable=not self.progress, leave=False)
        for t in bar:
            new = prompt_frames == t
            current[new] = prompt_masks[new]
            active = np.flatnonzero((prompt_frames <= t) & ~lost)
            if active.size == 0:
                continue
            tick = time.perf_counter()
            if encoded is None or not np.array_equal(frames[t], frames[encoded]):
                self.predictor.set_image(frames[t])
                encoded = t
                self.timings["encoded"] += 1
            tock = time.perf_counter()
            boxes, points = mask_prompts(current[active], self.num_points, self.box_margin, prev_boxes[active])
            masks, scores = self._decode(boxes, points)
            self.timings["encode_s"] += tock - tick
            self.timings["decode_s"] += time.perf_counter() - tock
            self.timings["decoded"] += 1
            gone = (scores < self.min_score) | (outside_fraction(masks, boxes) > self.max_outside)
            masks[gone] = False
            out[t, active] = masks
            prev_boxes[active] = np.where(new[active, None], np.nan, boxes_from_masks(current[active]))
            current[active] = masks
            lost[active[gone]] = True
        return out

    def _decode(self, boxes: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One batch of box + positive-point prompts on the current image -> (B, H, W) bool masks, (B,) scores."""
        p = self.predictor
        coords = torch.as_tensor(p.transform.apply_coords(points, p.original_size), dtype=torch.float, device=p.device)
        labels = torch.ones(coords.shape[:2], dtype=torch.int, device=p.device)
        box_t = torch.as_tensor(p.transform.apply_boxes(boxes, p.original_size), dtype=torch.float, device=p.device)
        pred, iou, _ = p.predict_torch(coords, labels, box_t, multimask_output=True)
        best = iou.argmax(dim=1)
        rows = torch.arange(len(best), device=p.device)
        return pred[rows, best].cpu().numpy(), iou[rows, best].cpu().numpy()
