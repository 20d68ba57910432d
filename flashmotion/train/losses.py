"""The losses of the distillation stages, apart from the models and the loop (pure tensor maths).

- DMD (stage 2; Yin et al. 2023 eq. 7-8, DMD2, CausVid / Self-Forcing `model/dmd.py`):
      g = x0_fake - x0_real                                  (fake minus real score, both as x0 predictions)
      n = mean over non-batch dims of |x_gen - x0_real|       (per sample, detached)
      L = 0.5 * mean((x_gen - sg(x_gen - g / n))^2)           (float32)
  so dL/dx_gen = (g / n) / numel(x_gen): the MSE mean divides by every element, batch included.
- GAN (stage 3, non-saturating logistic loss on the diffusion discriminator's logits):
      L_G = mean softplus(-D(x_t_fake));   L_D = mean softplus(-D(x_t_real)) + mean softplus(D(x_t_fake)),
  plus, optionally, the approximate R1 penalty of finite differences (Seaweed-APT):
      R1 ~= mean (D(x_t_real) - D(x_t_real + s * eps))^2,  which is s^2 |grad_x D|^2 in expectation over eps.
- The diffusion weight lambda of stage 3: 1 / (a * step * step_scale + b) (a = 4e-3, b = 0.1) or a constant.
- Consistency distance of LCM: pseudo-Huber sqrt(d^2 + c^2) - c (c = 0.001), elementwise, mean; or MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from flashmotion.errors import ModelConfigError


def _batch_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over all non-batch dims, kept broadcastable: (B, ...) -> (B, 1, ..., 1)."""
    return x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)


def dmd_gradient(x_gen: torch.Tensor, x0_fake: torch.Tensor, x0_real: torch.Tensor) -> torch.Tensor:
    """The normalised DMD gradient (g / n) in float32, detached; zero where n == 0 (nan_to_num, as Self-Forcing)."""
    x_gen, x0_fake, x0_real = (t.detach().float() for t in (x_gen, x0_fake, x0_real))
    grad = x0_fake - x0_real
    normaliser = _batch_mean((x_gen - x0_real).abs())
    return torch.nan_to_num(grad / normaliser, nan=0.0, posinf=0.0, neginf=0.0)


def dmd_loss(x_gen: torch.Tensor, x0_fake: torch.Tensor, x0_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, normalised gradient): L = 0.5 * MSE(x_gen, sg(x_gen - g / n)) in float32, differentiable in x_gen.

    The loss value is 0.5 * mean((g / n)^2); only its gradient (g / n) / numel matters."""
    grad = dmd_gradient(x_gen, x0_fake, x0_real)
    x = x_gen.float()
    return 0.5 * F.mse_loss(x, (x - grad).detach(), reduction="mean"), grad


def gan_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss mean softplus(-D(fake)) = -mean log sigmoid(D(fake))."""
    return F.softplus(-logits_fake.float()).mean()


def gan_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss mean softplus(-D(real)) + mean softplus(D(fake))."""
    return F.softplus(-logits_real.float()).mean() + F.softplus(logits_fake.float()).mean()


def approximate_r1(logits_real: torch.Tensor, logits_perturbed: torch.Tensor) -> torch.Tensor:
    """Finite-difference R1: mean (D(x) - D(x + s eps))^2 for real inputs x (gradients flow through both)."""
    return (logits_real.float() - logits_perturbed.float()).pow(2).mean()


def pseudo_huber(pred: torch.Tensor, target: torch.Tensor, c: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((pred - target)^2 + c^2) - c), in float32 (LCM's consistency distance; ~ |d| for |d| >> c)."""
    if c <= 0:
        raise ModelConfigError(f"pseudo-Huber c must be > 0, got {c}; use the 'mse' distance for c = 0")
    diff = pred.float() - target.float()
    return (torch.sqrt(diff * diff + c * c) - c).mean()


LAMBDA_KINDS = ("inverse_linear", "constant")


@dataclass(frozen=True)
class LambdaSchedule:
    """Weight of the diffusion loss in stage 3 as a function of the global step.

    inverse_linear: lambda = 1 / (a * step * step_scale + b) (paper: a = 4e-3, b = 0.1, so 10 at step 0 and
    ~0.05 by step 50k); `step_scale` > 1 compresses the curve for short runs (tiny). constant: lambda = value."""

    kind: str = "inverse_linear"
    a: float = 4e-3
    b: float = 0.1
    step_scale: float = 1.0
    value: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in LAMBDA_KINDS:
            raise ModelConfigError(f"unknown lambda schedule {self.kind!r}; choose one of {LAMBDA_KINDS}")
        if self.kind == "inverse_linear" and (self.b <= 0 or self.a < 0 or self.step_scale < 0):
            raise ModelConfigError(f"inverse_linear lambda needs a >= 0, b > 0, step_scale >= 0; got {self}")

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return float(self.value)
        return 1.0 / (self.a * step * self.step_scale + self.b)
