"""Stage 2: the FastGenerator by distribution matching distillation (DMD2 / CausVid / Self-Forcing recipe).

Roles: `generator` (trainable transformer, initialised from the slow generator), `real_score` (the frozen slow
generator, queried with classifier-free guidance) and `fake_score` (trainable copy of the slow generator that
tracks the generator's distribution). No trajectory adapter takes part: the paper distils the backbone alone
(the conditioning's trajectory latent is dropped).

One train step (global step s):
1. Backward simulation (DMD2 sec. 4.5, Self-Forcing `inference_with_trajectory`): from noise, run the few-step
   sampler over the sigmas of [1000, 750, 500, 250] warped by the shift (flashmotion.sampling.sample_few_step's
   schedule: x0 = x - sigma v, re-noised to the next sigma with fresh noise); stop at exit step k, drawn
   uniformly on rank 0 and broadcast; only step k's forward keeps a graph. x_gen = x0 of step k.
2. Generator update, on the steps where `UpdateRatio({"generator": 1, "fake_score": R})` says so (R = 5):
   score sigma s = shift(u), u ~ U(0, 1), clamped to [0.02, 0.98]; x_t = (1 - s) sg(x_gen) + s eps;
   x0_fake = fake_score(x_t) (no guidance), x0_real = real_score(x_t) with CFG in the standard form
   v_uncond + w (v_cond - v_uncond) (x0 = x_t - s v is affine in v, so this equals CFG on x0);
   loss = losses.dmd_loss(x_gen, x0_fake, x0_real) over latent frames 1.. (frame 0 is the clean image condition).
3. Fake-score update, every step: flow matching on the generator's samples, x_t = (1 - s) sg(x_gen) + s eps with
   a fresh s (same sampling), loss = mean (v_fake(x_t) - (eps - sg(x_gen)))^2 over frames 1...

Inputs (`init:` of the config): `teacher`, the slow generator's FlashMotion checkpoint (the stage-0 export on the
tiny preset); without it the transformer comes from `model_path` (Wan2.2-TI2V-5B). Export: the generator as a
FlashMotion checkpoint with a zero-initialised ResNet adapter (so it loads as the plain FastGenerator); the whole
backbone on the tiny preset, only the transformer when `model_path` provides the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import SUBFOLDERS
from flashmotion.models.build import (
    Conditioning,
    Encoders,
    RoleModel,
    build_role,
    clone_role,
    export_checkpoint,
)
from flashmotion.sampling import NUM_TRAIN_TIMESTEPS, add_noise, randn, shift_sigma
from flashmotion.train.alternation import UpdateCounts, UpdateRatio
from flashmotion.train.losses import dmd_loss
from flashmotion.train.method import StepContext, TrainBatch
from flashmotion.train.precision import frozen_dtype
from flashmotion.train.registry import Stage, register, role_kwargs


@dataclass
class DMDConfig:
    """guidance: real-score CFG weight w (standard form; 1 = no CFG); fake_score_updates: fake-score updates per
    generator update; timesteps: the few-step list before the shift warp; shift: the flow shift of the sampler
    and of the score timesteps; score_sigma_range: clamp of the score sigmas; fake_score_lr: the fake score's
    learning rate (null: the config's `lr`, as the generator)."""

    guidance: float = 5.0
    fake_score_updates: int = 5
    timesteps: list[float] = field(default_factory=lambda: [1000.0, 750.0, 500.0, 250.0])
    shift: float = 5.0
    score_sigma_range: list[float] = field(default_factory=lambda: [0.02, 0.98])
    fake_score_lr: float | None = None

    def __post_init__(self) -> None:
        lo, hi = self.score_sigma_range
        if not 0 <= lo < hi <= 1:
            raise ModelConfigError(f"score_sigma_range must be 0 <= lo < hi <= 1, got {self.score_sigma_range}")
        if not self.timesteps or any(not 0 < t <= NUM_TRAIN_TIMESTEPS for t in self.timesteps):
            raise ModelConfigError(f"timesteps must be in (0, 1000], got {self.timesteps}")
        if self.fake_score_updates < 1:
            raise ModelConfigError(f"fake_score_updates must be >= 1, got {self.fake_score_updates}")


def sampler_sigmas(timesteps: Sequence[float], shift: float) -> list[float]:
    """The few-step sampler's sigmas: timesteps / 1000 warped by the shift (as sample_few_step)."""
    return [float(shift_sigma(t / NUM_TRAIN_TIMESTEPS, shift)) for t in timesteps]


def sample_score_sigmas(
    batch: int, shift: float, sigma_range: Sequence[float], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(B,) sigmas shift(u), u ~ U(0, 1), clamped to `sigma_range` (Self-Forcing's timestep_shift + clamp)."""
    u = torch.rand(batch, generator=generator)
    return shift_sigma(u, shift).clamp(*sigma_range).to(device)


def backward_simulate(
    generator: RoleModel,
    noise: torch.Tensor,
    cond: Conditioning,
    sigmas: Sequence[float],
    exit_step: int,
    rng: torch.Generator,
) -> torch.Tensor:
    """x0 of few-step sampling at step `exit_step` (0-based), with a graph only through that step's forward.

    With exit_step = len(sigmas) - 1 (and the same rng) this is flashmotion.sampling.sample_few_step's output."""
    if not 0 <= exit_step < len(sigmas):
        raise ModelConfigError(f"exit step {exit_step} is outside the {len(sigmas)}-step schedule")
    x = noise
    for i in range(exit_step):
        with torch.no_grad():
            x0 = generator.predict_x0(x, sigmas[i] * NUM_TRAIN_TIMESTEPS, cond)
        x = add_noise(x0, randn(x0.shape, rng, x0.device), sigmas[i + 1])
    return generator.predict_x0(x, sigmas[exit_step] * NUM_TRAIN_TIMESTEPS, cond)


def flow_matching_loss(role: RoleModel, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """mean over latent frames 1.. of (v(x_sigma) - (eps - x0))^2, x_sigma = (1 - sigma) x0 + sigma eps."""
    velocity = role.predict_velocity(add_noise(x0, noise, sigma), sigma * NUM_TRAIN_TIMESTEPS, cond)
    return F.mse_loss(velocity[:, :, 1:], (noise - x0)[:, :, 1:].float())


class DMDMethod(UpdateCounts):
    """Stage 2 (see the module docstring). Optimizers: 'generator' and 'fake_score'."""

    name = "stage2_dmd"

    def __init__(
        self,
        config: DMDConfig,
        encoders: Encoders,
        generator: RoleModel,
        real_score: RoleModel,
        fake_score: RoleModel,
        export_components: Sequence[str] = ("transformer", "vae", "text_encoder", "tokenizer"),
    ) -> None:
        self.config = config
        self.encoders = encoders
        self.generator = generator
        self.real_score = real_score.requires_grad_(False).eval()
        self.fake_score = fake_score
        self.export_components = tuple(export_components)
        self.sigmas = sampler_sigmas(config.timesteps, config.shift)
        self.ratio = UpdateRatio({"generator": 1, "fake_score": config.fake_score_updates})
        self.updates = {"generator": 0, "fake_score": 0}
        self.optimizer_overrides = {"fake_score": {"lr": config.fake_score_lr}} if config.fake_score_lr is not None else {}

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "fake_score": self.fake_score}

    def roles(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "real_score": self.real_score, "fake_score": self.fake_score}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: [p for p in module.parameters() if p.requires_grad] for name, module in self.modules().items()}

    def _score_sigmas(self, batch: int, ctx: StepContext) -> torch.Tensor:
        return sample_score_sigmas(batch, self.config.shift, self.config.score_sigma_range, ctx.generator, ctx.device)

    def generator_loss(self, x_gen: torch.Tensor, cond: Conditioning, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """The DMD loss of generator samples `x_gen` (with their graph) at a fresh score sigma."""
        sigma = self._score_sigmas(x_gen.shape[0], ctx)
        x_t = add_noise(x_gen.detach(), randn(x_gen.shape, ctx.generator, x_gen.device), sigma)
        t = sigma * NUM_TRAIN_TIMESTEPS
        with torch.no_grad():
            x0_fake = self.fake_score.predict_x0(x_t, t, cond)
            x0_real = self.real_score.predict_x0(x_t, t, cond, guidance=self.config.guidance)
        loss, grad = dmd_loss(x_gen[:, :, 1:], x0_fake[:, :, 1:], x0_real[:, :, 1:])
        return loss, {"loss/dmd": loss.item(), "dmd/grad_abs_mean": grad.abs().mean().item(), "dmd/score_sigma": sigma.mean().item()}

    def train_step(self, batch: TrainBatch, ctx: StepContext) -> dict[str, float]:
        cond = dataclasses.replace(batch.cond, trajectory_latent=None)  # the backbone alone is distilled
        if self.config.guidance != 1.0 and cond.negative_embeds is None:
            raise ModelConfigError("stage2_dmd with guidance != 1 needs negative prompt embeddings; set negative_prompt")
        shape = batch.latents.shape
        train_generator = self.ratio.updates("generator", ctx.step)
        exit_step = ctx.broadcast_int(int(torch.randint(len(self.sigmas), (1,), generator=ctx.generator)))
        noise = randn(shape, ctx.generator, ctx.device)
        logs: dict[str, float] = {"dmd/exit_step": float(exit_step)}
        with torch.set_grad_enabled(train_generator):
            x_gen = backward_simulate(self.generator, noise, cond, self.sigmas, exit_step, ctx.generator)
        if train_generator:
            loss, extra = self.generator_loss(x_gen, cond, ctx)
            logs.update(extra)
            logs.update(ctx.optimize("generator", loss))
            self.updates["generator"] += 1
        x_gen = x_gen.detach()
        sigma = self._score_sigmas(shape[0], ctx)
        fake_loss = flow_matching_loss(self.fake_score, x_gen, sigma, randn(shape, ctx.generator, ctx.device), cond)
        logs.update(ctx.optimize("fake_score", fake_loss))
        self.updates["fake_score"] += 1
        logs["loss/fake_score"] = fake_loss.item()
        logs.update({f"updates/{name}": float(n) for name, n in self.updates.items()})
        return logs

    def export(self, out_dir: Path) -> None:
        """The FastGenerator as a FlashMotion checkpoint (with a zero-initialised adapter: the plain transformer)."""
        export_checkpoint(out_dir, self.generator, self.encoders, self.export_components, metadata={"stage": self.name})


def export_components(train) -> tuple[str, ...]:
    """Backbone parts an export writes: all of them for a random-init preset (tiny), only the transformer when
    `model_path` (Wan2.2-TI2V-5B) provides the encoders."""
    return tuple(SUBFOLDERS) if train.model_path is None else ("transformer",)


def build(train, config: DMDConfig, encoders: Encoders, device: torch.device) -> DMDMethod:
    """Roles from `init.teacher` (or `model_path`): the frozen real score, and float32 trainable copies of it as
    the generator and the fake score."""
    kwargs = {"checkpoint": train.init.get("teacher"), **role_kwargs(train, device)}
    teacher = build_role(trainable=(), dtype=frozen_dtype(train, device), **kwargs)
    trainable = build_role(trainable=("transformer",), **kwargs)
    return DMDMethod(
        config,
        encoders,
        generator=trainable,
        real_score=teacher,
        fake_score=clone_role(trainable),
        export_components=export_components(train),
    )


register(Stage("stage2_dmd", DMDConfig, build, inputs="latents"))
