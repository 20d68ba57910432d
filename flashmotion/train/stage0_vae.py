"""Stage 0a (tiny preset): train the tiny AutoencoderKLWan on the benchmark's clips.

Loss (code: `VAETraining.train_step`): with the posterior N(mu, diag(sigma^2)) of the encoder and
z = mu + sigma eps (eps from the step generator), x_hat = decode(z):
    L = l1 * mean|x_hat - x| + l2 * mean (x_hat - x)^2 + kl * mean 0.5 (mu^2 + sigma^2 - 1 - log sigma^2)
(means over all elements; the KL is the per-element KL to N(0, 1), small weight so the latent stays close to a
unit Gaussian without blurring). The per-channel mean and std of mu are tracked as an exponential moving average
(decay `stats_decay` per step) and written into the VAE config as `latents_mean` / `latents_std` at export, the
normalisation Encoders.encode_video applies (Wan's convention), so the DiT sees roughly unit-variance latents.

`init_latent_scale` multiplies the posterior-mean half of `quant_conv` at step 0. At random init the tiny VAE's
latents have std ~0.15, so the decoder barely depends on them and learns the data's mean colour plus luminance
texture: a 1500-step run at lr 1e-3 without it decoded pure red (200, 50, 50) as gray (91, 90, 93). With latents of
std ~3 from the start (scale 10) and lr 3e-4 the colour is carried through the latent (measured on synthetic clips,
see docs/TRAINING.md).

Modules: `vae` (trains). Export: a FlashMotion checkpoint of all backbone components (the transformer is the
seeded random init of stage 0b's starting point); later stages read it as `init.encoders`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import SUBFOLDERS
from flashmotion.models.build import Encoders, build_role, export_checkpoint
from flashmotion.train.method import StepContext, TrainBatch
from flashmotion.train.registry import Stage, register, role_kwargs
from flashmotion.train.validation import psnr


@dataclass
class VAEConfig:
    l1: float = 1.0
    l2: float = 1.0
    kl: float = 1e-4
    stats_decay: float = 0.9
    init_latent_scale: float = 1.0

    def __post_init__(self) -> None:
        if min(self.l1, self.l2, self.kl) < 0 or self.l1 + self.l2 == 0:
            raise ModelConfigError("method.l1/l2/kl must be >= 0 with l1 + l2 > 0")
        if self.init_latent_scale <= 0:
            raise ModelConfigError(f"method.init_latent_scale must be > 0, got {self.init_latent_scale}")
        if not 0 <= self.stats_decay < 1:
            raise ModelConfigError(f"method.stats_decay must be in [0, 1), got {self.stats_decay}")


class VAETraining:
    name = "stage0_vae"

    def __init__(self, config: VAEConfig, encoders: Encoders, transformer_role) -> None:
        self.config = config
        self.encoders = encoders
        self.vae = encoders.vae.requires_grad_(True)
        with torch.no_grad():  # a resumed run loads its trained weights over this
            z_dim = self.vae.config.z_dim
            self.vae.quant_conv.weight[:z_dim] *= config.init_latent_scale
            self.vae.quant_conv.bias[:z_dim] *= config.init_latent_scale
        self.role = transformer_role
        self.stats: dict[str, list[float]] | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    def roles(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}  # the transformer role is only exported

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"vae": list(self.vae.parameters())}

    def train_step(self, batch: TrainBatch, ctx: StepContext) -> dict[str, float]:
        x = batch.video
        posterior = self.vae.encode(x).latent_dist
        mu, logvar = posterior.mean, posterior.logvar
        eps = torch.randn(mu.shape, generator=ctx.generator).to(mu.device, mu.dtype)
        recon = self.vae.decode(mu + posterior.std * eps).sample
        l1 = (recon - x).abs().mean()
        l2 = (recon - x).pow(2).mean()
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean()
        c = self.config
        loss = c.l1 * l1 + c.l2 * l2 + c.kl * kl
        self._track(mu.detach())
        logs = {"loss/total": float(loss.detach()), "loss/l1": float(l1.detach()), "loss/l2": float(l2.detach()), "loss/kl": float(kl.detach())}
        return {**logs, **ctx.optimize("vae", loss)}

    def validate(self, batch: TrainBatch, generator: torch.Generator) -> dict[str, float]:
        """val/psnr: the held-out clips through the posterior mean (flashmotion.train.validation)."""
        recon = self.vae.decode(self.vae.encode(batch.video).latent_dist.mean).sample
        return {"val/psnr": psnr(recon, batch.video)}

    def _track(self, mu: torch.Tensor) -> None:
        flat = mu.transpose(0, 1).reshape(mu.shape[1], -1).double()
        mean, std = flat.mean(1).tolist(), flat.std(1).clamp_min(1e-6).tolist()
        if self.stats is None:
            self.stats = {"mean": mean, "std": std}
            return
        d = self.config.stats_decay
        self.stats = {key: [d * a + (1 - d) * b for a, b in zip(self.stats[key], new, strict=True)]
                      for key, new in (("mean", mean), ("std", std))}

    def state_dict(self) -> dict:
        return {"stats": self.stats}

    def load_state_dict(self, state: dict) -> None:
        self.stats = state["stats"]

    def export(self, out_dir: Path) -> None:
        if self.stats is not None:
            self.vae.register_to_config(
                latents_mean=[round(v, 6) for v in self.stats["mean"]], latents_std=[round(v, 6) for v in self.stats["std"]]
            )
        export_checkpoint(out_dir, self.role, self.encoders, SUBFOLDERS, metadata={"stage": self.name})


def build(train, config: VAEConfig, encoders: Encoders, device: torch.device) -> VAETraining:
    if train.model_path is not None:
        raise ModelConfigError("stage0_vae trains the tiny VAE from scratch; real runs start from Wan2.2's VAE (drop model_path)")
    return VAETraining(config, encoders, build_role(**role_kwargs(train, device), trainable=()))


register(Stage("stage0_vae", VAEConfig, build, inputs="pixels"))
