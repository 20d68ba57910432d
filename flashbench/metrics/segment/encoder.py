"""Batched SAM image encoding of video frames, with the encoder input size chosen from the video size.

SAM-family encoders read a square ``S x S`` image: the frame is resized so that its longest side is ``S``
(bilinear, antialiased), normalised with the model's pixel mean/std and zero-padded at the bottom/right
(segment_anything's ``ResizeLongestSide`` + ``Sam.preprocess``; here as one torch resize of a batch of frames).
The encoder returns ``(B, 256, S/16, S/16)`` embeddings.

Input size (`auto_image_size`): MobileSAM was trained at ``S = 1024`` but its TinyViT encoder has no
absolute position embedding, so it runs at any ``S`` divisible by 64. Upsampling a small video to 1024 costs
``(1024/S)^2`` more encoder work; the default is ``UPSAMPLE`` (4x) the video's longest side, rounded up to
a multiple of 64, within [`MIN_IMAGE_SIZE`, 1024]: 512 for a 128^2 video, 1024 from 256 px on. 4x, not 2x:
on the synthetic 128^2 scenes of tests/test_segment.py mask IoU was 0.84 / 0.94 at 256 and 0.90 / 0.95
at 512 (benchmarks/eval_speed.py prints accuracy and cost per size). SAM ViT-B/L/H have absolute position embeddings for
1024 and always use it.

On CUDA the encoder runs in bfloat16 autocast with channels-last inputs (`EncoderSettings`); the embeddings
are returned as float32, so the prompt encoder and mask decoder always run in float32.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam

MAX_IMAGE_SIZE = 1024
MIN_IMAGE_SIZE = 256
UPSAMPLE = 4.0
SIZE_STEP = 64


def auto_image_size(height: int, width: int) -> int:
    """Encoder input side for an H x W video: ceil(UPSAMPLE * max(H, W) / 64) * 64 within [256, 1024]."""
    side = math.ceil(UPSAMPLE * max(height, width) / SIZE_STEP) * SIZE_STEP
    return int(min(MAX_IMAGE_SIZE, max(MIN_IMAGE_SIZE, side)))


def input_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) of an H x W frame resized so that its longest side is `size` (ResizeLongestSide's rounding)."""
    scale = size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@dataclass(frozen=True)
class EncoderSettings:
    """batch: frames per encoder call. bf16 / channels_last: used only on CUDA devices."""

    batch: int = 4
    bf16: bool = True
    channels_last: bool = True


def encode_frames(
    model: Sam, frames: np.ndarray, settings: EncoderSettings = EncoderSettings()
) -> Iterator[torch.Tensor]:
    """Yield the (1, 256, S/16, S/16) float32 embedding of each (H, W, 3) uint8 frame, in order.

    Frames are encoded `settings.batch` at a time; a frame equal to the previous one reuses its embedding
    (frozen videos cost one encoding).
    """
    size = model.image_encoder.img_size
    device = model.pixel_mean.device
    h, w = input_shape(frames.shape[1], frames.shape[2], size)
    cuda = device.type == "cuda"
    last_frame, last_embedding = None, None
    for t in range(0, len(frames), settings.batch):
        chunk = frames[t : t + settings.batch]
        previous = [last_frame, *chunk[:-1]]
        fresh = [i for i in range(len(chunk)) if previous[i] is None or not np.array_equal(chunk[i], previous[i])]
        embeddings = {}
        if fresh:
            x = torch.as_tensor(chunk[fresh], device=device).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False).round().clamp(0, 255)
            x = model.preprocess(x)
            if cuda and settings.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and settings.bf16):
                emb = model.image_encoder(x).float()
            embeddings = {i: emb[j : j + 1] for j, i in enumerate(fresh)}
        for i in range(len(chunk)):
            last_embedding = embeddings.get(i, last_embedding)
            yield last_embedding
        last_frame = chunk[-1]
