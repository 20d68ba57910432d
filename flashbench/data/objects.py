"""objects.json: per-object per-frame COCO RLE masks (overlaps allowed) + xyxy boxes (null if absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from flashbench.data.sample import Tracks
from flashbench.errors import BenchmarkError


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """(..., H, W) bool -> (..., 4) float32 xyxy, exclusive end; NaN where the mask is empty."""
    masks = np.asarray(masks, dtype=bool)
    rows = masks.any(axis=-1)  # (..., H)
    cols = masks.any(axis=-2)  # (..., W)
    present = rows.any(axis=-1)
    h, w = masks.shape[-2], masks.shape[-1]
    y0 = rows.argmax(axis=-1)
    y1 = h - rows[..., ::-1].argmax(axis=-1)
    x0 = cols.argmax(axis=-1)
    x1 = w - cols[..., ::-1].argmax(axis=-1)
    boxes = np.stack([x0, y0, x1, y1], axis=-1).astype(np.float32)
    boxes[~present] = np.nan
    return boxes


def encode_rle(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO RLE with `counts` as str (JSON-serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def write_objects(path: Path, masks: np.ndarray, object_ids: tuple[int, ...], categories: list[str | None]) -> None:
    """masks: (T, N, H, W) bool."""
    t, n, h, w = masks.shape
    boxes = boxes_from_masks(masks)
    objects = []
    for k in range(n):
        objects.append(
            {
                "id": int(object_ids[k]),
                "category": categories[k],
                "rle": [encode_rle(masks[i, k]) for i in range(t)],
                "boxes": [None if np.isnan(b[0]) else [float(v) for v in b] for b in boxes[:, k]],
            }
        )
    record = {"num_frames": t, "height": h, "width": w, "objects": objects}
    Path(path).write_text(json.dumps(record, separators=(",", ":")))


def read_objects(path: Path) -> Tracks:
    """Read objects.json into Tracks; raises BenchmarkError on an inconsistent file."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BenchmarkError(f"cannot read {path}: {e}; rebuild the benchmark") from None
    t, h, w = record["num_frames"], record["height"], record["width"]
    n = len(record["objects"])
    masks = np.zeros((t, n, h, w), dtype=bool)
    boxes = np.full((t, n, 4), np.nan, dtype=np.float32)
    for k, obj in enumerate(record["objects"]):
        if len(obj["rle"]) != t or len(obj["boxes"]) != t:
            raise BenchmarkError(f"{path}: object {obj['id']} has {len(obj['rle'])} frames, expected {t}")
        for i, rle in enumerate(obj["rle"]):
            if list(rle["size"]) != [h, w]:
                raise BenchmarkError(f"{path}: object {obj['id']} frame {i} mask is {rle['size']}, expected {[h, w]}")
            masks[i, k] = decode_rle(rle)
            if obj["boxes"][i] is not None:
                boxes[i, k] = obj["boxes"][i]
    return Tracks(masks=masks, boxes=boxes, object_ids=tuple(int(o["id"]) for o in record["objects"]))
