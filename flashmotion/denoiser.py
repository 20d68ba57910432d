"""The TI2V velocity model the samplers call: a `RoleModel` (backbone transformer + optional trajectory adapter)
bound to one request's conditioning.

Each call is `RoleModel.predict_velocity` (the clean image latent in latent frame 0 with timestep 0 there, Wan2.2
TI2V) and counts one network evaluation. With classifier-free guidance the sampler asks for the negative branch
separately; the trajectory adapter is applied to both branches, only the text differs.
"""

from __future__ import annotations

import dataclasses

import torch
from diffusers import WanTransformer3DModel

from flashmotion.models.build import Conditioning, RoleModel, with_first_frame

__all__ = ["TI2VDenoiser", "with_first_frame"]


class TI2VDenoiser:
    """`(latents, timestep, negative=False) -> velocity` (float32) for the samplers in flashmotion.sampling."""

    def __init__(
        self,
        transformer: WanTransformer3DModel,
        image_latent: torch.Tensor,
        text_embeds: torch.Tensor,
        negative_embeds: torch.Tensor | None = None,
        adapter: torch.nn.Module | None = None,
        trajectory_latent: torch.Tensor | None = None,
    ) -> None:
        self.role = RoleModel(transformer, adapter)
        self.cond = Conditioning(image_latent, text_embeds, negative_embeds, trajectory_latent)
        self.nfe = 0

    def __call__(self, latents: torch.Tensor, timestep: float | torch.Tensor, negative: bool = False) -> torch.Tensor:
        if negative and self.cond.negative_embeds is None:
            raise ValueError("classifier-free guidance needs negative_embeds")
        cond = dataclasses.replace(self.cond, text_embeds=self.cond.negative_embeds) if negative else self.cond
        velocity = self.role.predict_velocity(latents, float(timestep), cond)
        self.nfe += 1
        return velocity
