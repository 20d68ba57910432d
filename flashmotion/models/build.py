"""Role construction in one place, shared by the trainer and the generators.

A FlashMotion stage holds several *roles* (FastVideo's term): the generator, the frozen teacher ("real score"),
a trainable "fake score", the discriminator's backbone. They share one frozen `Encoders` (VAE + text encoder +
tokenizer) and each role is a `RoleModel`: a `WanTransformer3DModel` plus an optional trajectory adapter.

`RoleModel.predict_velocity(x_t, t, cond, guidance)` is the TI2V velocity model of flashmotion.sampling's
convention (x_t = (1 - s) x0 + s eps, velocity = eps - x0, t = s * 1000 per sample): latent frame 0 of `x_t` is
replaced by the clean image latent and its tokens get timestep 0 (Wan2.2 TI2V, `token_timesteps`). With
`guidance` g, classifier-free guidance runs as one batched call over [cond; uncond] (uncond = the negative text
embeddings, same adapter and trajectory): v = v_uncond + g (v_cond - v_uncond).

Sources of weights, in order: a FlashMotion checkpoint folder's saved backbone components, else `model_path` (a
local Wan2.2-TI2V-5B-Diffusers folder), else a seeded random init (tiny preset only).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import WanTransformer3DModel
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from flashbench.errors import WeightsError
from flashmotion.checkpoint import load_adapter, read_config, save_checkpoint
from flashmotion.errors import CheckpointError, ModelConfigError
from flashmotion.models.adapters import build_adapter
from flashmotion.models.backbone import (
    SUBFOLDERS,
    Conditioning,
    Encoders,
    WanBackbone,
    cast_transformer,
    dit_forward,
    load_component,
    token_timesteps,
)
from flashmotion.models.presets import get_preset
from flashmotion.sampling import NUM_TRAIN_TIMESTEPS

__all__ = [
    "Conditioning",
    "Encoders",
    "RoleModel",
    "build_encoders",
    "build_role",
    "clone_role",
    "enable_gradient_checkpointing",
    "export_checkpoint",
    "with_first_frame",
]

TRAINABLE_PARTS = ("adapter", "transformer")


def with_first_frame(latents: torch.Tensor, image_latent: torch.Tensor) -> torch.Tensor:
    """`latents` (B, C, F, h, w) with latent frame 0 replaced by `image_latent` (B or 1, C, 1, h, w)."""
    image = image_latent.to(latents.dtype).expand(latents.shape[0], -1, -1, -1, -1)
    return torch.cat([image, latents[:, :, 1:]], dim=2)


def _per_sample(t: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float32, device=device)
    if t.ndim == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise ModelConfigError(f"timesteps must be a scalar or shape ({batch},), got {tuple(t.shape)}")
    return t


class RoleModel(nn.Module):
    """One role: `transformer` + optional `adapter`. `trainable` names the parts whose parameters train
    ('adapter', 'transformer'); the others are frozen and kept in eval mode. `trainable=None` leaves the
    modules' requires_grad flags and modes as they are (inference wrappers around shared modules)."""

    def __init__(
        self, transformer: WanTransformer3DModel, adapter: nn.Module | None = None, trainable: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.adapter = adapter
        self.trainable: tuple[str, ...] | None = None
        if trainable is not None:
            self.set_trainable(trainable)

    def set_trainable(self, trainable: Sequence[str]) -> RoleModel:
        unknown = sorted(set(trainable) - set(TRAINABLE_PARTS))
        if unknown:
            raise ModelConfigError(f"unknown trainable parts {unknown}; choose from {TRAINABLE_PARTS}")
        if "adapter" in trainable and self.adapter is None:
            raise ModelConfigError("trainable=('adapter',) needs a role with an adapter; pass adapter='resnet'")
        self.trainable = tuple(trainable)
        self.transformer.requires_grad_("transformer" in self.trainable)
        if self.adapter is not None:
            self.adapter.requires_grad_("adapter" in self.trainable)
        return self.train(self.training)

    def train(self, mode: bool = True) -> RoleModel:
        super().train(mode)
        if self.trainable is not None:
            self.transformer.train(mode and "transformer" in self.trainable)
            if self.adapter is not None:
                self.adapter.train(mode and "adapter" in self.trainable)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    def _forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, trajectory: torch.Tensor | None) -> torch.Tensor:
        p_t, p_h, p_w = self.transformer.config.patch_size
        grid = (x.shape[2] // p_t, x.shape[3] // p_h, x.shape[4] // p_w)
        if self.adapter is not None and trajectory is None:
            raise ModelConfigError("this role has a trajectory adapter: the conditioning needs a trajectory_latent")
        adapter_input = trajectory.to(self.dtype) if self.adapter is not None else None
        velocity = dit_forward(self.transformer, x, token_timesteps(t, grid), text.to(self.dtype), self.adapter, adapter_input)
        return velocity.float()

    def predict_velocity(
        self, x_t: torch.Tensor, t: float | torch.Tensor, cond: Conditioning, guidance: float | None = None
    ) -> torch.Tensor:
        """Velocity (B, C, F, h, w) float32 for noisy latents `x_t` at per-sample timesteps `t` (B,) in [0, 1000].
        Latent frame 0 of the output is not a prediction (that frame is the clean image condition)."""
        x = with_first_frame(x_t, cond.image_latent).to(self.dtype)
        t = _per_sample(t, x.shape[0], x.device)
        if guidance is None or guidance == 1.0:
            return self._forward(x, t, cond.text_embeds, cond.trajectory_latent)
        if cond.negative_embeds is None:
            raise ModelConfigError("classifier-free guidance needs negative_embeds in the conditioning")
        trajectory = cond.trajectory_latent
        both = self._forward(
            torch.cat([x, x]),
            torch.cat([t, t]),
            torch.cat([cond.text_embeds, cond.negative_embeds]),
            torch.cat([trajectory, trajectory]) if trajectory is not None else None,
        )
        v_cond, v_uncond = both.chunk(2)
        return v_uncond + guidance * (v_cond - v_uncond)

    def predict_x0(
        self, x_t: torch.Tensor, t: float | torch.Tensor, cond: Conditioning, guidance: float | None = None
    ) -> torch.Tensor:
        """x0 = x_t - sigma v (sigma = t / 1000 per sample), float32, with latent frame 0 set to the clean image
        latent (so the result is a complete clean latent that decodes to a video)."""
        velocity = self.predict_velocity(x_t, t, cond, guidance)
        sigma = _per_sample(t, x_t.shape[0], x_t.device).view(-1, 1, 1, 1, 1) / NUM_TRAIN_TIMESTEPS
        return with_first_frame(x_t.float() - sigma * velocity, cond.image_latent.float())


# --- construction ------------------------------------------------------------------------------------------


def random_transformer(preset: str, seed: int = 0) -> WanTransformer3DModel:
    """The transformer `WanBackbone.build(preset, seed=seed)` draws (it is drawn first after seeding)."""
    spec = get_preset(preset)
    if spec.text_encoder is None:
        raise WeightsError(f"preset {preset!r} needs pretrained weights: pass model_path=DIR (a local copy of Wan-AI/Wan2.2-TI2V-5B-Diffusers)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return WanTransformer3DModel.from_config(spec.transformer)


def _saved_components(checkpoint: str | Path | None, preset: str) -> list[str]:
    if checkpoint is None:
        return []
    config = read_config(checkpoint)
    if config["preset"] != preset:
        raise CheckpointError(f"checkpoint {checkpoint} is for preset {config['preset']!r}, not {preset!r}")
    return list(config["backbone_components"])


def _component(name: str, preset: str, model_path, checkpoint, dtype: torch.dtype):
    """Backbone component `name` from the checkpoint, else model_path, else None (no checkpoint: the caller
    random-inits). A checkpoint without the component needs model_path (never a silent random init)."""
    saved = _saved_components(checkpoint, preset)
    if name in saved:
        return load_component(Path(checkpoint) / "backbone", name, dtype)
    if model_path is not None:
        return load_component(model_path, name, dtype)
    if checkpoint is not None:
        raise CheckpointError(
            f"{checkpoint} holds only {saved or 'no'} backbone components, not {name}; pass model_path=DIR (a local "
            "Wan2.2-TI2V-5B-Diffusers folder) for the rest"
        )
    return None


def build_encoders(
    preset: str,
    model_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Encoders:
    """Frozen encoders (eval, no grads). The VAE is always float32; the text encoder takes `dtype`."""
    spec = get_preset(preset)
    parts = {name: _component(name, preset, model_path, checkpoint, dtype) for name in ("vae", "text_encoder", "tokenizer")}
    if any(part is None for part in parts.values()):
        if spec.text_encoder is None:
            missing = [name for name, part in parts.items() if part is None]
            raise WeightsError(f"preset {preset!r} has no random-init {', '.join(missing)}: pass model_path=DIR (Wan2.2-TI2V-5B-Diffusers)")
        fresh = WanBackbone.from_preset_config(spec, seed=seed)
        parts = {name: part if part is not None else getattr(fresh, name) for name, part in parts.items()}
        if parts["text_encoder"] is fresh.text_encoder:
            parts["text_encoder"] = parts["text_encoder"].to(dtype)
    encoders = Encoders(**parts, max_sequence_length=spec.max_sequence_length, preset=preset, patch_size=spec.transformer["patch_size"])
    return encoders.requires_grad_(False).eval().to(device)


def build_role(
    preset: str,
    model_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    adapter: str | None = None,
    adapter_options: dict[str, Any] | None = None,
    trainable: Sequence[str] = ("adapter",),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    adapter_checkpoint: str | Path | None = None,
) -> RoleModel:
    """One role. Transformer: `checkpoint`'s saved transformer, else `model_path`'s, else random (tiny, `seed`),
    in `dtype`. Adapter: from `adapter_checkpoint` (a FlashMotion checkpoint) when given; else `adapter` =
    'resnet' | 'controlnet' builds a fresh zero-initialised one with `adapter_options`; None = no adapter. A
    trainable adapter is float32 whatever `dtype` (its optimizer needs float32 weights); a frozen one takes `dtype`."""
    transformer = _component("transformer", preset, model_path, checkpoint, dtype)
    if transformer is None:
        transformer = cast_transformer(random_transformer(preset, seed), dtype) if dtype != torch.float32 else random_transformer(preset, seed)
    transformer = transformer.to(device)
    adapter_dtype = torch.float32 if "adapter" in trainable else dtype
    if adapter_checkpoint is not None:
        kind = read_config(adapter_checkpoint)["adapter"]["kind"]
        if adapter is not None and adapter != kind:
            raise ModelConfigError(f"adapter_checkpoint {adapter_checkpoint} holds a {kind} adapter, not {adapter}")
        module = load_adapter(adapter_checkpoint, transformer, device, adapter_dtype)
    elif adapter is not None:
        module = build_adapter(adapter, transformer, adapter_dtype, **(adapter_options or {}))
    else:
        module = None
    return RoleModel(transformer, module, trainable=trainable if module is not None else tuple(p for p in trainable if p != "adapter"))


def enable_gradient_checkpointing(modules: Iterable[nn.Module]) -> list[nn.Module]:
    """Turn on diffusers' gradient checkpointing in every model inside `modules` that supports it (the Wan
    transformers, whose blocks `dit_forward` then recomputes in the backward pass, and both adapters); returns
    those models (none: nothing in `modules` can be checkpointed, e.g. the Wan VAE)."""
    found: dict[int, ModelMixin] = {}
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, ModelMixin) and sub._supports_gradient_checkpointing:
                found[id(sub)] = sub
    for model in found.values():
        model.enable_gradient_checkpointing()
    return list(found.values())


def clone_role(role: RoleModel, trainable: Sequence[str] | None = None) -> RoleModel:
    """An independent deep copy of `role` (for the fake score or a generator initialised from the teacher);
    `trainable` defaults to the source's."""
    clone = copy.deepcopy(role)
    trainable = role.trainable if trainable is None else trainable
    return clone.set_trainable(trainable) if trainable is not None else clone


def export_checkpoint(
    directory: str | Path,
    role: RoleModel,
    encoders: Encoders,
    components: Sequence[str] = SUBFOLDERS,
    metadata: dict[str, Any] | None = None,
    adapter: str = "resnet",
    adapter_options: dict[str, Any] | None = None,
) -> Path:
    """Write `role` (+ the encoders' `components`) as a FlashMotion checkpoint that the "flashmotion" and
    "wan-adapter" generators load. A role without an adapter is saved with a fresh zero-initialised `adapter`
    (exactly the plain transformer's prediction)."""
    module = role.adapter if role.adapter is not None else build_adapter(adapter, role.transformer, **(adapter_options or {}))
    backbone = WanBackbone(
        role.transformer, encoders.vae, encoders.text_encoder, encoders.tokenizer, encoders.max_sequence_length, encoders.preset
    )
    return save_checkpoint(directory, module, backbone, components=components, metadata=metadata)

