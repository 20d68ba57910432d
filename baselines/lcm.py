"""LCM (ResNet) baseline: latent consistency distillation (Luo et al. 2023) of the slow generator with the
SlowAdapter's conditioning into a few-step student, on the flow-matching Wan backbone; and its generator.

Solver grid: the N = 50 sigmas of the teacher's Euler sampler (diffusers FlowMatchEulerDiscreteScheduler with the
shift), s_0 = 1 > s_1 > ... > s_N = 0. The consistency function is the x0 parameterisation of the velocity model,
f(x, s) = x - s v(x, s), which meets the boundary condition f(x, 0) = x by construction (no c_skip / c_out).

One train step: x0 real latents, n ~ U{0, ..., N - k} (k = `skip`, LCM's skipping step), eps ~ N(0, I),
    x_n     = (1 - s_n) x0 + s_n eps
    x_{n+k} = x_n + (s_{n+k} - s_n) v_teacher^cfg(x_n, s_n)      one Euler step of the frozen teacher (slow
                                                                  generator + SlowAdapter), CFG weight w
    L       = d(f_student(x_n, s_n), sg f_target(x_{n+k}, s_{n+k}))   over latent frames 1..
with d = pseudo-Huber (c = 0.001) or MSE (flashmotion.train.losses), and the target network an EMA of the student
(decay `ema_decay`, updated after every student step). The student starts as a copy of the teacher (transformer
trainable; the adapter stays the SlowAdapter, frozen unless `train_adapter`).

Multistep consistency sampling (`LCMSampler`, LCM's scheduler): `steps` points of the solver grid, every N //
steps-th from s_0 (N = 50, 4 steps: s_0, s_12, s_24, s_36); at each, x0 = f(x, s), then re-noise x0 to the next
point with fresh noise (flashmotion.sampling.sample_few_step with these sigmas, shift 1). 1 evaluation per step.

Registered as the trainer stage "lcm" (inputs: `init.adapter`, the stage-1 export = teacher transformer +
SlowAdapter) and as the flashbench generator `LCM` ("lcm-resnet": a checkpoint exported by this stage).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flashmotion.errors import ModelConfigError
from flashmotion.generator import _TrajectoryGenerator
from flashmotion.models.build import Encoders, RoleModel, build_role, export_checkpoint
from flashmotion.sampling import NUM_TRAIN_TIMESTEPS, add_noise, make_scheduler, randn, sample_few_step
from flashmotion.train import distributed
from flashmotion.train.losses import pseudo_huber
from flashmotion.train.method import StepContext, TrainBatch
from flashmotion.train.precision import frozen_dtype
from flashmotion.train.registry import Stage, register, role_kwargs
from flashmotion.train.stage2_dmd import export_components

DISTANCES = ("pseudo_huber", "mse")


def solver_sigmas(solver_steps: int, shift: float) -> torch.Tensor:
    """(N + 1,) sigmas of the teacher's N-step shifted Euler sampler, from 1 down to the terminal 0."""
    scheduler = make_scheduler("euler", shift)
    scheduler.set_timesteps(solver_steps)
    return scheduler.sigmas.float().clone()


def consistency_timesteps(solver_steps: int, steps: int, shift: float) -> list[float]:
    """The multistep sampler's timesteps (sigma * 1000): every (N // steps)-th solver point from the first."""
    if not 1 <= steps <= solver_steps:
        raise ModelConfigError(f"LCM steps must be in [1, {solver_steps}] (the solver grid), got {steps}")
    sigmas = solver_sigmas(solver_steps, shift)
    stride = solver_steps // steps
    return [float(sigmas[i * stride]) * NUM_TRAIN_TIMESTEPS for i in range(steps)]


@dataclass
class LCMConfig:
    """solver_steps: N of the Euler grid; skip: k, grid points one teacher step jumps; guidance: teacher CFG w;
    shift: flow shift of the grid; distance: 'pseudo_huber' | 'mse'; huber_c: pseudo-Huber c; ema_decay: the
    target network's EMA decay; train_adapter: fine-tune the SlowAdapter too; steps: the student's sampler steps
    (recorded in the export)."""

    solver_steps: int = 50
    skip: int = 1
    guidance: float = 5.0
    shift: float = 5.0
    distance: str = "pseudo_huber"
    huber_c: float = 1e-3
    ema_decay: float = 0.95
    train_adapter: bool = False
    steps: int = 4

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ModelConfigError(f"LCM distance must be one of {DISTANCES}, got {self.distance!r}")
        if not 1 <= self.skip <= self.solver_steps:
            raise ModelConfigError(f"LCM skip must be in [1, solver_steps={self.solver_steps}], got {self.skip}")
        if not 0 <= self.ema_decay < 1:
            raise ModelConfigError(f"LCM ema_decay must be in [0, 1), got {self.ema_decay}")
        consistency_timesteps(self.solver_steps, self.steps, self.shift)


