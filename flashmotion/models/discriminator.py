"""Trajectory-aware diffusion discriminator for FlashMotion stage 3.

The frozen teacher's backbone transformer (taken by reference, not copied: on the 5B preset a copy would be a
fourth 5B model in memory) reads the noised video (first latent frame clean, timestep 0 there, as
in generation); the hidden states after `feature_blocks` are the video features. A learnable query token then
goes through
  1. semantic self-attention over [query; first-frame image tokens; text tokens],
  2. trajectory cross-attention to the trajectory latent tokens (frozen patch embedding of the trajectory latent),
  3. video cross-attention to the block features of all frames,
and a linear head gives one real/fake logit per video. Only the classifier trains; the frozen backbone stays
differentiable with respect to its input, so the generator's adversarial loss can backpropagate through it.
The backbone is not a registered submodule: `state_dict()`, `parameters()`, `.to()` and `.train()` cover the
classifier only; the backbone belongs to (and is moved and checkpointed with) its owner, the teacher role.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import WanTransformer3DModel
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import embed, iter_blocks, token_timesteps


class AttentionLayer(nn.Module):
    """Pre-norm attention of `query` (B, 1, D) over `keys` (B, M, D), then an MLP; both residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(keys)
        query = query + self.attn(self.norm_q(query), kv, kv, need_weights=False)[0]
        return query + self.mlp(self.norm_mlp(query))


class QueryClassifier(nn.Module):
    """The trainable head: learnable query -> semantic, trajectory and video attention -> logit."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.semantic = AttentionLayer(dim, heads)
        self.trajectory = AttentionLayer(dim, heads)
        self.video = AttentionLayer(dim, heads)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def forward(
        self,
        image_tokens: torch.Tensor,
        text_tokens: torch.Tensor,
        trajectory_tokens: torch.Tensor,
        video_tokens: torch.Tensor,
    ) -> torch.Tensor:
        query = self.query.expand(video_tokens.shape[0], -1, -1).to(video_tokens.dtype)
        # Self-attention over [query; image; text]; only the query's output is used downstream, and for one layer
        # that output equals attending from the query alone to the whole sequence.
        query = self.semantic(query, torch.cat([query, image_tokens, text_tokens], dim=1))
        query = self.trajectory(query, trajectory_tokens)
        query = self.video(query, video_tokens)
        return self.head(query)[:, 0, 0]


class TrajectoryDiscriminator(nn.Module):
    """`D(latents, timestep, text_embeds, trajectory_latent) -> logits (B,)`.

    latents: (B, C, F, h, w) noised video latents whose first frame is the clean image latent; timestep: (B,)
    in [0, 1000]; text_embeds: (B, L, text_dim) UMT5 states; trajectory_latent: like `latents`."""

    def __init__(self, transformer: WanTransformer3DModel, feature_blocks: Sequence[int] | None = None, heads: int | None = None) -> None:
        super().__init__()
        num_layers = len(transformer.blocks)
        if feature_blocks is None:
            feature_blocks = sorted({num_layers // 3, 2 * num_layers // 3, num_layers - 1})
        feature_blocks = sorted(int(b) for b in feature_blocks)
        if not feature_blocks or feature_blocks[0] < 0 or feature_blocks[-1] >= num_layers:
            raise ModelConfigError(f"feature_blocks must be indices in [0, {num_layers}), got {feature_blocks}")
        cfg = transformer.config
        dim = cfg.num_attention_heads * cfg.attention_head_dim
        self.feature_blocks = feature_blocks
        self.config = {"feature_blocks": feature_blocks, "heads": int(heads or cfg.num_attention_heads)}
        # Stored outside nn.Module's registry (see the module docstring); frozen in place: it is the teacher.
        self.__dict__["backbone"] = transformer.requires_grad_(False).eval()
        self.classifier = QueryClassifier(dim, self.config["heads"]).to(transformer.device, transformer.dtype)

    def features(self, latents: torch.Tensor, timestep: torch.Tensor, text_embeds: torch.Tensor):
        """(block features list of (B, N, D), DiTInputs) of the frozen backbone, up to the deepest feature block."""
        p_t, p_h, p_w = self.backbone.config.patch_size
        grid = (latents.shape[2] // p_t, latents.shape[3] // p_h, latents.shape[4] // p_w)
        inputs = embed(self.backbone, latents, token_timesteps(timestep, grid), text_embeds)
        wanted = set(self.feature_blocks)
        features = [
            hidden
            for i, hidden in enumerate(iter_blocks(self.backbone, inputs, num_blocks=self.feature_blocks[-1] + 1))
            if i in wanted
        ]
        return features, inputs

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text_embeds: torch.Tensor,
        trajectory_latent: torch.Tensor,
    ) -> torch.Tensor:
        dtype = self.backbone.dtype
        latents, text_embeds = latents.to(dtype), text_embeds.to(dtype)
        features, inputs = self.features(latents, timestep, text_embeds)
        frame_tokens = inputs.grid[1] * inputs.grid[2]
        image_tokens = features[-1][:, :frame_tokens]
        trajectory_tokens = self.backbone.patch_embedding(trajectory_latent.to(dtype)).flatten(2).transpose(1, 2)
        return self.classifier(image_tokens, inputs.context, trajectory_tokens, torch.cat(features, dim=1))
