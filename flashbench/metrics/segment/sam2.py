"""SAM 2 video predictor (optional: `pip install sam2` and pass a checkpoint).

SAM 2 tracks with its own memory. Each object is given its ground-truth mask at its prompt frame
(`add_new_mask`), then the predictor propagates forward from the earliest prompt frame; masks before an
object's prompt frame are cleared, as the `Segmenter` protocol requires.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from flashbench.errors import FlashBenchError, WeightsError
from flashbench.metrics.segment.base import check_track_inputs

_INSTALL = "install it with `pip install sam2` and pass --segmenter-checkpoint PATH (e.g. sam2.1_hiera_tiny.pt)"
# checkpoint file stem -> Hydra config name inside the sam2 package
CONFIGS = {
    f"{prefix}_hiera_{size}": f"configs/{prefix}/{prefix}_hiera_{short}.yaml"
    for prefix in ("sam2", "sam2.1")
    for size, short in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
}


class Sam2Segmenter:
    """`Segmenter` on `sam2.sam2_video_predictor.SAM2VideoPredictor`."""

    def __init__(self, predictor, checkpoint: Path, checkpoint_sha256: str, config: str, progress: bool) -> None:
        self.name = "sam2"
        self.predictor = predictor
        self.checkpoint = checkpoint
        self.checkpoint_sha256 = checkpoint_sha256
        self.config = config
        self.progress = progress

    def describe(self) -> dict:
        return {
            "segmenter": self.name,
            "checkpoint": self.checkpoint.name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "config": self.config,
            "tracker": "SAM2VideoPredictor, add_new_mask at each object's prompt frame, forward propagation",
        }

    @torch.inference_mode()
    def track(self, frames: np.ndarray, prompt_masks: np.ndarray, prompt_frames: np.ndarray) -> np.ndarray:
        frames, prompt_masks, prompt_frames = check_track_inputs(frames, prompt_masks, prompt_frames)
        t, n = len(frames), len(prompt_masks)
        out = np.zeros((t, n, *frames.shape[1:3]), dtype=bool)
        with tempfile.TemporaryDirectory(prefix="flashbench-sam2-") as tmp:
            for i, frame in enumerate(frames):  # the predictor reads a folder of <index>.jpg
                Image.fromarray(frame).save(Path(tmp) / f"{i:05d}.jpg", quality=95)
            state = self.predictor.init_state(video_path=tmp)
            for k in range(n):
                self.predictor.add_new_mask(state, int(prompt_frames[k]), k, prompt_masks[k])
            start = int(prompt_frames.min())
            stream = self.predictor.propagate_in_video(state, start_frame_idx=start)
            for frame_idx, obj_ids, logits in tqdm(stream, total=t - start, desc="segment (sam2)", disable=not self.progress, leave=False):
                masks = (logits[:, 0] > 0.0).cpu().numpy()
                for j, obj in enumerate(obj_ids):
                    out[frame_idx, int(obj)] = masks[j]
        out[np.arange(t)[:, None] < prompt_frames[None, :]] = False
        return out


def load_sam2(device: str = "cpu", checkpoint: Path | None = None, progress: bool = True) -> Sam2Segmenter:
    """SAM 2 segmenter; the config is chosen from the checkpoint's file name (sam2[.1]_hiera_{tiny,small,...})."""
    try:
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError:
        raise FlashBenchError(f"segmenter 'sam2' needs the sam2 package: {_INSTALL}") from None
    if checkpoint is None or not Path(checkpoint).is_file():
        where = "no checkpoint given" if checkpoint is None else f"checkpoint not found: {checkpoint}"
        raise WeightsError(f"segmenter 'sam2' needs weights ({where}): {_INSTALL}")
    checkpoint = Path(checkpoint)
    config = CONFIGS.get(checkpoint.stem)
    if config is None:
        raise WeightsError(
            f"cannot tell the SAM 2 model from the file name {checkpoint.name}; keep the official name "
            f"({', '.join(f'{s}.pt' for s in CONFIGS)})"
        )
    from flashbench.weights import sha256_file

    predictor = build_sam2_video_predictor(config, str(checkpoint), device=device)
    return Sam2Segmenter(predictor, checkpoint, sha256_file(checkpoint), config, progress)
