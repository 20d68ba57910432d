"""Number formats of a training run: the autocast dtype, the dtype frozen roles are held in, and the record of
every role's parameter dtypes that the loop writes into the run's config.json.

`mixed_precision`: auto = bf16 autocast on CUDA and none (float32) on the CPU; bf16 = bf16 autocast on any device;
fp32 = none. Frozen roles (they only run forward, or pass gradients through to their inputs) are held in bf16
exactly when the run autocasts to bf16, and in float32 otherwise: a bf16 role next to a float32 trainable module
needs autocast to mix them. Trainable weights are always float32 (AdamW's master weights). The text encoder
follows `encoder_dtype`.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import torch
from torch import nn

from flashmotion.train.config import TrainConfig


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 for `mixed_precision: bf16`, or `auto` on CUDA; None (no autocast) otherwise."""
    mode = config.mixed_precision
    return torch.bfloat16 if mode == "bf16" or (mode == "auto" and torch.device(device).type == "cuda") else None


def autocast_context(config: TrainConfig, device: torch.device):
    """The autocast region of a train step. Its weight cache is off: the cache would keep a bf16 copy of every
    trainable weight until the step ends (under FSDP2 of the gathered, unsharded ones: 2 B per parameter of a 5B
    role on every GPU); without it a copy lives as long as the graph needs it (one block under checkpointing)."""
    dtype = autocast_dtype(config, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype, cache_enabled=False)


def frozen_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """The dtype frozen roles are built in: bf16 under bf16 autocast, float32 without autocast."""
    return autocast_dtype(config, device) or torch.float32


def encoder_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """The text encoder's dtype: the frozen dtype when it comes from `model_path` (Wan2.2's UMT5-XXL, which an
    export never copies), float32 otherwise (a random-init or checkpointed encoder that exports copy; the VAE is
    always float32)."""
    return frozen_dtype(config, device) if config.model_path is not None else torch.float32


def parameter_dtypes(module: nn.Module) -> dict[str, int]:
    """{dtype name: number of parameters} of `module` (diffusers keeps a few modules of a bf16 transformer in
    float32, so a role can have two)."""
    counts: Counter[str] = Counter()
    for p in module.parameters():
        counts[str(p.dtype).removeprefix("torch.")] += p.numel()
    return dict(sorted(counts.items()))
