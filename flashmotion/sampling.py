"""Flow-matching schedules and samplers for the Wan2.2 backbone (velocity prediction, x_t = (1-s) x0 + s eps).

- `sample_multistep`: the teacher sampler, N steps (50) of diffusers' UniPC (flow_prediction, Wan's default) or
  flow-matching Euler, with classifier-free guidance (2 network evaluations per step).
- `sample_few_step`: the distilled sampler of DMD / Self-Forcing: at each of the timesteps (1000, 750, 500, 250),
  warped by the shift, predict x0 and re-noise it to the next sigma with fresh noise; 1 evaluation per step.

A denoiser is any callable `(latents, timestep, negative=False) -> velocity` that counts its calls in `.nfe`
(flashmotion.denoiser.TI2VDenoiser); timesteps are in [0, 1000] (sigma * 1000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from flashmotion.errors import ModelConfigError

NUM_TRAIN_TIMESTEPS = 1000
SOLVERS = ("unipc", "euler")
SAMPLERS = ("few_step", "multistep")


class Denoiser(Protocol):
    nfe: int

    def __call__(self, latents: torch.Tensor, timestep: float | torch.Tensor, negative: bool = False) -> torch.Tensor: ...


def shift_sigma(sigma: float | torch.Tensor, shift: float) -> float | torch.Tensor:
    """Resolution shift of flow-matching sigmas: s' = shift * s / (1 + (shift - 1) * s)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Flow-matching forward process x_sigma = (1 - sigma) x0 + sigma noise (sigma scalar or (B,))."""
    if isinstance(sigma, torch.Tensor) and sigma.ndim == 1:
        sigma = sigma.view(-1, *([1] * (x0.ndim - 1)))
    return (1 - sigma) * x0 + sigma * noise


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (CPU by default, so seeds give the same noise on
    every accelerator) and moved to `device`."""
    gen_device = generator.device if generator is not None else "cpu"
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=torch.float32).to(device)


def few_step_timesteps(steps: int) -> list[float]:
    """Evenly spaced timesteps from 1000 down, e.g. 4 -> [1000, 750, 500, 250] (before the shift warp)."""
    if steps < 1:
        raise ModelConfigError(f"steps must be >= 1, got {steps}")
    return [NUM_TRAIN_TIMESTEPS * (1 - i / steps) for i in range(steps)]


def sample_few_step(
    denoiser: Denoiser,
    noise: torch.Tensor,
    timesteps: Sequence[float] = (1000, 750, 500, 250),
    shift: float = 5.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Few-step sampling: x0 = x - s v at each warped sigma, then x = (1 - s_next) x0 + s_next eps (fresh eps)."""
    sigmas = [float(shift_sigma(t / NUM_TRAIN_TIMESTEPS, shift)) for t in timesteps]
    x = noise
    x0 = noise
    for i, sigma in enumerate(sigmas):
        velocity = denoiser(x, sigma * NUM_TRAIN_TIMESTEPS)
        x0 = x - sigma * velocity
        if i + 1 < len(sigmas):
            x = add_noise(x0, randn(x0.shape, generator, x0.device), sigmas[i + 1])
    return x0


def make_scheduler(solver: str, shift: float):
    """diffusers scheduler for the multi-step sampler: 'unipc' (Wan2.2's default) or 'euler'."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if solver == "unipc":
        return UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift, num_train_timesteps=NUM_TRAIN_TIMESTEPS
        )
    if solver == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    raise ModelConfigError(f"unknown solver {solver!r}; choose one of {SOLVERS}")


def sample_multistep(
    denoiser: Denoiser,
    noise: torch.Tensor,
    steps: int = 50,
    guidance: float = 5.0,
    shift: float = 5.0,
    solver: str = "unipc",
) -> torch.Tensor:
    """Multi-step sampling with classifier-free guidance v = v_neg + g (v_pos - v_neg) (skipped when g == 1)."""
    scheduler = make_scheduler(solver, shift)
    scheduler.set_timesteps(steps, device=noise.device)
    x = noise
    for t in scheduler.timesteps:
        velocity = denoiser(x, t)
        if guidance != 1.0:
            negative = denoiser(x, t, negative=True)
            velocity = negative + guidance * (velocity - negative)
        x = scheduler.step(velocity, t, x, return_dict=False)[0]
    return x


@dataclass(frozen=True)
class SamplerConfig:
    """kind: 'few_step' | 'multistep'; guidance and solver apply to 'multistep' only."""

    kind: str = "few_step"
    steps: int = 4
    shift: float = 5.0
    guidance: float = 5.0
    solver: str = "unipc"

    def __post_init__(self) -> None:
        if self.kind not in SAMPLERS:
            raise ModelConfigError(f"unknown sampler {self.kind!r}; choose one of {SAMPLERS}")
        if self.solver not in SOLVERS:
            raise ModelConfigError(f"unknown solver {self.solver!r}; choose one of {SOLVERS}")
        if self.steps < 1:
            raise ModelConfigError(f"steps must be >= 1, got {self.steps}")

    @property
    def uses_cfg(self) -> bool:
        return self.kind == "multistep" and self.guidance != 1.0

    @property
    def nfe(self) -> int:
        """Network evaluations one sample costs."""
        return self.steps * (2 if self.uses_cfg else 1)

    def sample(self, denoiser: Denoiser, noise: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.kind == "few_step":
            return sample_few_step(denoiser, noise, few_step_timesteps(self.steps), self.shift, generator)
        return sample_multistep(denoiser, noise, self.steps, self.guidance, self.shift, self.solver)
