"""Roles (flashmotion.models.build): per-sample timesteps, batched CFG, x0 parametrisation, trainable parts."""

from __future__ import annotations

import pytest
import torch

from flashmotion.errors import ModelConfigError
from flashmotion.models.backbone import WanBackbone
from flashmotion.models.build import Conditioning, build_encoders, build_role, clone_role, export_checkpoint


@pytest.fixture(scope="module")
def encoders():
    return build_encoders("tiny", seed=0)


@pytest.fixture(scope="module")
def role():
    role = build_role("tiny", adapter="resnet", adapter_options={"channels": 8}, trainable=("adapter",), seed=0)
    torch.manual_seed(0)
    for proj in role.adapter.out_proj:  # a non-trivial adapter, so the trajectory branch matters
        torch.nn.init.normal_(proj.weight, std=0.05)
    return role


def _inputs(encoders, batch=2):
    gen = torch.Generator().manual_seed(4)
    shape = encoders.latent_shape(9, 32, 32)
    first = torch.rand(batch, 3, 32, 32, generator=gen) * 2 - 1
    trajectory = torch.rand(batch, 3, 9, 32, 32, generator=gen) * 2 - 1
    cond = encoders.conditioning(first, ["a red ball", "two dogs"][:batch], trajectory, negative_prompt="")
    return torch.randn(batch, *shape, generator=gen), cond


def test_tiny_encoders_and_role_match_the_backbone_of_the_same_seed(encoders, role):
    backbone = WanBackbone.build("tiny", seed=0)
    for a, b in zip(role.transformer.parameters(), backbone.transformer.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(encoders.vae.parameters(), backbone.vae.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not any(p.requires_grad for p in encoders.parameters())
    assert not any(p.requires_grad for p in role.transformer.parameters())
    assert all(p.requires_grad for p in role.adapter.parameters())


@torch.no_grad()
def test_per_sample_timesteps_equal_single_calls(encoders, role):
    x_t, cond = _inputs(encoders)
    t = torch.tensor([900.0, 250.0])
    batched = role.predict_velocity(x_t, t, cond)
    for i in range(2):
        single = role.predict_velocity(x_t[i : i + 1], t[i : i + 1], cond.select(i))
        torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched[0], role.predict_velocity(x_t, torch.tensor([250.0, 250.0]), cond)[0])


@torch.no_grad()
def test_batched_cfg_equals_the_two_call_formula(encoders, role):
    x_t, cond = _inputs(encoders)
    t = torch.tensor([700.0, 400.0])
    guided = role.predict_velocity(x_t, t, cond, guidance=4.0)
    v_cond = role.predict_velocity(x_t, t, cond)
    v_uncond = role.predict_velocity(x_t, t, Conditioning(cond.image_latent, cond.negative_embeds, None, cond.trajectory_latent))
    torch.testing.assert_close(guided, v_uncond + 4.0 * (v_cond - v_uncond), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(guided, v_cond)
    with pytest.raises(ModelConfigError, match="negative_embeds"):
        role.predict_velocity(x_t, t, Conditioning(cond.image_latent, cond.text_embeds), guidance=2.0)


@torch.no_grad()
def test_predict_x0_is_x_t_minus_sigma_v_with_the_image_frame(encoders, role):
    x_t, cond = _inputs(encoders)
    t = torch.tensor([600.0, 100.0])
    v = role.predict_velocity(x_t, t, cond)
    x0 = role.predict_x0(x_t, t, cond)
    sigma = (t / 1000).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(x0[:, :, 1:], (x_t - sigma * v)[:, :, 1:])
    torch.testing.assert_close(x0[:, :, :1], cond.image_latent)


def test_gradients_reach_only_the_trainable_parts_and_clones_are_independent(encoders, role):
    x_t, cond = _inputs(encoders)
    role.predict_velocity(x_t, torch.tensor([500.0, 500.0]), cond).pow(2).mean().backward()
    assert all(p.grad is None for p in role.transformer.parameters())
    assert all(p.grad is not None for p in role.adapter.parameters())
    role.zero_grad(set_to_none=True)
    fake = clone_role(role, trainable=("transformer",))
    assert all(p.requires_grad for p in fake.transformer.parameters())
    assert not any(p.requires_grad for p in role.transformer.parameters())
    with torch.no_grad():
        fake.transformer.proj_out.bias.add_(1.0)
    assert not torch.equal(fake.transformer.proj_out.bias, role.transformer.proj_out.bias)
    with pytest.raises(ModelConfigError, match="trainable"):
        build_role("tiny", trainable=("vae",))
    with pytest.raises(ModelConfigError, match="trajectory_latent"):
        role.predict_velocity(x_t, 500.0, Conditioning(cond.image_latent, cond.text_embeds))


def test_exported_checkpoint_rebuilds_the_same_role(encoders, role, tmp_path):
    directory = export_checkpoint(tmp_path / "ckpt", role, encoders, metadata={"stage": "test"})
    again = build_role("tiny", checkpoint=directory, adapter_checkpoint=directory, trainable=())
    enc_again = build_encoders("tiny", checkpoint=directory, seed=123)  # the saved VAE wins over the seed
    x_t, cond = _inputs(encoders)
    with torch.no_grad():
        torch.testing.assert_close(again.predict_velocity(x_t, 300.0, cond), role.predict_velocity(x_t, 300.0, cond), rtol=0, atol=0)
    for a, b in zip(enc_again.vae.parameters(), encoders.vae.parameters(), strict=True):
        assert torch.equal(a, b)


def test_partial_checkpoint_needs_model_path_instead_of_a_random_init(encoders, role, tmp_path):
    from flashmotion.errors import CheckpointError

    directory = export_checkpoint(tmp_path / "partial", role, encoders, components=("transformer",))
    assert build_role("tiny", checkpoint=directory, trainable=()).transformer is not None
    with pytest.raises(CheckpointError, match="model_path"):
        build_encoders("tiny", checkpoint=directory)
    with pytest.raises(CheckpointError, match="for preset"):
        build_role("wan2.2-ti2v-5b", checkpoint=directory)
