"""The TI2V velocity model the samplers call: backbone transformer + optional trajectory adapter.

Each call puts the clean image latent into the first latent frame, gives its tokens timestep 0 (Wan2.2 TI2V,
diffusers `expand_timesteps`), runs `dit_forward` with the adapter's residuals and counts one network evaluation.
With classifier-free guidance the trajectory adapter is applied to both branches; only the text differs.
"""

from __future__ import annotations

import torch
from diffusers import WanTransformer3DModel

from flashmotion.models.backbone import dit_forward, token_timesteps


def with_first_frame(latents: torch.Tensor, image_latent: torch.Tensor) -> torch.Tensor:
    """`latents` (B, C, F, h, w) with latent frame 0 replaced by `image_latent` (B, C, 1, h, w)."""
    return torch.cat([image_latent.to(latents.dtype).expand(latents.shape[0], -1, -1, -1, -1), latents[:, :, 1:]], dim=2)


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
        self.transformer = transformer
        self.dtype = transformer.dtype
        self.image_latent = image_latent
        self.text_embeds = text_embeds.to(self.dtype)
        self.negative_embeds = negative_embeds.to(self.dtype) if negative_embeds is not None else None
        self.adapter = adapter
        self.trajectory_latent = trajectory_latent.to(self.dtype) if trajectory_latent is not None else None
        self.nfe = 0

    def __call__(self, latents: torch.Tensor, timestep: float | torch.Tensor, negative: bool = False) -> torch.Tensor:
        if negative and self.negative_embeds is None:
            raise ValueError("classifier-free guidance needs negative_embeds")
        x = with_first_frame(latents, self.image_latent).to(self.dtype)
        p_t, p_h, p_w = self.transformer.config.patch_size
        grid = (x.shape[2] // p_t, x.shape[3] // p_h, x.shape[4] // p_w)
        t = torch.full((x.shape[0],), float(timestep), device=x.device)
        text = self.negative_embeds if negative else self.text_embeds
        velocity = dit_forward(
            self.transformer, x, token_timesteps(t, grid), text, self.adapter, self.trajectory_latent
        )
        self.nfe += 1
        return velocity.float()
