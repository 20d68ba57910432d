"""Diffusion discriminator: frozen backbone copy + trainable query classifier."""

from __future__ import annotations

import pytest
import torch

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import WanBackbone
from flashmotion.models.discriminator import TrajectoryDiscriminator


@pytest.fixture(scope="module")
def backbone() -> WanBackbone:
    return WanBackbone.build("tiny", seed=0)


def _batch(backbone: WanBackbone):
    gen = torch.Generator().manual_seed(3)
    shape = backbone.latent_shape(9, 32, 32)
    return (
        torch.randn(2, *shape, generator=gen),
        torch.tensor([800.0, 300.0]),
        backbone.encode_prompt(["a ball", "a dog"]),
        torch.randn(2, *shape, generator=gen),
    )


def test_only_the_classifier_trains(backbone):
    disc = TrajectoryDiscriminator(backbone.transformer, feature_blocks=[0, 1]).train()
    latents, timestep, text, trajectory = _batch(backbone)
    latents.requires_grad_(True)
    logits = disc(latents, timestep, text, trajectory)
    assert logits.shape == (2,)
    torch.nn.functional.softplus(-logits).mean().backward()
    assert all(p.grad is None and not p.requires_grad for p in disc.backbone.parameters())
    assert all(p.grad is None for p in backbone.transformer.parameters())
    classifier = list(disc.classifier.parameters())
    assert classifier and all(p.grad is not None for p in classifier)
    assert disc.classifier.query.grad.abs().sum() > 0
    # The generator's adversarial loss needs gradients through the frozen features to the video latents.
    assert latents.grad is not None and latents.grad.abs().sum() > 0
    assert not disc.backbone.training  # the frozen copy stays in eval mode when the discriminator trains


@torch.no_grad()
def test_logits_depend_on_video_trajectory_and_text(backbone):
    disc = TrajectoryDiscriminator(backbone.transformer).eval()
    latents, timestep, text, trajectory = _batch(backbone)
    base = disc(latents, timestep, text, trajectory)
    assert not torch.allclose(disc(latents + 1.0, timestep, text, trajectory), base)
    assert not torch.allclose(disc(latents, timestep, text, trajectory.flip(0)), base)
    assert not torch.allclose(disc(latents, timestep, text.flip(0), trajectory), base)


def test_backbone_is_the_teacher_transformer_by_reference(backbone):
    """No fourth copy of the backbone: the discriminator reads the teacher's transformer, and its state dict,
    parameters and train() cover the query classifier only."""
    disc = TrajectoryDiscriminator(backbone.transformer)
    assert disc.feature_blocks == [0, 1]  # default: thirds and the last block of a 2-block model
    assert disc.backbone is backbone.transformer
    assert not any(p.requires_grad for p in backbone.transformer.parameters())  # frozen in place: it is the teacher
    assert all(key.startswith("classifier.") for key in disc.state_dict())
    assert sum(p.numel() for p in disc.parameters()) == sum(p.numel() for p in disc.classifier.parameters())
    latents, timestep, text, trajectory = _batch(backbone)
    with torch.no_grad():
        before = disc(latents, timestep, text, trajectory)
        backbone.transformer.blocks[0].ffn.net[2].weight.mul_(1.5)  # the teacher changes: so do the logits
        try:
            assert not torch.allclose(disc(latents, timestep, text, trajectory), before)
        finally:
            backbone.transformer.blocks[0].ffn.net[2].weight.div_(1.5)
    with pytest.raises(ModelConfigError, match="feature_blocks"):
        TrajectoryDiscriminator(backbone.transformer, feature_blocks=[2])
