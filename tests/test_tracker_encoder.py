"""Batched frame encoding for the tracker: input size from the video size, batches equal single frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flashbench.errors import WeightsError
from flashbench.metrics.segment.encoder import EncoderSettings, auto_image_size, encode_frames, input_shape
from flashbench.metrics.segment.mobilesam import build_mobilesam


def test_auto_image_size_follows_the_video():
    assert auto_image_size(128, 128) == 512  # 4 x 128, not 1024
    assert auto_image_size(90, 150) == 640  # 4 x 150 = 600, rounded up to 64
    assert auto_image_size(480, 854) == 1024  # capped at MobileSAM's training size
    assert auto_image_size(16, 16) == 256  # at least 256
    assert input_shape(480, 854, 1024) == (576, 1024)  # ResizeLongestSide: int(575.5 + 0.5)


def test_batched_encoding_equals_one_frame_at_a_time():
    torch.manual_seed(0)
    model = build_mobilesam(256).eval()  # random weights: the arithmetic, not the accuracy
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 96, 128, 3), dtype=np.uint8)
    frames[3] = frames[2]  # a repeated frame reuses the embedding
    with torch.inference_mode():
        batched = list(encode_frames(model, frames, EncoderSettings(batch=4)))
        single = [e for f in frames for e in encode_frames(model, f[None], EncoderSettings(batch=1))]
    assert len(batched) == 5 and batched[0].shape == (1, 256, 16, 16) and batched[0].dtype == torch.float32
    for a, b in zip(batched, single, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert batched[3] is batched[2]
    assert not torch.equal(batched[1], batched[2])


def test_image_size_must_be_a_multiple_of_64():
    with pytest.raises(WeightsError, match="multiple of 64"):
        build_mobilesam(300)
