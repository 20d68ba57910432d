"""Wan2.2 TI2V backbone: block-level forward == diffusers forward, presets, sizes, pretrained-folder loading."""

from __future__ import annotations

import pytest
import torch

from flashbench.errors import WeightsError
from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import (
    WanBackbone,
    build_on_meta,
    dit_forward,
    embed,
    frames_to_tensor,
    iter_blocks,
    num_params,
    token_timesteps,
)
from flashmotion.models.presets import WAN22_TI2V_5B


@pytest.fixture(scope="module")
def backbone() -> WanBackbone:
    return WanBackbone.build("tiny", seed=0)


def _inputs(backbone: WanBackbone, batch: int = 2):
    gen = torch.Generator().manual_seed(1)
    shape = backbone.latent_shape(9, 32, 32)
    latents = torch.randn(batch, *shape, generator=gen)
    text = backbone.encode_prompt(["a red ball rolls", "two cats"][:batch])
    return latents, text


@torch.no_grad()
def test_dit_forward_equals_diffusers_forward(backbone):
    """Guards the re-implemented block loop against diffusers upgrades: per-token (TI2V) and per-sample timesteps."""
    latents, text = _inputs(backbone)
    grid = backbone.token_grid(latents.shape)
    per_token = token_timesteps(torch.tensor([700.0, 120.0]), grid)
    for timestep in (per_token, torch.tensor([700.0, 120.0])):
        reference = backbone.transformer(latents, timestep, text).sample
        assert torch.equal(dit_forward(backbone.transformer, latents, timestep, text), reference)


def test_dit_forward_equals_diffusers_forward_with_gradient_checkpointing(backbone):
    latents, text = _inputs(backbone, batch=1)
    timestep = token_timesteps(torch.tensor([500.0]), backbone.token_grid(latents.shape))
    backbone.transformer.enable_gradient_checkpointing()
    try:
        ours = dit_forward(backbone.transformer, latents, timestep, text)
        reference = backbone.transformer(latents, timestep, text).sample
    finally:
        backbone.transformer.disable_gradient_checkpointing()
    assert torch.equal(ours, reference)


@torch.no_grad()
def test_iter_blocks_stops_early_and_yields_block_outputs(backbone):
    latents, text = _inputs(backbone, batch=1)
    inputs = embed(backbone.transformer, latents, torch.tensor([300.0]), text)
    first = list(iter_blocks(backbone.transformer, inputs, num_blocks=1))
    manual = backbone.transformer.blocks[0](inputs.tokens, inputs.context, inputs.timestep_proj, inputs.rotary)
    assert len(first) == 1 and torch.equal(first[0], manual)


def test_token_timesteps_zero_on_first_latent_frame():
    ts = token_timesteps(torch.tensor([400.0, 10.0]), (3, 2, 2))
    assert ts.shape == (2, 12)
    assert torch.all(ts[:, :4] == 0)
    assert torch.all(ts[0, 4:] == 400) and torch.all(ts[1, 4:] == 10)


def test_tiny_geometry_and_size_errors(backbone):
    assert backbone.vae_stride == (4, 8)
    assert backbone.size_multiple == 16
    assert backbone.latent_shape(9, 32, 48) == (48, 3, 4, 6)
    video = frames_to_tensor(torch.randint(0, 256, (9, 32, 48, 3), dtype=torch.uint8).numpy())
    assert backbone.encode_video(video).shape == (1, 48, 3, 4, 6)
    assert backbone.decode_latents(torch.zeros(1, 48, 3, 4, 6)).shape == (1, 3, 9, 32, 48)
    with pytest.raises(ModelConfigError, match="4k\\+1"):
        backbone.latent_shape(8, 32, 32)
    with pytest.raises(ModelConfigError, match="multiples of 16"):
        backbone.latent_shape(9, 40, 32)


