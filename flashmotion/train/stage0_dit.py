"""Stage 0b (tiny preset): pretrain the DiT as a slow TI2V generator with the flow-matching loss.

Per sample (code: `flow_matching_loss`): u ~ U(0, 1), sigma = shift * u / (1 + (shift - 1) u) (the sampler's
resolution shift, flashmotion.sampling.shift_sigma), eps ~ N(0, I), x_t = (1 - sigma) x0 + sigma eps; the role
predicts v(x_t, t = 1000 sigma, cond) with latent frame 0 replaced by the clean image latent at timestep 0 (TI2V,
as the samplers call it); loss = mean over latent frames 1.. of (v - (eps - x0))^2 (frame 0 is the condition,
not a prediction). With probability `prompt_dropout` (10%) a row's text embedding is replaced by the negative
prompt's (data.negative_prompt, "" by default), the unconditional branch CFG uses at sampling time.

Roles: `teacher` (transformer trains; no adapter). Inputs: `init.encoders` (the stage-0a VAE export) and,
optionally, `init.teacher` (a checkpoint to continue from; random init otherwise). Export: a FlashMotion
checkpoint of all backbone components with a zero-initialised adapter, loadable by the "wan-adapter" generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import SUBFOLDERS
from flashmotion.models.build import Conditioning, Encoders, RoleModel, build_role, export_checkpoint
from flashmotion.sampling import NUM_TRAIN_TIMESTEPS, add_noise, randn, shift_sigma
from flashmotion.train.method import StepContext, TrainBatch
from flashmotion.train.registry import Stage, register, role_kwargs
from flashmotion.train.validation import x0_errors


@dataclass
class DiTConfig:
    """shift: flow shift of the training sigmas; prompt_dropout: probability of the unconditional text per row;
    export_adapter / export_adapter_options: the zero adapter saved with the export (what the generator loads)."""

    shift: float = 5.0
    prompt_dropout: float = 0.1
    export_adapter: str = "resnet"
    export_adapter_options: dict[str, Any] = field(default_factory=lambda: {"channels": 64})

    def __post_init__(self) -> None:
        if not 0 <= self.prompt_dropout <= 1:
            raise ModelConfigError(f"method.prompt_dropout must be in [0, 1], got {self.prompt_dropout}")
        if self.shift <= 0:
            raise ModelConfigError(f"method.shift must be > 0, got {self.shift}")


def drop_prompts(cond: Conditioning, probability: float, generator: torch.Generator) -> Conditioning:
    """`cond` with each row's text embedding replaced by its negative embedding with `probability`."""
    if probability <= 0:
        return cond
    if cond.negative_embeds is None:
        raise ModelConfigError("prompt dropout needs negative embeddings in the conditioning")
    drop = (torch.rand(len(cond), generator=generator) < probability).to(cond.text_embeds.device)
    text = torch.where(drop.view(-1, 1, 1), cond.negative_embeds.to(cond.text_embeds.dtype), cond.text_embeds)
    return dataclasses.replace(cond, text_embeds=text)


def flow_matching_loss(
    role: RoleModel, x0: torch.Tensor, cond: Conditioning, shift: float, generator: torch.Generator
) -> torch.Tensor:
    """mean over latent frames 1.. of (v(x_t, t, cond) - (eps - x0))^2, sigma = shift(u), u ~ U(0, 1)."""
    sigma = shift_sigma(torch.rand(x0.shape[0], generator=generator), shift).to(x0.device)
    noise = randn(x0.shape, generator, x0.device)
    x_t = add_noise(x0, noise, sigma)
    velocity = role.predict_velocity(x_t, sigma * NUM_TRAIN_TIMESTEPS, cond)
    return (velocity[:, :, 1:] - (noise - x0)[:, :, 1:]).float().pow(2).mean()


def export_components(train) -> tuple[str, ...]:
    """Backbone parts an export must hold: all of them without model_path (tiny), else only the transformer."""
    return SUBFOLDERS if train.model_path is None else ("transformer",)


class DiTPretraining:
    name = "stage0_dit"

    def __init__(self, config: DiTConfig, encoders: Encoders, teacher: RoleModel, components: tuple[str, ...] = SUBFOLDERS) -> None:
        self.config = config
        self.encoders = encoders
        self.teacher = teacher
        self.components = components

    def modules(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}  # the RoleModel, so FSDP2 can shard it (distributed.shard_role)

    def roles(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"teacher": list(self.teacher.transformer.parameters())}

    def train_step(self, batch: TrainBatch, ctx: StepContext) -> dict[str, float]:
        cond = drop_prompts(batch.cond, self.config.prompt_dropout, ctx.generator)
        loss = flow_matching_loss(self.teacher, batch.latents, cond, self.config.shift, ctx.generator)
        return {"loss/flow_matching": float(loss.detach()), **ctx.optimize("teacher", loss)}

    def validate(self, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]:
        """val/x0_err@S and val/x0_err_static on held-out clips (flashmotion.train.validation)."""
        return x0_errors(self.teacher, batch, generator)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def export(self, out_dir: Path) -> None:
        export_checkpoint(
            out_dir, self.teacher, self.encoders, self.components, metadata={"stage": self.name},
            adapter=self.config.export_adapter, adapter_options=self.config.export_adapter_options,
        )


def build(train, config: DiTConfig, encoders: Encoders, device: torch.device) -> DiTPretraining:
    teacher = build_role(**role_kwargs(train, device), checkpoint=train.init.get("teacher"), trainable=("transformer",))
    return DiTPretraining(config, encoders, teacher, export_components(train))


register(Stage("stage0_dit", DiTConfig, build, inputs="latents"))
