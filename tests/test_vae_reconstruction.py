"""`vae-reconstruction`: the real video through a checkpoint's VAE, the ceiling of a latent generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flashbench.data.synthetic import build_synthetic
from flashbench.generators.base import bind_benchmark
from flashbench.generators.registry import load_generator
from flashbench.runner import build_request
from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import frames_to_tensor, tensor_to_frames
from tests.baseline_checkpoints import tiny_checkpoints


def _reconstruct(tmp_path, frames: int, args: str = ""):
    """(generated video, real video, the generator) for the first sample of a one-video benchmark."""
    checkpoints = tiny_checkpoints(tmp_path / "ck")
    bench = build_synthetic(tmp_path / "bench", videos_per_group=1, frames=frames, size=(32, 32), groups="1")
    generator = load_generator(f"vae-reconstruction checkpoint={checkpoints['stage1']} {args}")
    bind_benchmark(generator, bench)
    sample = bench.samples[0]
    return generator.generate(build_request(bench, sample, "box", 0)), bench.read_video(sample), generator


def _decode_of_encode(generator, frames: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        enc = generator.encoders
        return tensor_to_frames(enc.decode_latents(enc.encode_video(frames_to_tensor(frames))))


def test_reconstruction_is_decode_of_encode_of_the_real_video_cut_to_length(tmp_path):
    video, real, generator = _reconstruct(tmp_path, frames=16)
    padded = np.concatenate([real, real[-1:]])  # 16 frames -> 17 = 4k + 1 for the VAE
    assert video.frames.shape == real.shape and video.nfe == 0
    np.testing.assert_array_equal(video.frames, _decode_of_encode(generator, padded)[:16])
    assert not np.array_equal(video.frames, real)  # a random-init VAE does not reproduce the video


def test_first_frame_source_reconstructs_the_static_reference(tmp_path):
    video, real, generator = _reconstruct(tmp_path, frames=8, args="source=first-frame")
    assert not np.array_equal(real[0], real[-1])  # the scene moves, so a static input differs from the video
    static = np.repeat(real[:1], 9, axis=0)  # 8 frames -> 9 = 4k + 1
    np.testing.assert_array_equal(video.frames, _decode_of_encode(generator, static)[:8])


def test_reconstruction_source_is_checked(tmp_path):
    checkpoints = tiny_checkpoints(tmp_path / "ck")
    with pytest.raises(ModelConfigError, match="source='last'.*video, first-frame"):
        load_generator(f"vae-reconstruction checkpoint={checkpoints['stage1']} source=last")


def test_reconstruction_needs_a_vae_source():
    with pytest.raises(ModelConfigError, match="needs checkpoint=DIR"):
        load_generator("vae-reconstruction")
