"""Loss maths of the distillation stages (flashmotion/train/losses.py) and the update alternation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from flashmotion.errors import ModelConfigError
from flashmotion.train.alternation import UpdateRatio
from flashmotion.train.losses import (
    LambdaSchedule,
    approximate_r1,
    dmd_gradient,
    dmd_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    pseudo_huber,
)


def test_dmd_gradient_of_a_hand_built_case():
    x_gen = torch.tensor([[1.0, 3.0], [2.0, -2.0]], requires_grad=True)
    x0_real = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    x0_fake = torch.tensor([[0.5, 2.0], [4.0, 1.0]])
    # g = fake - real = [[0.5, 1], [2, 1]]; |x_gen - real| = [[1, 2], [0, 2]] -> n = [1.5, 1.0] per sample;
    # g / n = [[1/3, 2/3], [2, 1]]; the MSE mean over 4 elements gives dL/dx_gen = (g / n) / 4.
    loss, grad = dmd_loss(x_gen, x0_fake, x0_real)
    expected = torch.tensor([[1 / 3, 2 / 3], [2.0, 1.0]])
    torch.testing.assert_close(grad, expected)
    assert loss.item() == pytest.approx(0.5 * (1 / 9 + 4 / 9 + 4 + 1) / 4)  # 0.5 * mean((g / n)^2) = 25/36
    loss.backward()
    torch.testing.assert_close(x_gen.grad, expected / 4)
    assert loss.dtype == torch.float32


def test_dmd_normaliser_is_per_sample_over_all_other_dims():
    gen = torch.Generator().manual_seed(0)
    x_gen, x0_fake, x0_real = (torch.randn(3, 4, 2, 3, 5, generator=gen, dtype=torch.float64) for _ in range(3))
    x_gen.requires_grad_(True)
    loss, grad = dmd_loss(x_gen, x0_fake, x0_real)  # float64 inputs; the maths runs in float32
    assert grad.dtype == torch.float32 and loss.dtype == torch.float32
    for b in range(3):
        n = (x_gen[b] - x0_real[b]).abs().mean()
        torch.testing.assert_close(grad[b].double(), ((x0_fake[b] - x0_real[b]) / n).detach(), rtol=1e-5, atol=1e-6)
    loss.backward()
    torch.testing.assert_close(x_gen.grad, grad.double() / x_gen.numel(), rtol=1e-5, atol=1e-9)


def test_dmd_gradient_vanishes_when_fake_matches_real_and_is_finite_at_zero_normaliser():
    x = torch.randn(2, 6)
    real = torch.randn(2, 6)
    assert dmd_gradient(x, real, real).abs().max() == 0
    grad = dmd_gradient(real, real + 1, real)  # normaliser 0 (x_gen == x0_real) -> nan_to_num gives 0
    assert torch.isfinite(grad).all() and grad.abs().max() == 0


def test_gan_losses_equal_binary_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(8, generator=gen) * 3, torch.randn(8, generator=gen) * 3
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(gan_generator_loss(fake), bce(fake, torch.ones(8)))
    torch.testing.assert_close(gan_discriminator_loss(real, fake), bce(real, torch.ones(8)) + bce(fake, torch.zeros(8)))
    assert gan_discriminator_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2 * math.log(2))
    assert gan_discriminator_loss(torch.full((4,), 30.0), torch.full((4,), -30.0)).item() < 1e-10


def test_approximate_r1_estimates_the_squared_input_gradient():
    # For a linear discriminator D(x) = w.x: (D(x) - D(x + s eps))^2 = s^2 (w.eps)^2 -> s^2 |w|^2 in expectation.
    gen = torch.Generator().manual_seed(2)
    w = torch.tensor([1.0, -2.0, 0.5])
    x = torch.randn(20000, 3, generator=gen)
    s = 0.1
    r1 = approximate_r1(x @ w, (x + s * torch.randn(x.shape, generator=gen)) @ w)
    assert r1.item() == pytest.approx(s**2 * w.pow(2).sum().item(), rel=0.05)


def test_pseudo_huber():
    assert pseudo_huber(torch.tensor([3.0]), torch.tensor([0.0]), c=4.0).item() == pytest.approx(1.0)  # 5 - 4
    assert pseudo_huber(torch.zeros(5), torch.zeros(5)).item() == 0.0
    big = torch.tensor([2.0, -3.0])
    assert pseudo_huber(big, torch.zeros(2), c=1e-3).item() == pytest.approx(2.5 - 1e-3, abs=1e-6)
    with pytest.raises(ModelConfigError, match="mse"):
        pseudo_huber(big, big, c=0.0)


def test_lambda_schedule():
    paper = LambdaSchedule()
    assert paper(0) == pytest.approx(10.0)
    assert paper(100) == pytest.approx(1 / (0.4 + 0.1))
    assert LambdaSchedule(step_scale=10.0)(10) == pytest.approx(paper(100))
    assert LambdaSchedule(a=1e-2, b=0.5)(50) == pytest.approx(1.0)
    assert LambdaSchedule(kind="constant", value=1.0)(12345) == 1.0
    with pytest.raises(ModelConfigError, match="constant"):
        LambdaSchedule(kind="cosine")
    with pytest.raises(ModelConfigError, match="b > 0"):
        LambdaSchedule(b=0.0)


@pytest.mark.parametrize(("d", "a"), [(1, 5), (5, 1), (2, 3), (1, 1)])
def test_update_ratio_counts(d, a):
    ratio = UpdateRatio({"discriminator": d, "adapter": a})
    steps = 6 * ratio.cycle
    d_updates = sum(ratio.updates("discriminator", s) for s in range(steps))
    a_updates = sum(ratio.updates("adapter", s) for s in range(steps))
    assert (d_updates, a_updates) == (6 * d, 6 * a)
    # every step updates at least one role, and the schedule depends on the step alone (resume-safe)
    assert all(ratio.updates("discriminator", s) or ratio.updates("adapter", s) for s in range(steps))
    assert [ratio.updates("adapter", s) for s in range(7, 17)] == [ratio.updates("adapter", s) for s in range(7, 17)]


def test_update_ratio_rejects_bad_counts():
    with pytest.raises(ModelConfigError, match=">= 1"):
        UpdateRatio({"discriminator": 0, "adapter": 5})
