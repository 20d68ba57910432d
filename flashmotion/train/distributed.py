"""Process group set-up under torchrun, data-parallel gradient averaging, and FSDP2 sharding of roles.

- `init_distributed(device)`: one process without torchrun's env (or in the process group its caller set up);
  else `init_process_group` (NCCL on CUDA, gloo on CPU), one device per local rank.
- Data parallel ("ddp"): every rank holds the full trainable modules; `average_gradients` all-reduces the grads of
  one optimizer's parameters (flattened into one buffer per dtype, missing grads as zeros) and divides by the world
  size right before that optimizer steps: the update DistributedDataParallel computes, without DDP's forward
  wrapper (roles are called through `predict_velocity`/`predict_x0`, not `forward`, and a method may update
  several optimizers per step).
- FSDP2 ("fsdp", the 5B preset): `shard_role` applies `torch.distributed.fsdp.fully_shard` to each DiT block
  (and ControlNet block), then to the whole role, and registers `predict_velocity` as an FSDP forward method so
  the root parameters (patch embedding, time/text embedders, output head) are gathered for it. FSDP reduces and
  scatters the gradients itself, so `average_gradients` skips sharded roles.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether this process is in a process group: torchrun's with 2+ processes, or one its caller set up
        (a 1-process gloo group runs the FSDP2 and DCP code paths in one process, as tests do)."""
        return dist.is_initialized()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def init_distributed(device: str = "auto") -> DistEnv:
    """The process group from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local, dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(params: Sequence[nn.Parameter], world_size: int) -> None:
    """grad <- mean over ranks of grad, for every parameter (None counts as zeros), one all_reduce per dtype."""
    if world_size <= 1:
        return
    by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world_size
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


def broadcast_modules(modules) -> None:
    """Every parameter and buffer of `modules` set to rank 0's values (DistributedDataParallel's start)."""
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def mean_over_ranks(values: dict[str, float], world_size: int, device: torch.device) -> dict[str, float]:
    """Each value averaged over ranks (the keys must be the same on every rank)."""
    if world_size <= 1 or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return {k: float(v) / world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def broadcast_int(value: int, world_size: int, device: torch.device) -> int:
    if world_size <= 1:
        return int(value)
    tensor = torch.tensor([int(value)], dtype=torch.long, device=device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def shard_role(role: nn.Module) -> nn.Module:
    """FSDP2 per role: blocks first, then the role as root; `predict_velocity` gathers the root parameters."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for block in role.transformer.blocks:
        fully_shard(block)
    adapter_blocks = getattr(role.adapter, "blocks", None) if role.adapter is not None else None
    for block in adapter_blocks or []:
        fully_shard(block)
    fully_shard(role)
    register_fsdp_forward_method(role, "predict_velocity")
    return role


def shard_roles(modules) -> set[int]:
    """`shard_role` on every RoleModel among `modules`; returns the ids of the parameters FSDP now reduces."""
    from flashmotion.models.build import RoleModel

    sharded: set[int] = set()
    for module in modules:
        if isinstance(module, RoleModel):
            shard_role(module)
            sharded |= {id(p) for p in module.parameters()}
    return sharded


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)

