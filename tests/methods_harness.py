"""Shared fixtures for the distillation-method tests: tiny encoders, a fixed batch and a minimal StepContext whose
`optimize` is plain backward + AdamW (no accumulation, one process), standing in for flashmotion.train.loop."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from flashmotion.models.build import Conditioning, Encoders, build_encoders
from flashmotion.train.method import StepContext, TrainBatch

FRAMES, SIZE = 5, 32


def tiny_encoders() -> Encoders:
    return build_encoders("tiny", seed=0)


def fixed_batch(encoders: Encoders, batch: int = 2, seed: int = 0, trajectory: bool = True) -> TrainBatch:
    """Random clean latents with a conditioning encoded from random pixels (first frame, trajectory video)."""
    gen = torch.Generator().manual_seed(seed)
    shape = encoders.latent_shape(FRAMES, SIZE, SIZE)
    latents = torch.randn(batch, *shape, generator=gen)
    first = torch.rand(batch, 3, SIZE, SIZE, generator=gen) * 2 - 1
    video = torch.rand(batch, 3, FRAMES, SIZE, SIZE, generator=gen) * 2 - 1 if trajectory else None
    prompts = [f"{i} red ball moves right" for i in range(batch)]
    cond: Conditioning = encoders.conditioning(first, prompts, video, negative_prompt="")
    return TrainBatch(latents=latents, cond=cond, video=None, ids=[f"s{i}" for i in range(batch)])


class Optimizers:
    """AdamW per param group (weight decay 0), counting updates; `context(step)` builds the StepContext."""

    def __init__(self, groups: dict[str, list[nn.Parameter]], lr: float | dict[str, float] = 1e-3, exit_step: int | None = None):
        lrs = lr if isinstance(lr, dict) else dict.fromkeys(groups, lr)
        self.optimizers = {name: torch.optim.AdamW(params, lr=lrs[name], weight_decay=0.0) for name, params in groups.items()}
        self.calls: dict[str, int] = dict.fromkeys(groups, 0)
        self.exit_step = exit_step

    def _optimize(self, name: str, loss: torch.Tensor) -> dict[str, float]:
        opt = self.optimizers[name]
        loss.backward()  # like the loop: grads are zeroed after each step, not before (stale grads would show)
        norm = torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1e9)
        opt.step()
        opt.zero_grad(set_to_none=True)
        self.calls[name] += 1
        return {f"grad_norm/{name}": float(norm), f"lr/{name}": opt.param_groups[0]["lr"]}

    def context(self, step: int, seed: int = 0) -> StepContext:
        broadcast: Callable[[int], int] = (lambda v: v) if self.exit_step is None else (lambda v: self.exit_step)
        return StepContext(
            step=step, micro=0, generator=torch.Generator().manual_seed(seed * 100003 + step), device=torch.device("cpu"),
            rank=0, world_size=1, _optimize=self._optimize, _broadcast_int=broadcast,
        )


def generation_request(t: int = 9, h: int = 32, w: int = 32):
    """A 2-object box-conditioned request (moving boxes) for loading exported checkpoints as generators."""
    import numpy as np

    from flashbench.data.objects import boxes_from_masks
    from flashbench.generators.base import GenerationRequest

    masks = np.zeros((t, 2, h, w), dtype=bool)
    for i in range(t):
        masks[i, 0, 4:12, 2 + i : 10 + i] = True
        masks[i, 1, 18:28, 20 - i : 28 - i] = True
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return GenerationRequest("s0", frame, "a red ball", masks, boxes_from_masks(masks), "box", t, 8.0, h, w, seed=7)


@pytest.fixture(scope="module")
def encoders() -> Encoders:
    """Module-scoped tiny encoders (import this fixture into a test module)."""
    return tiny_encoders()


@pytest.fixture(scope="module")
def batch(encoders: Encoders) -> TrainBatch:
    """Module-scoped fixed batch with trajectory latents."""
    return fixed_batch(encoders)
