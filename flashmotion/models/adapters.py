"""Trajectory adapters: the trajectory map video, VAE-encoded to a latent shaped like the video latent, becomes one
residual per DiT block, added to that block's output through a zero-initialised projection (so a fresh adapter
leaves the backbone's prediction unchanged, exactly).

- `ControlNetAdapter` (ControlNet for DiTs, as PixArt/VACE): trainable copies of the first K DiT blocks run on
  the backbone's tokens (noisy video + clean first frame) plus the patch-embedded trajectory latent; control block
  j feeds DiT blocks i with j = i * K // L through per-block zero-initialised linears.
- `ResNetAdapter`: a lightweight stack of residual 3D-conv blocks on the trajectory latent; the output of residual
  block i is patchified to the token grid by a zero-initialised patch projection and added to DiT block i.

Adapters are called as `adapter(trajectory_latent, inputs: DiTInputs) -> list of (B, N, D)` by
flashmotion.models.backbone.dit_forward; `adapter.config` (JSON-able) rebuilds them with `build_adapter`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from diffusers import WanTransformer3DModel
from torch import nn
from torch.utils.checkpoint import checkpoint

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import DiTInputs


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ControlNetAdapter(nn.Module):
    """ControlNet for the Wan DiT. `transformer` is only read at construction (its first `num_blocks` blocks and
    its patch embedding are copied as the trainable initialisation). Set `gradient_checkpointing = True` to
    recompute the copied blocks in the backward pass."""

    kind = "controlnet"

    def __init__(self, transformer: WanTransformer3DModel, num_blocks: int | None = None) -> None:
        super().__init__()
        num_layers = len(transformer.blocks)
        num_blocks = num_layers if num_blocks is None else int(num_blocks)
        if not 1 <= num_blocks <= num_layers:
            raise ModelConfigError(f"controlnet num_blocks must be in [1, {num_layers}], got {num_blocks}")
        dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
        self.config: dict[str, Any] = {"num_blocks": num_blocks}
        self.num_layers = num_layers
        self.trajectory_embedding = copy.deepcopy(transformer.patch_embedding)
        self.blocks = nn.ModuleList(copy.deepcopy(transformer.blocks[i]) for i in range(num_blocks))
        self.out_proj = nn.ModuleList(zero_module(nn.Linear(dim, dim)) for _ in range(num_layers))
        self.requires_grad_(True)
        self.gradient_checkpointing = False

    def block_for_layer(self, layer: int) -> int:
        return layer * len(self.blocks) // self.num_layers

    def forward(self, trajectory_latent: torch.Tensor, inputs: DiTInputs) -> list[torch.Tensor]:
        trajectory = self.trajectory_embedding(trajectory_latent).flatten(2).transpose(1, 2)
        hidden = inputs.tokens + trajectory
        features = []
        args = (inputs.context, inputs.timestep_proj, inputs.rotary)
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden = checkpoint(block, hidden, *args, use_reentrant=False)
            else:
                hidden = block(hidden, *args)
            features.append(hidden)
        return [self.out_proj[i](features[self.block_for_layer(i)]) for i in range(self.num_layers)]


class ResidualBlock3d(nn.Module):
    """GroupNorm-SiLU-Conv3d twice, plus the input."""

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(min(groups, channels), channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
            nn.GroupNorm(min(groups, channels), channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetAdapter(nn.Module):
    """Lightweight 3D-conv adapter on the trajectory latent (B, C, F, h, w); `channels` wide."""

    kind = "resnet"

    def __init__(self, transformer: WanTransformer3DModel, channels: int = 64) -> None:
        super().__init__()
        cfg = transformer.config
        dim = cfg.num_attention_heads * cfg.attention_head_dim
        patch = tuple(cfg.patch_size)
        num_layers = len(transformer.blocks)
        self.config: dict[str, Any] = {"channels": int(channels)}
        self.stem = nn.Conv3d(cfg.in_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(ResidualBlock3d(channels) for _ in range(num_layers))
        self.out_proj = nn.ModuleList(
            zero_module(nn.Conv3d(channels, dim, kernel_size=patch, stride=patch)) for _ in range(num_layers)
        )

    def forward(self, trajectory_latent: torch.Tensor, inputs: DiTInputs | None = None) -> list[torch.Tensor]:
        x = self.stem(trajectory_latent)
        residuals = []
        for block, proj in zip(self.blocks, self.out_proj, strict=True):
            x = block(x)
            residuals.append(proj(x).flatten(2).transpose(1, 2))
        return residuals


ADAPTERS: dict[str, type[nn.Module]] = {cls.kind: cls for cls in (ControlNetAdapter, ResNetAdapter)}


def build_adapter(kind: str, transformer: WanTransformer3DModel, **options: Any) -> nn.Module:
    """A fresh (zero-initialised output) adapter of `kind` ('controlnet' | 'resnet') for `transformer`, on the
    transformer's device and dtype."""
    try:
        cls = ADAPTERS[kind]
    except KeyError:
        raise ModelConfigError(f"unknown adapter {kind!r}; choose one of {sorted(ADAPTERS)}") from None
    return cls(transformer, **options).to(transformer.device, transformer.dtype)
