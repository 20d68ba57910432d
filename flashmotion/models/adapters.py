"""Trajectory adapters: the trajectory map video, VAE-encoded to a latent shaped like the video latent, becomes one
residual per DiT block, added to that block's output through a zero-initialised projection (so a fresh adapter
leaves the backbone's prediction unchanged, exactly).

- `ControlNetAdapter` (ControlNet for DiTs, as PixArt/VACE): trainable copies of the first K DiT blocks run on
  the backbone's tokens (noisy video + clean first frame) plus the patch-embedded trajectory latent; control block
  j feeds DiT blocks i with j = i * K // L through per-block zero-initialised linears.
- `ResNetAdapter`: a lightweight stack of residual 3D-conv blocks on the trajectory latent; the output of residual
  block i is patchified to the token grid by a zero-initialised patch projection and added to DiT block i.

Adapters are called as `adapter(trajectory_latent, inputs: DiTInputs) -> list of (B, N, D)` by
flashmotion.models.backbone.dit_forward. They are diffusers `ModelMixin` + `ConfigMixin` models: `config` holds
the full shape (so `save_pretrained` / `from_pretrained` / `from_config` work without the transformer), and
`options` the user-level arguments of `build_adapter(kind, transformer, **options)`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from diffusers import WanTransformer3DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_wan import WanTransformerBlock
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import DiTInputs


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _transformer_config(transformer: WanTransformer3DModel) -> dict[str, Any]:
    """The transformer shape arguments an adapter is built from (what its own config records)."""
    cfg = transformer.config
    return {
        "dim": int(cfg.num_attention_heads * cfg.attention_head_dim),
        "in_channels": int(cfg.in_channels),
        "patch_size": [int(p) for p in cfg.patch_size],
        "num_layers": len(transformer.blocks),
    }


class ControlNetAdapter(ModelMixin, ConfigMixin):
    """ControlNet for the Wan DiT: `num_blocks` Wan blocks over [DiT tokens + patch-embedded trajectory], their
    outputs projected into all `num_layers` DiT blocks. Build a fresh one for a transformer with
    `ControlNetAdapter.for_transformer(transformer, num_blocks)` (the copied blocks and patch embedding are the
    trainable initialisation); `from_pretrained` / `from_config` rebuild one from its config alone.
    `enable_gradient_checkpointing()` (diffusers') recomputes the copied blocks in the backward pass."""

    kind = "controlnet"
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        dim: int,
        in_channels: int,
        patch_size: list[int],
        num_layers: int,
        num_blocks: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str = "rms_norm_across_heads",
        cross_attn_norm: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if not 1 <= num_blocks <= num_layers:
            raise ModelConfigError(f"controlnet num_blocks must be in [1, {num_layers}], got {num_blocks}")
        self.num_layers = num_layers
        self.trajectory_embedding = nn.Conv3d(in_channels, dim, kernel_size=tuple(patch_size), stride=tuple(patch_size))
        self.blocks = nn.ModuleList(
            WanTransformerBlock(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps) for _ in range(num_blocks)
        )
        self.out_proj = nn.ModuleList(zero_module(nn.Linear(dim, dim)) for _ in range(num_layers))
        self.gradient_checkpointing = False

    @classmethod
    def for_transformer(cls, transformer: WanTransformer3DModel, num_blocks: int | None = None) -> ControlNetAdapter:
        num_layers = len(transformer.blocks)
        num_blocks = num_layers if num_blocks is None else int(num_blocks)
        cfg = transformer.config
        on_meta = transformer.device.type == "meta"  # shapes only (parameter counts): nothing to copy
        with torch.device("meta") if on_meta else contextlib.nullcontext():
            adapter = cls(
                **_transformer_config(transformer), num_blocks=num_blocks, ffn_dim=int(cfg.ffn_dim),
                num_heads=int(cfg.num_attention_heads), qk_norm=cfg.qk_norm, cross_attn_norm=bool(cfg.cross_attn_norm),
                eps=float(cfg.eps),
            )
        if not on_meta:
            adapter.trajectory_embedding.load_state_dict(transformer.patch_embedding.state_dict())
            for i, block in enumerate(adapter.blocks):
                block.load_state_dict(transformer.blocks[i].state_dict())
        return adapter

    @property
    def options(self) -> dict[str, Any]:
        """The `build_adapter` options that rebuild this adapter for its transformer."""
        return {"num_blocks": int(self.config.num_blocks)}

    def block_for_layer(self, layer: int) -> int:
        return layer * len(self.blocks) // self.num_layers

    def forward(self, trajectory_latent: torch.Tensor, inputs: DiTInputs) -> list[torch.Tensor]:
        trajectory = self.trajectory_embedding(trajectory_latent).flatten(2).transpose(1, 2)
        hidden = inputs.tokens + trajectory
        features = []
        args = (inputs.context, inputs.timestep_proj, inputs.rotary)
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden = self._gradient_checkpointing_func(block, hidden, *args)
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


class ResNetAdapter(ModelMixin, ConfigMixin):
    """Lightweight 3D-conv adapter on the trajectory latent (B, C, F, h, w); `channels` wide. Build a fresh one
    with `ResNetAdapter.for_transformer(transformer, channels)`. `enable_gradient_checkpointing()` recomputes
    each residual block in the backward pass (only its input is kept)."""

    kind = "resnet"
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, dim: int, in_channels: int, patch_size: list[int], num_layers: int, channels: int = 64) -> None:
        super().__init__()
        patch = tuple(patch_size)
        self.stem = nn.Conv3d(in_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(ResidualBlock3d(channels) for _ in range(num_layers))
        self.out_proj = nn.ModuleList(
            zero_module(nn.Conv3d(channels, dim, kernel_size=patch, stride=patch)) for _ in range(num_layers)
        )
        self.gradient_checkpointing = False

    @classmethod
    def for_transformer(cls, transformer: WanTransformer3DModel, channels: int = 64) -> ResNetAdapter:
        with torch.device("meta") if transformer.device.type == "meta" else contextlib.nullcontext():
            return cls(**_transformer_config(transformer), channels=int(channels))

    @property
    def options(self) -> dict[str, Any]:
        """The `build_adapter` options that rebuild this adapter for its transformer."""
        return {"channels": int(self.config.channels)}

    def forward(self, trajectory_latent: torch.Tensor, inputs: DiTInputs | None = None) -> list[torch.Tensor]:
        x = self.stem(trajectory_latent)
        residuals = []
        for block, proj in zip(self.blocks, self.out_proj, strict=True):
            x = self._gradient_checkpointing_func(block, x) if torch.is_grad_enabled() and self.gradient_checkpointing else block(x)
            residuals.append(proj(x).flatten(2).transpose(1, 2))
        return residuals


ADAPTERS: dict[str, type[nn.Module]] = {cls.kind: cls for cls in (ControlNetAdapter, ResNetAdapter)}


def build_adapter(kind: str, transformer: WanTransformer3DModel, dtype: torch.dtype | None = None, **options: Any) -> nn.Module:
    """A fresh (zero-initialised output) adapter of `kind` ('controlnet' | 'resnet') for `transformer`, on the
    transformer's device, in `dtype` (None: the transformer's; a trained adapter keeps float32 weights next to a
    bf16 frozen transformer)."""
    try:
        cls = ADAPTERS[kind]
    except KeyError:
        raise ModelConfigError(f"unknown adapter {kind!r}; choose one of {sorted(ADAPTERS)}") from None
    adapter = cls.for_transformer(transformer, **options)
    # nn.Module.to: ModelMixin.to warns on every dtype cast, even with no fp32-only modules (none here).
    return nn.Module.to(adapter, transformer.device, dtype or transformer.dtype)
