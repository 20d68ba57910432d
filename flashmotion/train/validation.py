"""Held-out validation while a stage trains: each stage measures its own goal at intervals on a few clips of a
benchmark that no training uses (`data.val_bench`), logged into log.csv as `val/...` columns and drawn in the
run's loss.png.

Every `validate_every` steps (and after the last one) the loop calls `method.validate(batch, generator)` on the
same `validate_clips` deterministic clips (centred, frames 0..F-1), with the EMA weights, in eval mode and without
gradients, under the training step's autocast (frozen roles may be bf16), and with a generator seeded from `seed` alone, so a curve moves only with the weights and the run's
own random streams (and so its exact resume) are untouched. What the stages measure (`ValidatingMethod`):
- stage0_vae   val/psnr: reconstruction PSNR in dB of the posterior mean, pixels in [0, 255];
- stage0_dit   val/x0_err@S: mean squared x0 error of latent frames 1.. at noise level S (`VAL_SIGMAS`), and
               val/x0_err_static: the same error for the latent of the first frame repeated (the `static`
               reference through the VAE), the bar a generator that models motion must get under at high S;
- stage1_adapter  val/loss: the flow-matching loss at the fixed `VAL_SIGMAS` with each clip's own trajectory map,
               val/loss_swapped: the same with the maps rolled by one clip (another sample's trajectory); the
               adapter carries trajectory information when val/loss < val/loss_swapped.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import torch

from flashmotion.models.build import Conditioning, RoleModel
from flashmotion.sampling import NUM_TRAIN_TIMESTEPS, add_noise
from flashmotion.train.data import BatchEncoder, ClipDataset
from flashmotion.train.method import TrainBatch

VAL_SIGMAS = (0.5, 0.8, 0.97)


@runtime_checkable
class ValidatingMethod(Protocol):
    """A training method that measures its own goal on held-out clips (see the module docstring)."""

    def validate(self, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]: ...


def _noise_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator).to(x.device, x.dtype)


def x0_error(role: RoleModel, x0: torch.Tensor, cond: Conditioning, sigma: float, noise: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the role's x0 prediction on latent frames 1.. at noise level `sigma`, per latent
    frame (F - 1,)."""
    s = torch.full((x0.shape[0],), float(sigma), device=x0.device)
    x0_hat = role.predict_x0(add_noise(x0, noise, s), s * NUM_TRAIN_TIMESTEPS, cond)
    return (x0_hat - x0)[:, :, 1:].float().pow(2).mean(dim=(0, 1, 3, 4))


def static_error(x0: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """The x0 error of copying the clean image latent into every latent frame, per latent frame (F - 1,).

    Wan's causal VAE encodes a still video's frames 1.. to latents that differ from frame 0's, so this is a
    lower bound on what `static` through the VAE scores; cheap, and needs no decode."""
    return (cond.image_latent.to(x0.dtype) - x0[:, :, 1:]).float().pow(2).mean(dim=(0, 1, 3, 4))


def fixed_sigma_flow_loss(role: RoleModel, x0: torch.Tensor, cond: Conditioning, generator: torch.Generator) -> float:
    """The flow-matching loss (latent frames 1..) averaged over `VAL_SIGMAS`, with noise from `generator`."""
    total = 0.0
    for sigma in VAL_SIGMAS:
        noise = _noise_like(x0, generator)
        s = torch.full((x0.shape[0],), sigma, device=x0.device)
        velocity = role.predict_velocity(add_noise(x0, noise, s), s * NUM_TRAIN_TIMESTEPS, cond)
        total += float((velocity[:, :, 1:] - (noise - x0)[:, :, 1:]).float().pow(2).mean())
    return total / len(VAL_SIGMAS)


def x0_errors(role: RoleModel, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]:
    """stage0_dit's validation: val/x0_err@S per S in VAL_SIGMAS and val/x0_err_static."""
    logs = {}
    for sigma in VAL_SIGMAS:
        logs[f"val/x0_err@{sigma:g}"] = float(x0_error(role, batch.latents, batch.cond, sigma, _noise_like(batch.latents, generator)).mean())
    logs["val/x0_err_static"] = float(static_error(batch.latents, batch.cond).mean())
    return logs


def trajectory_losses(role: RoleModel, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]:
    """stage1's validation: val/loss with the clips' own trajectory maps, val/loss_swapped with the maps rolled by
    one clip (the same noise for both)."""
    state = generator.get_state()
    own = fixed_sigma_flow_loss(role, batch.latents, batch.cond, generator)
    generator.set_state(state)
    swapped = dataclasses.replace(batch.cond, trajectory_latent=batch.cond.trajectory_latent.roll(1, dims=0))
    other = fixed_sigma_flow_loss(role, batch.latents, swapped, generator)
    return {"val/loss": own, "val/loss_swapped": other}


def psnr(recon: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of videos in [-1, 1], measured on the [0, 255] scale after clamping."""
    a = (recon.float().clamp(-1, 1) + 1) * 127.5
    b = (target.float().clamp(-1, 1) + 1) * 127.5
    mse = float((a - b).pow(2).mean())
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(255.0**2 / mse)).item()


class ValidationSet:
    """The held-out clips of a run (`data.val_bench`, the first `validate_clips` samples, deterministic clips at
    `data.size`, or whole frames when the stage trains on native-scale crops) and the call of the method's
    `validate` on them."""

    def __init__(self, config, encoders, inputs: str, device: torch.device) -> None:
        data = dataclasses.replace(config.data, bench=config.data.val_bench, random_crop=False)
        self.dataset = ClipDataset(data, seed=config.seed)
        if config.data.native_crop:  # a stage trained on native-scale crops is validated on whole frames
            first = self.dataset.bench.samples[0]
            data = dataclasses.replace(data, size=[first.height, first.width], native_crop=False)
            self.dataset = ClipDataset(data, seed=config.seed)
        self.encoder = BatchEncoder(encoders, data, inputs, self.dataset.bench, device)
        self.clips = [self.dataset[(i, 0)] for i in range(min(config.validate_clips, len(self.dataset)))]
        self.seed = config.seed

    @torch.no_grad()
    def run(self, method: ValidatingMethod, kind: str) -> dict[str, float]:
        generator = torch.Generator().manual_seed(self.seed)
        return method.validate(self.encoder(self.clips, kind), generator)
