"""Flow-matching schedules and samplers, checked against diffusers' schedulers and an exact (oracle) velocity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UniPCMultistepScheduler

from flashmotion.errors import ModelConfigError
from flashmotion.sampling import SamplerConfig, add_noise, few_step_timesteps, shift_sigma


class StraightLineDenoiser:
    """Exact velocity of the straight path from `noise` (sigma 1) to x0: v = noise - x0 at every sigma (no need
    to know the sigma, so it is exact for any scheduler's timestep rounding)."""

    def __init__(self, x0: torch.Tensor, noise: torch.Tensor) -> None:
        self.velocity, self.nfe = noise - x0, 0

    def __call__(self, x, timestep, negative=False):
        self.nfe += 1
        return self.velocity


class OracleDenoiser:
    """Exact velocity when all data mass sits at x0: v = (x - x0) / sigma; counts calls like TI2VDenoiser."""

    def __init__(self, x0: torch.Tensor, negative_offset: float = 0.0) -> None:
        self.x0, self.negative_offset, self.nfe = x0, negative_offset, 0
        self.timesteps: list[float] = []

    def __call__(self, x, timestep, negative=False):
        self.nfe += 1
        self.timesteps.append(float(timestep))
        sigma = float(timestep) / 1000
        return (x - self.x0) / sigma + (self.negative_offset if negative else 0.0)


def test_shift_matches_wan_unipc_schedule():
    """Wan2.2's UniPC (flow sigmas): 50 sigmas evenly spaced over [1, 1/1000) (51 points, last dropped), shifted."""
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0, num_train_timesteps=1000
    )
    scheduler.set_timesteps(50)
    ours = shift_sigma(np.linspace(1.0, 1 / 1000, 51)[:-1], 5.0)
    np.testing.assert_allclose(ours, scheduler.sigmas[:-1].numpy(), rtol=1e-5, atol=1e-6)


def test_few_step_timesteps_warped_by_shift():
    assert few_step_timesteps(4) == [1000, 750, 500, 250]
    # s' = 5 s / (1 + 4 s): 0.75 -> 15/16, 0.5 -> 5/6, 0.25 -> 5/8
    assert [shift_sigma(t / 1000, 5.0) for t in few_step_timesteps(4)] == pytest.approx([1.0, 15 / 16, 5 / 6, 5 / 8])
    with pytest.raises(ModelConfigError):
        few_step_timesteps(0)


def test_add_noise_interpolates_per_sample():
    x0, noise = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.equal(add_noise(x0, noise, torch.tensor([0.25, 1.0])), torch.tensor([[0.25] * 3, [1.0] * 3]))


def test_few_step_sampler_recovers_x0_with_4_nfe():
    x0 = torch.randn(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    denoiser = OracleDenoiser(x0)
    config = SamplerConfig(kind="few_step", steps=4, shift=5.0)
    out = config.sample(denoiser, torch.randn_like(x0), torch.Generator().manual_seed(1))
    assert denoiser.nfe == config.nfe == 4
    assert denoiser.timesteps == pytest.approx([1000, 937.5, 833.333, 625], rel=1e-4)
    torch.testing.assert_close(out, x0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("solver", ["unipc", "euler"])
def test_multistep_cfg_sampler_recovers_x0_with_100_nfe(solver):
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(1, 4, 3, 2, 2, generator=gen), torch.randn(1, 4, 3, 2, 2, generator=gen)
    denoiser = StraightLineDenoiser(x0, noise)  # negative == positive: CFG must leave the exact velocity as is
    config = SamplerConfig(kind="multistep", steps=50, guidance=5.0, solver=solver)
    out = config.sample(denoiser, noise)
    assert denoiser.nfe == config.nfe == 100
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=1e-4)


def test_cfg_combines_branches_and_guidance_1_skips_the_negative():
    x0 = torch.zeros(1, 1, 1, 1, 1)
    # Euler, 1 step from sigma 1 to 0: x_out = x - v. v_neg = v_pos + 1 -> v = v_pos - (g - 1).
    guided = SamplerConfig(kind="multistep", steps=1, guidance=3.0, solver="euler", shift=1.0)
    out = guided.sample(OracleDenoiser(x0, negative_offset=1.0), torch.ones(1, 1, 1, 1, 1))
    assert out.item() == pytest.approx(2.0)
    plain = SamplerConfig(kind="multistep", steps=50, guidance=1.0)
    denoiser = OracleDenoiser(x0, negative_offset=1.0)
    plain.sample(denoiser, torch.ones(1, 1, 1, 1, 1))
    assert denoiser.nfe == plain.nfe == 50


def test_sampler_config_rejects_unknown_settings():
    with pytest.raises(ModelConfigError, match="sampler"):
        SamplerConfig(kind="ddim")
    with pytest.raises(ModelConfigError, match="solver"):
        SamplerConfig(solver="heun")