def test_encode_prompt_zeroes_padding(backbone):
    embeds = backbone.encode_prompt(["ab", "a much longer prompt"])
    assert embeds.shape == (2, backbone.max_sequence_length, backbone.transformer.config.text_dim)
    # ByT5: one token per byte + </s>: "ab" -> 3 tokens, the rest is padding and must be exactly zero.
    assert torch.all(embeds[0, 3:] == 0) and torch.all(embeds[0, :3].abs().sum(-1) > 0)
    assert torch.all(embeds[1].abs().sum(-1) > 0)  # 20 bytes, truncated to 16 tokens: no padding


def test_wan22_5b_parameter_counts_on_meta():
    transformer, vae = build_on_meta("wan2.2-ti2v-5b")
    assert next(transformer.parameters()).device.type == "meta"
    cfg = WAN22_TI2V_5B.transformer
    d, f, layers = cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["ffn_dim"], cfg["num_layers"]
    assert (d, layers, cfg["in_channels"]) == (3072, 30, 48)
    patch = 1 * 2 * 2
    linear = lambda i, o: i * o + o  # noqa: E731
    block = (
        2 * 4 * linear(d, d)  # self- and cross-attention q, k, v, out
        + 2 * 2 * d  # RMS q/k norms of both attentions
        + 2 * d  # cross-attention LayerNorm (cross_attn_norm=True)
        + linear(d, f) + linear(f, d)  # GELU FFN
        + 6 * d  # adaLN modulation table
    )
    embeddings = (
        linear(48 * patch, d)  # patch embedding Conv3d(48, 3072, (1, 2, 2))
        + linear(cfg["freq_dim"], d) + linear(d, d)  # time embedder MLP
        + linear(d, 6 * d)  # time projection to the 6 modulations
        + linear(cfg["text_dim"], d) + linear(d, d)  # text projection MLP (UMT5-XXL 4096 -> 3072)
    )
    head = linear(d, 48 * patch) + 2 * d
    expected = embeddings + layers * block + head
    assert num_params(transformer) == expected == 4_999_787_712  # the published "5B"
    # Wan2.2 VAE (encoder base 160, decoder base 256, z 48, residual, 2x2 patchify): the 704.7M parameters of the
    # published 2.8 GB fp32 Wan2.2_VAE.pth (4 bytes each), pinned here.
    assert num_params(vae) == 704_688_668
    assert vae.config.z_dim == 48 and vae.config.patch_size == 2
    assert 2 ** sum(vae.config.temperal_downsample) == 4 and 2 * 2 ** (len(vae.config.dim_mult) - 1) == 16


def test_pretrained_folder_loads_through_the_5b_code_path(backbone, tmp_path):
    backbone.save_pretrained(tmp_path / "wan")
    loaded = WanBackbone.build("tiny", tmp_path / "wan")  # the same from_pretrained(subfolder=...) as the 5B preset
    latents, text = _inputs(backbone, batch=1)
    assert torch.equal(loaded.encode_prompt(["a red ball rolls"]), text)
    timestep = torch.tensor([250.0])
    with torch.no_grad():
        assert torch.equal(
            dit_forward(loaded.transformer, latents, timestep, text), dit_forward(backbone.transformer, latents, timestep, text)
        )
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    assert torch.equal(loaded.encode_video(video), backbone.encode_video(video))


def test_missing_pretrained_folder_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="Wan2.2-TI2V-5B-Diffusers"):
        WanBackbone.build("wan2.2-ti2v-5b", tmp_path)
    with pytest.raises(WeightsError, match="model_path"):
        WanBackbone.build("wan2.2-ti2v-5b")
    with pytest.raises(ModelConfigError, match="unknown backbone preset"):
        WanBackbone.build("wan3")


def test_tiny_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = (WanBackbone.build("tiny", seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.rand(1), expected)
    assert torch.equal(a.transformer.proj_out.weight, b.transformer.proj_out.weight)
    assert not torch.equal(a.transformer.proj_out.weight, c.transformer.proj_out.weight)
