"""Stage 3: the FastAdapter, the stage-1 adapter fine-tuned on the frozen FastGenerator with a hybrid objective.

Roles: `generator` (the stage-2 FastGenerator's transformer, frozen, bf16 under bf16 autocast, plus the stage-1
adapter, trainable, float32) and `discriminator` (flashmotion.models.discriminator.TrajectoryDiscriminator: a frozen
backbone transformer taken by reference, the slow teacher's by default, and the trainable query-token head).

One train step (global step s), over latent frames 1.. (frame 0 is the clean image condition):
- real x0, per-sample sampler sigma s_i drawn from the few-step list [1000, 750, 500, 250] warped by the shift
  (the timesteps the 4-step sampler queries), x_t = (1 - s_i) x0 + s_i eps, x0_fake = G(x_t, t_i) = x_t - s_i v.
- Adapter update (when `UpdateRatio({"discriminator": Nd, "adapter": Na})` says so; 1 : 5 by default):
      L = L_G + lambda(s) * L_diffusion,   L_diffusion = mean (x0_fake - x0)^2,
      L_G = mean softplus(-D(x_t'^fake)),  x_t'^fake = (1 - s') x0_fake + s' eps' (frame 0 clean),
  s' = shift(u) clamped to [0.02, 0.98] (as stage 2's score sigmas); the discriminator head is frozen for this
  forward so the adapter's loss leaves no gradient in the discriminator's optimizer.
- Discriminator update: L_D = mean softplus(-D(x_t'^real)) + mean softplus(D(sg(x_t'^fake))), real and fake
  noised at the same s' (independent noise), + r1_weight * approximate R1 on the real input (finite difference
  with perturbation scale r1_sigma; off by default).
losses.py holds the formulas (gan_generator_loss, gan_discriminator_loss, approximate_r1, LambdaSchedule).

Ablations (the paper's table) are switches of this config: `diffusion_loss: false` (L = L_G), `gan_loss: false`
(L = lambda L_diffusion, no discriminator is built), `lambda_schedule: {kind: constant, value: 1}`, and
"SlowAdapter directly" = `steps: 0` (no training, the export combines the stage-1 adapter with the FastGenerator).

Inputs (`init:`): `generator` (stage-2 export), `adapter` (stage-1 export), `teacher` (slow generator, for the
discriminator's backbone; without it `model_path`). Export: FastGenerator transformer + adapter as a FlashMotion
checkpoint (the whole backbone on the tiny preset, only the transformer when `model_path` provides the rest).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.models.build import (
    Conditioning,
    Encoders,
    RoleModel,
    build_role,
    export_checkpoint,
    with_first_frame,
)
from flashmotion.models.discriminator import TrajectoryDiscriminator
from flashmotion.sampling import NUM_TRAIN_TIMESTEPS, add_noise, randn
from flashmotion.train.alternation import UpdateCounts, UpdateRatio
from flashmotion.train.losses import (
    LambdaSchedule,
    approximate_r1,
    gan_discriminator_loss,
    gan_generator_loss,
)
from flashmotion.train.method import StepContext, TrainBatch
from flashmotion.train.precision import frozen_dtype
from flashmotion.train.registry import Stage, register, role_kwargs
from flashmotion.train.stage2_dmd import export_components, sample_score_sigmas, sampler_sigmas

DISCRIMINATOR_BACKBONES = ("teacher", "generator")


@dataclass
class HybridConfig:
    """timesteps / shift: the few-step sampler's schedule (the diffusion term's sigmas); diffusion_loss /
    gan_loss: the two terms (ablations); lambda_schedule: weight of the diffusion term; discriminator_updates :
    adapter_updates: the update ratio, any positive pair (1 : 5, the default, is one discriminator update per five
    adapter updates; 5 : 1 is the critic-heavy reading of DMD2 / APT; docs/TRAINING.md); disc_sigma_range: clamp of the discriminator's noise sigmas; r1_weight /
    r1_sigma: approximate R1; feature_blocks: discriminator feature blocks (null: thirds + last);
    discriminator_backbone: 'teacher' (the slow generator) or 'generator' (the frozen FastGenerator: one 5B
    transformer fewer in memory); discriminator_lr: the head's learning rate (null: the config's `lr`)."""

    timesteps: list[float] = field(default_factory=lambda: [1000.0, 750.0, 500.0, 250.0])
    shift: float = 5.0
    diffusion_loss: bool = True
    gan_loss: bool = True
    lambda_schedule: LambdaSchedule = field(default_factory=LambdaSchedule)
    discriminator_updates: int = 1
    adapter_updates: int = 5
    disc_sigma_range: list[float] = field(default_factory=lambda: [0.02, 0.98])
    r1_weight: float = 0.0
    r1_sigma: float = 0.01
    feature_blocks: list[int] | None = None
    discriminator_backbone: str = "teacher"
    discriminator_lr: float | None = None

    def __post_init__(self) -> None:
        if not (self.diffusion_loss or self.gan_loss):
            raise ModelConfigError("stage3_hybrid needs diffusion_loss or gan_loss; for no training use steps: 0")
        if self.discriminator_backbone not in DISCRIMINATOR_BACKBONES:
            raise ModelConfigError(f"discriminator_backbone must be one of {DISCRIMINATOR_BACKBONES}, got {self.discriminator_backbone!r}")
        if self.r1_weight < 0 or self.r1_sigma <= 0:
            raise ModelConfigError(f"r1_weight must be >= 0 and r1_sigma > 0, got {self.r1_weight}, {self.r1_sigma}")
        lo, hi = self.disc_sigma_range
        if not 0 <= lo < hi <= 1:
            raise ModelConfigError(f"disc_sigma_range must be 0 <= lo < hi <= 1, got {self.disc_sigma_range}")
        UpdateRatio({"discriminator": self.discriminator_updates, "adapter": self.adapter_updates})


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of `module` do not require grad inside the block (inputs still get gradients through it)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class HybridMethod(UpdateCounts):
    """Stage 3 (see the module docstring). Optimizers: 'adapter' and, with the GAN loss, 'discriminator'."""

    name = "stage3_hybrid"

    def __init__(
        self,
        config: HybridConfig,
        encoders: Encoders,
        generator: RoleModel,
        discriminator: TrajectoryDiscriminator | None = None,
        export_components: Sequence[str] = ("transformer", "vae", "text_encoder", "tokenizer"),
    ) -> None:
        if generator.adapter is None:
            raise ModelConfigError("stage3_hybrid needs the stage-1 adapter: set init.adapter to its checkpoint")
        if config.gan_loss and discriminator is None:
            raise ModelConfigError("stage3_hybrid with gan_loss needs a discriminator")
        self.config = config
        self.encoders = encoders
        self.generator = generator.set_trainable(("adapter",))
        self.discriminator = discriminator if config.gan_loss else None
        self.export_components = tuple(export_components)
        self.sigmas = torch.tensor(sampler_sigmas(config.timesteps, config.shift))
        self.ratio = UpdateRatio({"discriminator": config.discriminator_updates, "adapter": config.adapter_updates})
        self.updates = {"adapter": 0, "discriminator": 0}
        self.optimizer_overrides = (
            {"discriminator": {"lr": config.discriminator_lr}} if config.discriminator_lr is not None and config.gan_loss else {}
        )

    def modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"adapter": self.generator.adapter}
        if self.discriminator is not None:
            modules["discriminator"] = self.discriminator
        return modules

    def roles(self) -> dict[str, nn.Module]:
        roles: dict[str, nn.Module] = {"generator": self.generator}
        if self.discriminator is not None:  # its backbone is not a submodule (see flashmotion.models.discriminator)
            roles.update({"discriminator": self.discriminator, "discriminator_backbone": self.discriminator.backbone})
        return roles

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: [p for p in module.parameters() if p.requires_grad] for name, module in self.modules().items()}

    # --- pieces -------------------------------------------------------------------------------------------
    def diffusion_inputs(self, x0: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, t): real latents noised at a per-sample sampler sigma."""
        index = torch.randint(len(self.sigmas), (x0.shape[0],), generator=ctx.generator)
        sigma = self.sigmas[index].to(x0.device)
        return add_noise(x0, randn(x0.shape, ctx.generator, x0.device), sigma), sigma * NUM_TRAIN_TIMESTEPS

    def disc_inputs(self, x0: torch.Tensor, cond: Conditioning, sigma: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """x0 noised at the discriminator's sigma, latent frame 0 kept clean (as the discriminator reads videos)."""
        return with_first_frame(add_noise(x0, randn(x0.shape, ctx.generator, x0.device), sigma), cond.image_latent.float())

    def logits(self, x_t: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self.discriminator(x_t, sigma * NUM_TRAIN_TIMESTEPS, cond.text_embeds, cond.trajectory_latent)

    def adapter_loss(
        self, x0_fake: torch.Tensor, x0: torch.Tensor, cond: Conditioning, weight: float, ctx: StepContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logs: dict[str, float] = {}
        loss = x0_fake.new_zeros(())
        if self.config.diffusion_loss:
            diffusion = F.mse_loss(x0_fake[:, :, 1:], x0[:, :, 1:].float())
            loss = loss + weight * diffusion
            logs["loss/diffusion"] = diffusion.item()
        if self.config.gan_loss:
            sigma = sample_score_sigmas(x0.shape[0], self.config.shift, self.config.disc_sigma_range, ctx.generator, x0.device)
            with frozen(self.discriminator):
                gan = gan_generator_loss(self.logits(self.disc_inputs(x0_fake, cond, sigma, ctx), sigma, cond))
            loss = loss + gan
            logs["loss/gan_g"] = gan.item()
        logs["loss/adapter"] = loss.item()
        return loss, logs

    def discriminator_loss(
        self, x0_fake: torch.Tensor, x0: torch.Tensor, cond: Conditioning, ctx: StepContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        sigma = sample_score_sigmas(x0.shape[0], self.config.shift, self.config.disc_sigma_range, ctx.generator, x0.device)
        real = self.disc_inputs(x0.float(), cond, sigma, ctx)
        fake = self.disc_inputs(x0_fake.detach(), cond, sigma, ctx)
        logits_real = self.logits(real, sigma, cond)
        loss = gan_discriminator_loss(logits_real, self.logits(fake, sigma, cond))
        logs = {"loss/gan_d": loss.item()}
        if self.config.r1_weight > 0:
            perturbed = real + self.config.r1_sigma * randn(real.shape, ctx.generator, real.device)
            r1 = approximate_r1(logits_real, self.logits(with_first_frame(perturbed, cond.image_latent.float()), sigma, cond))
            loss = loss + self.config.r1_weight * r1
            logs["loss/r1"] = r1.item()
        return loss, logs

    # --- the step -----------------------------------------------------------------------------------------
    def train_step(self, batch: TrainBatch, ctx: StepContext) -> dict[str, float]:
        cond, x0 = batch.cond, batch.latents
        if cond.trajectory_latent is None:
            raise ModelConfigError("stage3_hybrid needs trajectory latents in the batch (stage inputs 'trajectory')")
        weight = self.config.lambda_schedule(ctx.step)
        train_adapter = self.ratio.updates("adapter", ctx.step)
        train_disc = self.discriminator is not None and self.ratio.updates("discriminator", ctx.step)
        x_t, t = self.diffusion_inputs(x0, ctx)
        logs: dict[str, float] = {"lambda": weight}
        with torch.set_grad_enabled(train_adapter):
            x0_fake = self.generator.predict_x0(x_t, t, cond)
        if train_adapter:
            loss, extra = self.adapter_loss(x0_fake, x0, cond, weight, ctx)
            logs.update(extra)
            logs.update(ctx.optimize("adapter", loss))
            self.updates["adapter"] += 1
        if train_disc:
            loss, extra = self.discriminator_loss(x0_fake, x0, cond, ctx)
            logs.update(extra)
            logs.update(ctx.optimize("discriminator", loss))
            self.updates["discriminator"] += 1
        logs.update({f"updates/{name}": float(n) for name, n in self.updates.items()})
        return logs

    def export(self, out_dir: Path) -> None:
        """FastGenerator transformer + the (fine-tuned) adapter: a 4-step `flashmotion checkpoint=DIR` generator."""
        metadata = {"stage": self.name, "adapter_updates": self.updates["adapter"], "ablation": self.ablation}
        export_checkpoint(out_dir, self.generator, self.encoders, self.export_components, metadata=metadata)

    @property
    def ablation(self) -> str:
        """The paper-table row this configuration is (recorded in the export's metadata)."""
        c = self.config
        if self.updates["adapter"] == 0:
            return "slow_adapter_directly"
        if not c.diffusion_loss:
            return "no_diffusion_loss"
        if not c.gan_loss:
            return "no_gan_loss"
        if c.lambda_schedule.kind == "constant":
            return f"constant_lambda_{c.lambda_schedule.value:g}"
        return "full"


def build(train, config: HybridConfig, encoders: Encoders, device: torch.device) -> HybridMethod:
    """Roles from `init.generator` (FastGenerator), `init.adapter` (SlowAdapter) and, for the discriminator,
    `init.teacher` (slow generator) or the FastGenerator's own frozen transformer."""
    for key in ("generator", "adapter"):
        if key not in train.init:
            raise ModelConfigError(f"stage3_hybrid needs init.{key}: the stage-{2 if key == 'generator' else 1} export folder")
    kwargs = role_kwargs(train, device)
    generator = build_role(  # the frozen FastGenerator in frozen_dtype (bf16 under bf16 autocast), the adapter float32
        checkpoint=train.init["generator"], adapter_checkpoint=train.init["adapter"], trainable=("adapter",),
        dtype=frozen_dtype(train, device), **kwargs,
    )
    discriminator = None
    if config.gan_loss:
        if config.discriminator_backbone == "generator":
            backbone = generator.transformer
        else:
            backbone = build_role(checkpoint=train.init.get("teacher"), trainable=(), dtype=frozen_dtype(train, device), **kwargs).transformer
        discriminator = TrajectoryDiscriminator(backbone, feature_blocks=config.feature_blocks)
        discriminator.classifier.float()  # the trained head keeps float32 master weights (under bf16 autocast)
    return HybridMethod(config, encoders, generator, discriminator, export_components(train))


register(Stage("stage3_hybrid", HybridConfig, build, inputs="trajectory"))
