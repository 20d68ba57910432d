"""Stage 1: the SlowAdapter, a trajectory adapter trained on the frozen slow generator (flow-matching loss).

The loss is stage 0's (flashmotion.train.stage0_dit.flow_matching_loss): sigma = shift(u), x_t = (1 - sigma) x0 +
sigma eps, loss = mean over latent frames 1.. of (v(x_t, t, cond) - (eps - x0))^2, where the role is the frozen
teacher transformer plus the trainable adapter, fed the VAE latent of the trajectory map. Coarse-to-fine
curriculum (`condition_kind`): mask maps for the first `mask_fraction` of the steps, box maps after (paper:
4.6K mask + 5.4K box steps, mask_fraction 0.46). Prompt dropout as in stage 0 keeps CFG usable.

Roles: `slow` (teacher transformer frozen, adapter trains). Inputs: `init.teacher` (the slow generator: the
stage-0 export on tiny; on the 5B preset omit it and give model_path), `init.encoders`, optionally
`init.adapter` (an adapter checkpoint to continue from). Export: a FlashMotion checkpoint (adapter + backbone
components; only the adapter with a model_path) that the "wan-adapter" generator loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.models.build import Encoders, RoleModel, build_role, export_checkpoint
from flashmotion.train.method import StepContext, TrainBatch
from flashmotion.train.precision import frozen_dtype
from flashmotion.train.registry import Stage, register, role_kwargs
from flashmotion.train.stage0_dit import drop_prompts, flow_matching_loss
from flashmotion.train.validation import trajectory_losses


@dataclass
class AdapterConfig:
    """adapter: 'resnet' | 'controlnet' with `adapter_options`; mask_fraction: share of the steps on mask maps
    (then box maps); shift / prompt_dropout as stage 0."""

    adapter: str = "resnet"
    adapter_options: dict[str, Any] = field(default_factory=lambda: {"channels": 64})
    mask_fraction: float = 0.46
    shift: float = 5.0
    prompt_dropout: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.mask_fraction <= 1:
            raise ModelConfigError(f"method.mask_fraction must be in [0, 1], got {self.mask_fraction}")


class AdapterTraining:
    name = "stage1_adapter"

    def __init__(self, config: AdapterConfig, encoders: Encoders, slow: RoleModel, total_steps: int, components: tuple[str, ...]) -> None:
        self.config = config
        self.encoders = encoders
        self.slow = slow
        self.mask_steps = int(round(config.mask_fraction * total_steps))
        self.components = components

    def condition_kind(self, step: int) -> str:
        return "mask" if step < self.mask_steps else "box"

    def modules(self) -> dict[str, nn.Module]:
        return {"adapter": self.slow.adapter}

    def roles(self) -> dict[str, nn.Module]:
        return {"slow": self.slow}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"adapter": list(self.slow.adapter.parameters())}

    def train_step(self, batch: TrainBatch, ctx: StepContext) -> dict[str, float]:
        cond = drop_prompts(batch.cond, self.config.prompt_dropout, ctx.generator)
        loss = flow_matching_loss(self.slow, batch.latents, cond, self.config.shift, ctx.generator)
        logs = {"loss/flow_matching": float(loss.detach()), "box_maps": float(self.condition_kind(ctx.step) == "box")}
        return {**logs, **ctx.optimize("adapter", loss)}

    def validate(self, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]:
        """val/loss with each clip's trajectory map, val/loss_swapped with another clip's
        (flashmotion.train.validation)."""
        return trajectory_losses(self.slow, batch, generator)

    def state_dict(self) -> dict:
        return {"mask_steps": self.mask_steps}

    def load_state_dict(self, state: dict) -> None:
        self.mask_steps = int(state["mask_steps"])

    def export(self, out_dir: Path) -> None:
        export_checkpoint(out_dir, self.slow, self.encoders, self.components, metadata={"stage": self.name})


def build(train, config: AdapterConfig, encoders: Encoders, device: torch.device) -> AdapterTraining:
    slow = build_role(  # the frozen teacher in frozen_dtype (bf16 under bf16 autocast), the adapter float32
        **role_kwargs(train, device), checkpoint=train.init.get("teacher"), adapter=config.adapter,
        adapter_options=config.adapter_options, adapter_checkpoint=train.init.get("adapter"), trainable=("adapter",),
        dtype=frozen_dtype(train, device),
    )
    components = ("transformer", "vae", "text_encoder", "tokenizer") if train.model_path is None else ()
    return AdapterTraining(config, encoders, slow, train.steps, components)


register(Stage("stage1_adapter", AdapterConfig, build, inputs="trajectory"))