class LCMMethod:
    """Latent consistency distillation (see the module docstring). Optimizer: 'student'."""

    name = "lcm"

    def __init__(
        self,
        config: LCMConfig,
        encoders: Encoders,
        teacher: RoleModel,
        student: RoleModel,
        export_components: tuple[str, ...] = ("transformer", "vae", "text_encoder", "tokenizer"),
    ) -> None:
        if teacher.adapter is None:
            raise ModelConfigError("LCM (ResNet) distils the slow generator with its adapter: set init.adapter")
        self.config = config
        self.encoders = encoders
        self.teacher = teacher.requires_grad_(False).eval()
        self.student = student.set_trainable(("transformer", "adapter") if config.train_adapter else ("transformer",))
        self.target = copy.deepcopy(self.student).set_trainable(()).eval()  # frozen: stays in eval under .train()
        self.export_components = export_components
        self.sigmas = solver_sigmas(config.solver_steps, config.shift)
        self.updates = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"student": self.student, "target": self.target}

    def roles(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher, "student": self.student, "target": self.target}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"student": [p for p in self.student.parameters() if p.requires_grad]}

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.config.distance == "mse":
            return F.mse_loss(pred.float(), target.float())
        return pseudo_huber(pred, target, self.config.huber_c)

    def consistency_loss(self, x0: torch.Tensor, cond, ctx: StepContext) -> torch.Tensor:
        """The consistency distance at a random grid point (see the module docstring), differentiable in the student."""
        k, n_max = self.config.skip, self.config.solver_steps - self.config.skip
        n = torch.randint(n_max + 1, (x0.shape[0],), generator=ctx.generator)
        s_n, s_next = self.sigmas[n].to(x0.device), self.sigmas[n + k].to(x0.device)
        x_n = add_noise(x0, randn(x0.shape, ctx.generator, x0.device), s_n)
        with torch.no_grad():
            velocity = self.teacher.predict_velocity(x_n, s_n * NUM_TRAIN_TIMESTEPS, cond, guidance=self.config.guidance)
            x_next = x_n + (s_next - s_n).view(-1, 1, 1, 1, 1) * velocity
            target = self.target.predict_x0(x_next, s_next * NUM_TRAIN_TIMESTEPS, cond)
        pred = self.student.predict_x0(x_n, s_n * NUM_TRAIN_TIMESTEPS, cond)
        return self.distance(pred[:, :, 1:], target[:, :, 1:])

    @torch.no_grad()
    def update_target(self) -> None:
        """theta_target <- mu theta_target + (1 - mu) theta_student, over the student's trainable parameters."""
        mu = self.config.ema_decay
        for role in (self.student, self.target):
            if distributed.is_sharded(role):  # FSDP2 keeps a root's parameters unsharded after a forward that no
                role.reshard()                # backward follows (the target's): shard them again to match
        for target, student in zip(self.target.parameters(), self.student.parameters(), strict=True):
            if student.requires_grad:
                target.lerp_(student.detach().to(target.dtype), 1 - mu)

    def train_step(self, batch: TrainBatch, ctx: StepContext) -> dict[str, float]:
        if self.config.guidance != 1.0 and batch.cond.negative_embeds is None:
            raise ModelConfigError("lcm with guidance != 1 needs negative prompt embeddings; set data.negative_prompt")
        loss = self.consistency_loss(batch.latents, batch.cond, ctx)
        stepped = ctx.optimize("student", loss)  # empty on non-final micro-batches (no optimizer step yet)
        if stepped:
            self.update_target()
            self.updates += 1
        logs = {"loss/consistency": loss.item(), **stepped}
        logs["updates/student"] = float(self.updates)
        return logs

    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])

    def export(self, out_dir: Path) -> None:
        """The student (transformer + adapter) as a FlashMotion checkpoint; the metadata records the sampler."""
        c = self.config
        metadata = {"stage": self.name, "sampler": {"kind": "lcm", "solver_steps": c.solver_steps, "steps": c.steps, "shift": c.shift}}
        export_checkpoint(out_dir, self.student, self.encoders, self.export_components, metadata=metadata)


def build(train, config: LCMConfig, encoders: Encoders, device: torch.device) -> LCMMethod:
    """Teacher = `init.adapter` (stage-1 export: slow transformer + SlowAdapter, frozen); student = a copy."""
    if "adapter" not in train.init:
        raise ModelConfigError("lcm needs init.adapter: the stage-1 (SlowAdapter) export folder")
    kwargs = {"checkpoint": train.init["adapter"], "adapter_checkpoint": train.init["adapter"], **role_kwargs(train, device)}
    teacher = build_role(trainable=(), dtype=frozen_dtype(train, device), **kwargs)
    student = build_role(trainable=(), **kwargs)  # float32; LCMMethod sets what trains
    return LCMMethod(config, encoders, teacher, student, export_components(train))


register(Stage("lcm", LCMConfig, build, inputs="trajectory"))


# --- the sampler and the generator -------------------------------------------------------------------------


@dataclass(frozen=True)
class LCMSampler:
    """Multistep consistency sampling over the N-point solver grid (no CFG: the student was distilled with it)."""

    kind: str = "lcm"
    steps: int = 4
    solver_steps: int = 50
    shift: float = 5.0

    def __post_init__(self) -> None:
        consistency_timesteps(self.solver_steps, self.steps, self.shift)

    @property
    def uses_cfg(self) -> bool:
        return False

    @property
    def nfe(self) -> int:
        return self.steps

    @property
    def timesteps(self) -> list[float]:
        return consistency_timesteps(self.solver_steps, self.steps, self.shift)

    def sample(self, denoiser, noise: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_few_step(denoiser, noise, self.timesteps, shift=1.0, generator=generator)


class LCM(_TrajectoryGenerator):
    """"LCM (ResNet)": the consistency-distilled student of `lcm` training + SlowAdapter, 4 multistep-consistency
    steps (NFE 4). Arguments as the `flashmotion` generator plus `solver_steps` (the training grid, 50)."""

    name = "lcm-resnet"
    defaults: dict[str, Any] = {"sampler": "few_step", "steps": 4}

    def __init__(self, **args: Any) -> None:
        solver_steps = int(args.pop("solver_steps", 50))
        super().__init__(**args)
        s = self.settings
        self.sampler = LCMSampler(steps=s.steps, solver_steps=solver_steps, shift=s.shift)
