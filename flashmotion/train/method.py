"""The contract between the one training loop (flashmotion.train.loop) and a stage's method object.

A method (one per stage, FastVideo style) owns the maths: it gets its roles from flashmotion.models.build, computes
losses in `train_step` and asks the loop to apply them with `ctx.optimize(name, loss)`. The loop owns everything
else: data, seeds, optimizers/schedulers (built from `param_groups`), gradient accumulation, data-parallel
gradient averaging or FSDP2, bf16 autocast, clipping, EMA, checkpoint/resume (of `modules()` and `state_dict()`),
logging and export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from flashmotion.models.build import Conditioning


@dataclass
class TrainBatch:
    """What flashmotion.train.data yields after encoding (latents and embeddings may come from the cache).

    latents: (B, C, F, h, w) clean normalised video latents x0; cond: their conditioning; video: (B, 3, T, H, W)
    pixels in [-1, 1] (only when the method asks for pixels, stage0_vae); ids: sample ids; condition_kinds: the
    trajectory map kind per row ('mask' | 'box')."""

    latents: torch.Tensor | None
    cond: Conditioning | None
    video: torch.Tensor | None
    ids: list[str]
    condition_kinds: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class StepContext:
    """Given by the loop to every `train_step` call.

    step: global optimizer step (0-based) this call belongs to; micro: index of this micro-batch within the step
    (0 .. accumulation-1); generator: the call's CPU RNG, seeded from (base seed + rank, step, micro), so a resumed
    run draws the same numbers; device: where the batch lives; rank / world_size of the process group."""

    step: int
    micro: int
    generator: torch.Generator
    device: torch.device
    rank: int
    world_size: int
    _optimize: Callable[[str, torch.Tensor], dict[str, float]]
    _broadcast_int: Callable[[int], int]

    def optimize(self, name: str, loss: torch.Tensor) -> dict[str, float]:
        """Backward `loss` for optimizer `name` (scaled by 1/accumulation); on the step's last micro-batch also
        average gradients over ranks, clip them, optimizer.step(), scheduler.step(), zero_grad and update the EMA.
        Returns {"grad_norm/<name>": ..., "lr/<name>": ...} (empty on non-final micro-batches). With accumulation
        > 1 each optimizer may be used at most once per train_step."""
        return self._optimize(name, loss)

    def broadcast_int(self, value: int) -> int:
        """Rank 0's `value` on every rank (e.g. DMD's exit-step choice)."""
        return self._broadcast_int(value)


@runtime_checkable
class TrainingMethod(Protocol):
    """One stage's maths. Constructed as `Method(config, encoders, **roles)` by the stage's registry entry."""

    name: str

    def modules(self) -> dict[str, nn.Module]:
        """Every module whose state is checkpointed (the trainable ones), by a stable name."""
        ...

    def roles(self) -> dict[str, nn.Module]:
        """Every model `train_step` runs, trainable or frozen, by name: `gradient_checkpointing: true` turns on
        checkpointing in all of them (a frozen transformer that gradients pass through keeps activations too),
        and the run's config.json records their parameter dtypes."""
        ...

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Optimizer name -> parameters; the loop builds one AdamW + LR schedule per name."""
        ...

    def train_step(self, batch: TrainBatch, ctx: StepContext) -> dict[str, float]:
        """Losses and counters to log (floats)."""
        ...

    def state_dict(self) -> dict:
        """Extra method state (counters), JSON-able."""
        ...

    def load_state_dict(self, state: dict) -> None: ...

    def export(self, out_dir: Path) -> None:
        """Write the generator checkpoint(s) flashbench can load."""
        ...
