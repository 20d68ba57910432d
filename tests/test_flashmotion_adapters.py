"""Trajectory adapters: zero-initialised (exactly the plain backbone), wired per block, trainable alone."""

from __future__ import annotations

import pytest
import torch

from flashmotion.errors import ModelConfigError
from flashmotion.models.adapters import ControlNetAdapter, build_adapter
from flashmotion.models.backbone import WanBackbone, dit_forward, embed, token_timesteps

KINDS = [("resnet", {"channels": 8}), ("controlnet", {}), ("controlnet", {"num_blocks": 1})]


@pytest.fixture(scope="module")
def backbone() -> WanBackbone:
    return WanBackbone.build("tiny", seed=0)


def _batch(backbone: WanBackbone):
    gen = torch.Generator().manual_seed(2)
    shape = backbone.latent_shape(9, 32, 32)
    latents = torch.randn(2, *shape, generator=gen)
    trajectory = torch.randn(2, *shape, generator=gen)
    timestep = token_timesteps(torch.tensor([900.0, 400.0]), backbone.token_grid(latents.shape))
    return latents, trajectory, timestep, backbone.encode_prompt(["a ball", "two dogs"])


@pytest.mark.parametrize(("kind", "options"), KINDS)
@torch.no_grad()
def test_fresh_adapter_leaves_backbone_output_exactly_unchanged(backbone, kind, options):
    latents, trajectory, timestep, text = _batch(backbone)
    adapter = build_adapter(kind, backbone.transformer, **options)
    plain = backbone.transformer(latents, timestep, text).sample
    assert torch.equal(dit_forward(backbone.transformer, latents, timestep, text, adapter, trajectory), plain)
    # ... and the residuals are really added: a non-zero output projection changes the prediction.
    torch.nn.init.normal_(adapter.out_proj[-1].weight, std=0.1)
    assert not torch.allclose(dit_forward(backbone.transformer, latents, timestep, text, adapter, trajectory), plain)


@pytest.mark.parametrize(("kind", "options"), KINDS)
@torch.no_grad()
def test_one_residual_per_block_on_the_token_grid(backbone, kind, options):
    latents, trajectory, timestep, text = _batch(backbone)
    inputs = embed(backbone.transformer, latents, timestep, text)
    residuals = build_adapter(kind, backbone.transformer, **options)(trajectory, inputs)
    assert len(residuals) == len(backbone.transformer.blocks)
    assert all(r.shape == inputs.tokens.shape for r in residuals)


def test_controlnet_maps_copied_blocks_to_all_layers(backbone):
    adapter = ControlNetAdapter.for_transformer(backbone.transformer, num_blocks=1)
    assert [adapter.block_for_layer(i) for i in range(2)] == [0, 0]
    assert len(adapter.blocks) == 1 and len(adapter.out_proj) == 2
    with pytest.raises(ModelConfigError, match="num_blocks"):
        ControlNetAdapter.for_transformer(backbone.transformer, num_blocks=3)
    with pytest.raises(ModelConfigError, match="unknown adapter"):
        build_adapter("lora", backbone.transformer)


@pytest.mark.parametrize(("kind", "options"), KINDS[:2])
def test_stage1_gradients_reach_only_the_adapter(backbone, kind, options):
    """Stage 1: frozen backbone, diffusion loss on the adapter; the zero projections get the first gradients."""
    latents, trajectory, timestep, text = _batch(backbone)
    backbone.transformer.requires_grad_(False)
    adapter = build_adapter(kind, backbone.transformer, **options).train()
    target = torch.randn_like(latents)
    loss = (dit_forward(backbone.transformer, latents, timestep, text, adapter, trajectory) - target).pow(2).mean()
    loss.backward()
    assert all(p.grad is None for p in backbone.transformer.parameters())
    assert all(p.grad is not None for p in adapter.parameters())
    assert all(proj.weight.grad.abs().sum() > 0 for proj in adapter.out_proj)


@pytest.mark.parametrize(("kind", "options"), KINDS[:2])
def test_adapters_are_diffusers_models_that_round_trip_without_the_transformer(backbone, kind, options, tmp_path):
    """save_pretrained / from_pretrained (ModelMixin + ConfigMixin): the config alone rebuilds the adapter."""
    latents, trajectory, timestep, text = _batch(backbone)
    adapter = build_adapter(kind, backbone.transformer, **options)
    torch.manual_seed(1)
    for proj in adapter.out_proj:
        torch.nn.init.normal_(proj.weight, std=0.05)
    assert adapter.options == (options or {"num_blocks": 2})
    adapter.save_pretrained(tmp_path / kind)
    loaded = type(adapter).from_pretrained(tmp_path / kind)
    assert {k: v for k, v in loaded.config.items() if k != "_name_or_path"} == dict(adapter.config)
    with torch.no_grad():
        ours = dit_forward(backbone.transformer, latents, timestep, text, adapter, trajectory)
        theirs = dit_forward(backbone.transformer, latents, timestep, text, loaded, trajectory)
    assert torch.equal(ours, theirs)
    if kind == "controlnet":  # the copied blocks are independent of the transformer's
        assert adapter.blocks[0].ffn.net[2].weight.data_ptr() != backbone.transformer.blocks[0].ffn.net[2].weight.data_ptr()
        assert torch.equal(adapter.blocks[0].ffn.net[2].weight, backbone.transformer.blocks[0].ffn.net[2].weight)
