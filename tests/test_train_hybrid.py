"""Stage 3 (hybrid GAN + diffusion adapter fine-tuning) on the tiny preset: lambda and update-ratio logs, the
quantities that must go down, gradient isolation, ablation switches and the exported generator."""

from __future__ import annotations

import dataclasses

import methods_harness
import pytest
import torch
from methods_harness import Optimizers, generation_request

from flashbench.generators.base import check_output
from flashmotion.errors import ModelConfigError
from flashmotion.generator import FlashMotion
from flashmotion.models.build import build_role
from flashmotion.models.discriminator import TrajectoryDiscriminator
from flashmotion.train.losses import LambdaSchedule
from flashmotion.train.stage3_hybrid import HybridConfig, HybridMethod

encoders = methods_harness.encoders  # module-scoped fixtures shared with the other method tests
batch = methods_harness.batch


def _method(encoders, config: HybridConfig | None = None) -> HybridMethod:
    config = config or HybridConfig()
    teacher = build_role("tiny", trainable=(), seed=0)
    generator = build_role("tiny", adapter="resnet", adapter_options={"channels": 8}, trainable=("adapter",), seed=1)
    torch.manual_seed(0)  # the discriminator head's init draws from the global RNG
    discriminator = TrajectoryDiscriminator(teacher.transformer) if config.gan_loss else None
    return HybridMethod(config, encoders, generator, discriminator)


