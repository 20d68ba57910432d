"""Gradient checkpointing covers every block a gradient passes through, frozen ones included, and changes nothing
but memory (tiny preset): the stage-1 role (frozen transformer + trained adapter, both adapter kinds) and stage 3
(frozen FastGenerator + adapter, frozen discriminator backbone) give the same adapter gradients with and without
it, torch.utils.checkpoint recomputes each of those blocks, and far fewer activations are kept for the backward."""

from __future__ import annotations

import copy

import methods_harness
import pytest
import torch
import torch.utils.checkpoint

from flashmotion.errors import ModelConfigError
from flashmotion.models.build import build_role, enable_gradient_checkpointing
from flashmotion.models.discriminator import TrajectoryDiscriminator
from flashmotion.train.config import load_config, method_config
from flashmotion.train.loop import checkpoint_roles
from flashmotion.train.registry import get_stage
from flashmotion.train.stage3_hybrid import HybridConfig, HybridMethod

encoders = methods_harness.encoders
batch = methods_harness.batch


@pytest.fixture()
def recomputed(monkeypatch) -> list[torch.nn.Module]:
    """Modules torch.utils.checkpoint.checkpoint runs (diffusers' checkpoint function looks it up at each call)."""
    calls: list[torch.nn.Module] = []
    original = torch.utils.checkpoint.checkpoint

    def spy(function, *args, **kwargs):
        calls.append(function.__self__)
        return original(function, *args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    return calls


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """`module` with its (zero-initialised) outputs made non-zero, so gradients reach every adapter parameter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return module


def _saved_bytes_and_grads(role, batch, params) -> tuple[int, list[torch.Tensor]]:
    """Bytes of the non-parameter tensors autograd keeps for the backward of one velocity loss, and the gradients."""
    weights = {p.untyped_storage().data_ptr() for p in role.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    gen = torch.Generator().manual_seed(3)
    x_t = torch.randn(batch.latents.shape, generator=gen)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = role.predict_velocity(x_t, torch.tensor([700.0, 300.0]), batch.cond).pow(2).mean()
    grads = torch.autograd.grad(loss, params)
    return sum(saved.values()), grads


@pytest.mark.parametrize(("kind", "options"), [("resnet", {"channels": 8}), ("controlnet", {})])
def test_stage1_role_checkpoints_the_frozen_transformer_and_the_adapter(encoders, batch, recomputed, kind, options):
    role = build_role("tiny", adapter=kind, adapter_options=options, trainable=("adapter",), seed=0)
    _perturbed(role.adapter, 1)
    plain = copy.deepcopy(role)
    models = enable_gradient_checkpointing([role])
    assert {type(m).__name__ for m in models} == {"WanTransformer3DModel", type(role.adapter).__name__}
    bytes_plain, grads_plain = _saved_bytes_and_grads(plain, batch, list(plain.adapter.parameters()))
    assert not recomputed
    bytes_ckpt, grads_ckpt = _saved_bytes_and_grads(role, batch, list(role.adapter.parameters()))
    for a, b in zip(grads_plain, grads_ckpt, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    names = [name for name, _ in role.adapter.named_parameters()]
    assert any(g.abs().sum() > 0 for name, g in zip(names, grads_ckpt, strict=True) if name.startswith("blocks."))
    ids = {id(m) for m in recomputed}
    assert all(id(b) in ids for b in [*role.transformer.blocks, *role.adapter.blocks])
    assert bytes_ckpt < 0.5 * bytes_plain, (bytes_ckpt, bytes_plain)


def test_stage3_checkpoints_the_frozen_generator_and_discriminator_backbone(encoders, batch, recomputed):
    """`HybridMethod.roles()` names the FastGenerator and the discriminator's backbone, so checkpointing reaches
    both; the adapter's hybrid loss (diffusion + GAN through the discriminator) has the same gradients."""

    def method() -> HybridMethod:
        torch.manual_seed(0)  # the adapter's and the head's initialisations draw from the global RNG
        teacher = build_role("tiny", trainable=(), seed=0)
        generator = build_role("tiny", adapter="resnet", adapter_options={"channels": 8}, trainable=("adapter",), seed=1)
        _perturbed(generator.adapter, 2)
        return HybridMethod(HybridConfig(), encoders, generator, TrajectoryDiscriminator(teacher.transformer))

    def adapter_grads(m: HybridMethod) -> list[torch.Tensor]:
        ctx = methods_harness.Optimizers(m.param_groups()).context(0)
        x_t, t = m.diffusion_inputs(batch.latents, ctx)
        x0_fake = m.generator.predict_x0(x_t, t, batch.cond)
        loss, _ = m.adapter_loss(x0_fake, batch.latents, batch.cond, 1.0, ctx)
        return list(torch.autograd.grad(loss, list(m.generator.adapter.parameters())))

    plain, ckpt = method(), method()
    enable_gradient_checkpointing(ckpt.roles().values())
    expected = adapter_grads(plain)
    assert not recomputed
    for a, b in zip(expected, adapter_grads(ckpt), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    d = ckpt.discriminator
    blocks = [*ckpt.generator.transformer.blocks, *ckpt.generator.adapter.blocks, *d.backbone.blocks[: d.feature_blocks[-1] + 1]]
    ids = {id(m) for m in recomputed}
    assert all(id(b) in ids for b in blocks)


def test_a_stage_without_checkpointable_models_is_a_one_line_error():
    config = load_config(base={"stage": "stage0_vae", "gradient_checkpointing": True})
    fresh = methods_harness.tiny_encoders()  # the stage trains (and rescales) its encoders' VAE
    method = get_stage("stage0_vae").factory(config, method_config(config), fresh, torch.device("cpu"))
    with pytest.raises(ModelConfigError, match=r"no model of stage stage0_vae supports it.*gradient_checkpointing: false"):
        checkpoint_roles(config, method)
