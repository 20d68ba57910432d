"""Typed records of a benchmark: one `Sample` per video, its objects and its ground-truth tracks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class ObjectInfo:
    """One foreground object. `id` is its palette index in the mask PNGs (1-based)."""

    id: int
    first_visible: int
    last_visible: int
    category: str | None = None


@dataclass(frozen=True)
class Sample:
    """One line of manifest.jsonl. `paths` are relative to the benchmark root."""

    id: str
    prompt: str
    num_frames: int
    fps: float
    height: int
    width: int
    object_count: int
    group: str
    objects: tuple[ObjectInfo, ...]
    paths: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def to_json(self) -> dict:
        record = asdict(self)
        record["objects"] = [
            {k: v for k, v in asdict(o).items() if not (k == "category" and v is None)} for o in self.objects
        ]
        return record

    @classmethod
    def from_json(cls, record: dict) -> Sample:
        objects = tuple(ObjectInfo(**o) for o in record["objects"])
        return cls(**{**record, "objects": objects, "fps": float(record["fps"])})


@dataclass
class Tracks:
    """Ground-truth (or predicted) per-object per-frame masks and boxes of one video.

    masks: (T, N, H, W) bool; boxes: (T, N, 4) float32 xyxy in pixels with exclusive end
    (x1 = last column + 1, as COCO's x + w), NaN where the object is absent from the frame.
    """

    masks: np.ndarray
    boxes: np.ndarray
    object_ids: tuple[int, ...]

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.masks.shape[1])

    @property
    def visible(self) -> np.ndarray:
        """(T, N) bool: the object has at least one pixel in the frame."""
        return self.masks.any(axis=(2, 3))
