"""LCM (ResNet) baseline on the tiny preset: solver grid and sampler timesteps, boundary condition, EMA target,
the consistency loss going down on a fixed batch, and the exported student as a 4-step generator."""

from __future__ import annotations

import copy

import methods_harness
import pytest
import torch
from methods_harness import Optimizers, generation_request

from baselines.lcm import LCM, LCMConfig, LCMMethod, LCMSampler, consistency_timesteps, solver_sigmas
from flashbench.generators.base import check_output
from flashmotion.errors import ModelConfigError
from flashmotion.models.build import build_role
from flashmotion.sampling import make_scheduler

encoders = methods_harness.encoders  # module-scoped fixtures shared with the other method tests
batch = methods_harness.batch


def _method(encoders, config: LCMConfig | None = None) -> LCMMethod:
    teacher = build_role("tiny", adapter="resnet", adapter_options={"channels": 8}, trainable=(), seed=0)
    torch.manual_seed(3)
    for proj in teacher.adapter.out_proj:  # a non-trivial SlowAdapter: its conditioning must reach the student
        torch.nn.init.normal_(proj.weight, std=0.05)
    return LCMMethod(config or LCMConfig(), encoders, teacher, copy.deepcopy(teacher))


def test_solver_grid_and_consistency_timesteps():
    sigmas = solver_sigmas(50, 5.0)
    scheduler = make_scheduler("euler", 5.0)
    scheduler.set_timesteps(50)
    assert sigmas.shape == (51,) and sigmas[0] == 1.0 and sigmas[-1] == 0.0
    torch.testing.assert_close(sigmas[:-1] * 1000, scheduler.timesteps.float())  # the teacher's Euler timesteps
    assert consistency_timesteps(50, 4, 5.0) == pytest.approx([float(sigmas[i]) * 1000 for i in (0, 12, 24, 36)])
    sampler = LCMSampler()
    assert sampler.nfe == 4 and not sampler.uses_cfg
    with pytest.raises(ModelConfigError, match="steps"):
        LCMSampler(steps=60)
    with pytest.raises(ModelConfigError, match="distance"):
        LCMConfig(distance="l1")


def test_boundary_condition_and_ema_target(encoders, batch):
    method = _method(encoders, LCMConfig(ema_decay=0.9))
    x = torch.randn(batch.latents.shape)
    with torch.no_grad():
        at_zero = method.student.predict_x0(x, 0.0, batch.cond)
    torch.testing.assert_close(at_zero[:, :, 1:], x[:, :, 1:])  # f(x, 0) = x: the x0 parameterisation
    before = [p.detach().clone() for p in method.target.parameters()]
    opts = Optimizers(method.param_groups(), lr=1e-2)
    method.train_step(batch, opts.context(0))
    changed = 0
    for old, target, student in zip(before, method.target.parameters(), method.student.parameters(), strict=True):
        if student.requires_grad:
            torch.testing.assert_close(target, 0.9 * old + 0.1 * student.detach())
            changed += int(not torch.equal(old, target))
        else:
            assert torch.equal(old, target)  # the frozen adapter stays the SlowAdapter
    assert changed > 0
    assert not any(p.requires_grad for p in method.student.adapter.parameters())


def test_consistency_loss_goes_down(encoders, batch):
    # skip = 10 grid points: a copy of the teacher is far from self-consistent over that jump, so the loss has room
    # to fall; over adjacent points (skip 1) a random tiny teacher is already nearly consistent and the optimiser's
    # first steps dominate. The probe averages 4 fixed draws of (n, noise).
    method = _method(encoders, LCMConfig(distance="pseudo_huber", skip=10))
    opts = Optimizers(method.param_groups(), lr=3e-4)

    def probe() -> float:
        with torch.no_grad():
            return sum(method.consistency_loss(batch.latents, batch.cond, opts.context(50_000 + i)).item() for i in range(4)) / 4

    start = probe()
    for step in range(40):
        method.train_step(batch, opts.context(step))
    assert probe() < 0.85 * start  # observed: 0.081 -> 0.062


def test_export_is_a_four_step_lcm_generator(encoders, batch, tmp_path):
    method = _method(encoders)
    opts = Optimizers(method.param_groups(), lr=1e-3)
    method.train_step(batch, opts.context(0))
    method.export(tmp_path / "lcm")
    generator = LCM(preset="tiny", checkpoint=str(tmp_path / "lcm"))
    request = generation_request()
    out = generator.generate(request)
    check_output(out, request)
    assert out.nfe == 4 and out.extra["sampler"]["kind"] == "lcm"
    _, role = generator.load()
    for saved, live in zip(role.transformer.state_dict().values(), method.student.transformer.state_dict().values(), strict=True):
        torch.testing.assert_close(saved, live)


def test_registered_as_a_flashbench_generator():
    from pathlib import Path

    import tomllib

    from flashbench.generators.registry import load_generator

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["flashbench.generators"]["lcm-resnet"] == "baselines.lcm:LCM"
    generator = load_generator("baselines.lcm:LCM preset=tiny steps=2 solver_steps=20")
    assert isinstance(generator, LCM) and generator.sampler.timesteps == consistency_timesteps(20, 2, 5.0)
