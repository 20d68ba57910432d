"""SAM 2 glue (segment/sam2.py) against a stand-in predictor with the SAM2VideoPredictor call signatures
(init_state(video_path=...), add_new_mask(state, frame_idx, obj_id, mask), propagate_in_video(state,
start_frame_idx=...) yielding (frame_idx, obj_ids, (n, 1, H, W) logits)). The real model needs a checkpoint
that cannot be fetched here; this checks what flashbench adds: frames handed over in order, one mask per
object at its prompt frame, object ids mapped back, nothing before an object's prompt frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flashbench.metrics.segment.sam2 import Sam2Segmenter


class FakePredictor:
    """Propagates each object's prompt mask unchanged (a perfect memory for a still scene)."""

    def __init__(self) -> None:
        self.masks: dict[int, tuple[int, np.ndarray]] = {}
        self.frames: list[np.ndarray] = []

    def init_state(self, video_path: str) -> dict:
        files = sorted(Path(video_path).glob("*.jpg"))
        self.frames = [np.asarray(Image.open(f)) for f in files]
        return {"n": len(files)}

    def add_new_mask(self, state: dict, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        self.masks[obj_id] = (frame_idx, mask)

    def propagate_in_video(self, state: dict, start_frame_idx: int = 0):
        ids = sorted(self.masks)
        for t in range(start_frame_idx, state["n"]):
            logits = torch.stack([torch.as_tensor(self.masks[i][1], dtype=torch.float32) * 2 - 1 for i in ids])
            yield t, ids, logits[:, None]


def test_sam2_glue_maps_objects_and_clears_frames_before_the_prompt():
    frames = np.zeros((5, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(5)[:, None, None] * 50  # frame t is uniformly red 50 t
    prompts = np.zeros((2, 32, 48), bool)
    prompts[0, 4:10, 4:12] = True
    prompts[1, 20:30, 30:40] = True
    fake = FakePredictor()
    seg = Sam2Segmenter(fake, Path("sam2.1_hiera_tiny.pt"), "0" * 64, "configs/x.yaml", progress=False)
    out = seg.track(frames, prompts, np.array([1, 3]))
    assert out.shape == (5, 2, 32, 48) and out.dtype == bool
    assert [int(round(f[..., 0].mean())) for f in fake.frames] == [0, 50, 100, 150, 200]  # in order
    assert fake.masks[0][0] == 1 and fake.masks[1][0] == 3
    assert not out[:1, 0].any() and not out[:3, 1].any()  # before each prompt frame: empty
    assert (out[1:, 0] == prompts[0]).all() and (out[3:, 1] == prompts[1]).all()
