"""Typed records of a benchmark: one `Sample` per video, its objects and its ground-truth tracks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from flashbench.errors import BenchmarkError

ANNOTATIONS = ("mask", "box")


@dataclass(frozen=True)
class ObjectInfo:
    """One foreground object. `id` is its palette index in the mask PNGs (1-based).

    annotation: what the ground truth of this object is. "mask" (the default): its masks. "box": only its
    boxes are ground truth (e.g. imported from a box-trajectory map); its masks in objects.json and the mask
    PNGs are the filled boxes, except where the source had a real mask (the first frame of a MagicMotion box
    map), so mask IoU is not computed for it while box IoU is. A record without the key is "mask".
    """

    id: int
    first_visible: int
    last_visible: int
    category: str | None = None
    annotation: str = "mask"

    def __post_init__(self) -> None:
        if self.annotation not in ANNOTATIONS:
            raise BenchmarkError(f"object {self.id}: annotation must be one of {ANNOTATIONS}, got "
                                 f"{self.annotation!r}; rebuild the benchmark")  # fmt: skip


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
        defaults = {"category": None, "annotation": "mask"}  # left out, so older records read back the same
        record["objects"] = [
            {k: v for k, v in asdict(o).items() if not (k in defaults and v == defaults[k])} for o in self.objects
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