@pytest.mark.parametrize(("d", "a"), [(1, 5), (5, 1)])
def test_lambda_follows_the_formula_and_updates_keep_the_ratio(encoders, batch, d, a):
    schedule = LambdaSchedule(a=4e-3, b=0.1, step_scale=50.0)
    method = _method(encoders, HybridConfig(lambda_schedule=schedule, discriminator_updates=d, adapter_updates=a))
    opts = Optimizers(method.param_groups(), lr=1e-4)
    logs = [method.train_step(batch, opts.context(step)) for step in range(10)]
    for step, entry in enumerate(logs):
        assert entry["lambda"] == pytest.approx(1 / (4e-3 * step * 50.0 + 0.1))
    assert opts.calls == {"discriminator": 10 * d // 5, "adapter": 10 * a // 5}  # 2 : 10 or 10 : 2
    assert logs[-1]["updates/discriminator"] == 10 * d // 5 and logs[-1]["updates/adapter"] == 10 * a // 5
    assert sum("loss/gan_d" in entry for entry in logs) == 10 * d // 5


def test_diffusion_term_goes_down(encoders, batch):
    # With lambda ~ 10 (step_scale 1, 30 steps) the diffusion term dominates the adapter's loss and is a regression
    # of G(x_t) onto fixed real latents, so on a fixed batch it must fall (the GAN term alone need not).
    method = _method(encoders)
    opts = Optimizers(method.param_groups(), lr=3e-3)
    probe = opts.context(10_000)
    x_t, t = method.diffusion_inputs(batch.latents, probe)

    def diffusion() -> float:
        with torch.no_grad():
            x0_fake = method.generator.predict_x0(x_t, t, batch.cond)
            return torch.nn.functional.mse_loss(x0_fake[:, :, 1:], batch.latents[:, :, 1:]).item()

    start = diffusion()
    for step in range(30):
        method.train_step(batch, opts.context(step))
    assert diffusion() < 0.8 * start


def test_discriminator_loss_goes_down_with_a_frozen_generator(encoders, batch):
    # A frozen generator (adapter lr 0) makes L_D a fixed logistic classification of real vs fake noised latents:
    # training the head alone must lower it.
    method = _method(encoders, HybridConfig(discriminator_updates=1, adapter_updates=1))
    opts = Optimizers(method.param_groups(), lr={"adapter": 0.0, "discriminator": 3e-3})
    x_t, t = method.diffusion_inputs(batch.latents, opts.context(10_000))
    with torch.no_grad():
        x0_fake = method.generator.predict_x0(x_t, t, batch.cond)

    def disc_loss() -> float:
        with torch.no_grad():
            return method.discriminator_loss(x0_fake, batch.latents, batch.cond, opts.context(20_000))[0].item()

    start = disc_loss()
    for step in range(40):
        method.train_step(batch, opts.context(step))
    assert disc_loss() < 0.8 * start


def test_adapter_update_leaves_no_gradient_in_the_discriminator(encoders, batch):
    method = _method(encoders)
    opts = Optimizers(method.param_groups(), lr=1e-4)
    logs = method.train_step(batch, opts.context(1))  # step 1 of a 1:5 cycle: adapter only
    assert "loss/gan_g" in logs and "loss/gan_d" not in logs
    assert all(p.grad is None for p in method.discriminator.parameters())
    assert all(p.requires_grad for p in method.discriminator.parameters())  # unfrozen again after the GAN term
    assert all(p.grad is None for p in method.discriminator.backbone.parameters())


def test_ablation_switches(encoders, batch):
    no_gan = _method(encoders, HybridConfig(gan_loss=False))
    assert set(no_gan.modules()) == {"adapter"} and no_gan.discriminator is None
    logs = no_gan.train_step(batch, Optimizers(no_gan.param_groups()).context(0))
    assert "loss/gan_g" not in logs and logs["loss/adapter"] == pytest.approx(logs["lambda"] * logs["loss/diffusion"], rel=1e-5)
    assert no_gan.ablation == "no_gan_loss"

    no_diffusion = _method(encoders, HybridConfig(diffusion_loss=False))
    logs = no_diffusion.train_step(batch, Optimizers(no_diffusion.param_groups()).context(0))
    assert "loss/diffusion" not in logs and logs["loss/adapter"] == pytest.approx(logs["loss/gan_g"], rel=1e-5)

    constant = _method(encoders, HybridConfig(lambda_schedule=LambdaSchedule(kind="constant", value=1.0)))
    opts = Optimizers(constant.param_groups())
    assert [constant.train_step(batch, opts.context(s))["lambda"] for s in (0, 7, 300)] == [1.0, 1.0, 1.0]
    assert constant.ablation == "constant_lambda_1"
    with pytest.raises(ModelConfigError, match="steps: 0"):
        HybridConfig(gan_loss=False, diffusion_loss=False)


def test_exports_load_as_four_step_flashbench_generators(encoders, batch, tmp_path):
    method = _method(encoders)
    untrained = tmp_path / "slow_adapter_directly"
    method.export(untrained)  # no training: the "SlowAdapter directly" ablation
    opts = Optimizers(method.param_groups(), lr=1e-2)
    for step in range(3):
        method.train_step(batch, opts.context(step))
    trained = tmp_path / "fast_adapter"
    method.export(trained)
    request = generation_request()
    videos = {}
    for name, folder in (("direct", untrained), ("trained", trained)):
        generator = FlashMotion(preset="tiny", checkpoint=str(folder))
        out = generator.generate(request)
        check_output(out, request)
        assert out.nfe == 4
        videos[name] = out.frames
    _, role = FlashMotion(preset="tiny", checkpoint=str(trained)).load()
    for saved, live in zip(role.adapter.state_dict().values(), method.generator.adapter.state_dict().values(), strict=True):
        torch.testing.assert_close(saved, live)
    for saved, live in zip(role.transformer.state_dict().values(), method.generator.transformer.state_dict().values(), strict=True):
        torch.testing.assert_close(saved, live)
    assert (videos["direct"] != videos["trained"]).any()  # the adapter's training changed the video
    from flashmotion.checkpoint import read_config

    assert read_config(untrained)["metadata"]["ablation"] == "slow_adapter_directly"
    assert read_config(trained)["metadata"]["ablation"] == "full"
    assert dataclasses.asdict(method.config)["lambda_schedule"]["kind"] == "inverse_linear"
