"""Training data over a FlashBench benchmark folder, and the encoding of batches into `TrainBatch`es.

`ClipDataset[(index, epoch)]` returns one training clip of sample `index`:
- frames: a window of `frames` (4k+1) consecutive frames starting at a random offset (offset 0 when the video is
  exactly that long; a shorter video repeats its last frame);
- space: a random crop with sides `min_crop`..1 of the largest window of the target aspect ratio (centred full
  window without random crop), resized to `size` (antialiased bilinear for pixels, nearest for masks); with
  `native_crop`, a random `size` window of the frame itself (no resize);
- video (T, H, W, 3) uint8, first frame = frame 0 of the clip, prompt, and the mask and box trajectory maps
  rendered by flashbench.data.trajectories.render_condition from the cropped/resized masks (boxes re-derived).
The randomness of item (index, epoch) comes from numpy's Philox keyed by (seed, epoch, index): the same item
on every rank, resume and worker, no RNG state to save.

`batch_order(step)` gives the sample indices of a global step (a fresh permutation per epoch, seeded), split
over ranks. `BatchEncoder` turns collated clips into a `TrainBatch` (VAE latents of the clip and of the first
frame, UMT5 embeddings of the prompt and of the negative prompt, VAE latent of the trajectory map) and keeps an
optional on-disk cache of those tensors, keyed by (benchmark content hash, VAE weights hash, text-encoder weights
hash, frames, size); the cache is used only for deterministic clips (no random crop, offset 0).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from flashbench import atomic
from flashbench.data.benchmark import Benchmark
from flashbench.data.objects import boxes_from_masks
from flashbench.data.trajectories import render_condition
from flashbench.errors import BenchmarkError
from flashbench.video import resize_frames, resize_masks
from flashmotion.errors import ModelConfigError
from flashmotion.models.build import Conditioning, Encoders
from flashmotion.train.config import CONDITION_KINDS, DataConfig
from flashmotion.train.method import TrainBatch


@dataclass
class Clip:
    """One training clip at the model size: video (T, H, W, 3) uint8; trajectories[kind] (T, H, W, 3) uint8."""

    id: str
    prompt: str
    video: np.ndarray
    trajectories: dict[str, np.ndarray]
    deterministic: bool


def crop_window(height: int, width: int, target: tuple[int, int], scale: float, rng: np.random.Generator | None):
    """(y0, x0, h, w) of a window with the aspect of `target`, `scale` times the largest that fits; random
    position with `rng`, centred without."""
    aspect = target[1] / target[0]
    h = min(height, width / aspect)
    h, w = max(1, int(round(h * scale))), max(1, int(round(h * aspect * scale)))
    h, w = min(h, height), min(w, width)
    if rng is None:
        return (height - h) // 2, (width - w) // 2, h, w
    return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w


class ClipDataset(torch.utils.data.Dataset):
    """Clips of a benchmark at `config.size` / `config.frames` (see the module docstring)."""

    def __init__(self, config: DataConfig, seed: int = 0, kinds: tuple[str, ...] = CONDITION_KINDS) -> None:
        if config.bench is None:
            raise ModelConfigError("data.bench is not set: pass data.bench=DIR (a FlashBench benchmark folder)")
        self.bench = Benchmark.load(Path(config.bench))
        if len(self.bench) == 0:
            raise BenchmarkError(f"{config.bench} has no samples; build one with `flashbench build synthetic`")
        self.config = config
        self.seed = int(seed)
        self.kinds = tuple(kinds)
        self.random = config.random_crop and config.cache is None

    def __len__(self) -> int:
        return len(self.bench)

    def __getitem__(self, key: tuple[int, int]) -> Clip:
        index, epoch = key
        sample = self.bench.samples[index]
        rng = np.random.Generator(np.random.Philox(key=[self.seed, epoch * 1_000_003 + index])) if self.random else None
        video = self.bench.read_video(sample)
        masks = self.bench.tracks(sample).masks
        frames = self.config.frames
        start = int(rng.integers(0, len(video) - frames + 1)) if rng is not None and len(video) > frames else 0
        idx = np.minimum(np.arange(start, start + frames), len(video) - 1)
        video, masks = video[idx], masks[idx]
        size = (int(self.config.size[0]), int(self.config.size[1]))
        if self.config.native_crop and rng is not None:  # a `size` window at the benchmark's own pixel scale
            h, w = min(size[0], sample.height), min(size[1], sample.width)
            y0, x0 = int(rng.integers(0, sample.height - h + 1)), int(rng.integers(0, sample.width - w + 1))
        else:
            scale = float(rng.uniform(self.config.min_crop, 1.0)) if rng is not None else 1.0
            y0, x0, h, w = crop_window(sample.height, sample.width, size, scale, rng)
        video = resize_frames(np.ascontiguousarray(video[:, y0 : y0 + h, x0 : x0 + w]), size)
        masks = resize_masks(np.ascontiguousarray(masks[..., y0 : y0 + h, x0 : x0 + w]), size)
        boxes = boxes_from_masks(masks)
        trajectories = {kind: render_condition(masks, kind, boxes) for kind in self.kinds}
        return Clip(sample.id, sample.prompt, video, trajectories, deterministic=rng is None)


def collate_clips(clips: list[Clip]) -> list[Clip]:
    return clips


def batch_order(num_samples: int, global_batch: int, step: int, seed: int) -> tuple[list[int], int]:
    """(sample indices, epoch) of global step `step`: consecutive slices of per-epoch permutations
    (numpy PCG64 seeded by (seed, epoch)); a batch straddling two epochs takes the rest from the next one."""
    start = step * global_batch
    out: list[int] = []
    epoch = start // num_samples
    first_epoch = epoch
    pos = start % num_samples
    while len(out) < global_batch:
        order = np.random.default_rng([seed, epoch]).permutation(num_samples)
        take = order[pos : pos + global_batch - len(out)]
        out.extend(int(i) for i in take)
        epoch, pos = epoch + 1, 0
    return out, first_epoch


def module_hash(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes): the identity of its weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float().div(127.5).sub(1.0).permute(3, 0, 1, 2)


class BatchEncoder:
    """Clips -> TrainBatch for a stage with `inputs` 'pixels' | 'latents' | 'trajectory' (registry.INPUTS)."""

    def __init__(self, encoders: Encoders | None, config: DataConfig, inputs: str, bench: Benchmark, device: torch.device) -> None:
        self.encoders = encoders
        self.config = config
        self.inputs = inputs
        self.device = device
        self.cache_dir = None
        if config.cache is not None and inputs != "pixels" and encoders is not None:
            key = {
                "benchmark": bench.meta.content_hash,
                "vae": module_hash(encoders.vae),
                "text_encoder": module_hash(encoders.text_encoder),
                "frames": config.frames,
                "size": list(config.size),
                "negative_prompt": config.negative_prompt,
            }
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
            self.cache_dir = Path(config.cache) / digest
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            (self.cache_dir / "key.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")

    def _encode_clip(self, clip: Clip) -> dict[str, torch.Tensor]:
        enc = self.encoders
        video = _to_tensor(clip.video)[None].to(self.device)
        out = {
            "latents": enc.encode_video(video),
            "image_latent": enc.encode_video(video[:, :, :1]),
            "text": enc.encode_prompt([clip.prompt]),
            "negative": enc.encode_prompt([self.config.negative_prompt]),
        }
        if self.inputs == "trajectory":
            for kind, frames in clip.trajectories.items():
                out[f"trajectory_{kind}"] = enc.encode_video(_to_tensor(frames)[None].to(self.device))
        return {k: v[0].float() for k, v in out.items()}

    def _encoded(self, clip: Clip) -> dict[str, torch.Tensor]:
        if self.cache_dir is None or not clip.deterministic:
            return self._encode_clip(clip)
        path = self.cache_dir / f"{clip.id}.safetensors"
        if path.is_file():
            cached = load_file(str(path), device=str(self.device))
            if self.inputs != "trajectory" or all(f"trajectory_{k}" in cached for k in clip.trajectories):
                return cached
        tensors = self._encode_clip(clip)
        with atomic.atomic_path(path) as tmp:  # per-process temp name: ranks may encode the same clip at once
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        return tensors

    def __call__(self, clips: list[Clip], kind: str) -> TrainBatch:
        ids = [c.id for c in clips]
        kinds = [kind] * len(clips)
        if self.inputs == "pixels":
            video = torch.stack([_to_tensor(c.video) for c in clips]).to(self.device)
            return TrainBatch(None, None, video, ids, kinds)
        with torch.no_grad():
            parts = [self._encoded(c) for c in clips]
        stack = lambda name: torch.stack([p[name] for p in parts])  # noqa: E731
        trajectory = stack(f"trajectory_{kind}") if self.inputs == "trajectory" else None
        cond = Conditioning(stack("image_latent"), stack("text"), stack("negative"), trajectory)
        return TrainBatch(stack("latents"), cond, None, ids, kinds)
