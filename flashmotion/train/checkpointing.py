"""Resumable training checkpoints: modules, optimizers, schedulers, EMA, method state, RNG states and step.

Layout of `<out>/checkpoints/step-<NNNNNNNN>/`:
    modules/<name>.safetensors   one process: each checkpointed module's state dict (safetensors)
    dcp/                         in a process group (torchrun): torch.distributed.checkpoint of {modules,
                                 optimizers} (sharded with FSDP2; get_state_dict / set_state_dict handle both
                                 layouts)
    state.pt                     optimizers (without a process group) + schedulers + EMA shadows and the step
    rng-rank<r>.pt               per rank: torch, CUDA, numpy and python RNG states
    meta.json                    {"step", "world_size", "method_state", "data_order"}; written last (atomically),
                                 so a folder without it is incomplete and ignored by `latest_checkpoint`

Data order needs no saved generator: the batch of step s is a pure function of (seed, s)
(flashmotion.train.data.batch_order); meta.json records that seed so a resume with another seed is refused.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from flashbench import atomic
from flashmotion.errors import CheckpointError

META = "meta.json"
PREFIX = "step-"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """What the loop checkpoints besides the modules' weights."""

    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    ema: dict[str, list[torch.Tensor]]


def checkpoint_dir(out: Path, step: int) -> Path:
    return Path(out) / "checkpoints" / f"{PREFIX}{step:08d}"


def latest_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint with the highest step under `out/checkpoints`, or None."""
    root = Path(out) / "checkpoints"
    done = sorted(p for p in root.glob(f"{PREFIX}*") if (p / META).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def save(
    out: Path,
    step: int,
    modules: dict[str, nn.Module],
    state: TrainState,
    method_state: dict,
    data_order: dict,
    rank: int,
    world_size: int,
    keep: int,
) -> Path:
    """Write checkpoint `step` (the number of finished steps); keep the newest `keep` complete ones."""
    import torch.distributed as dist

    directory = checkpoint_dir(out, step)
    if rank == 0:
        if directory.exists():
            shutil.rmtree(directory)
        (directory / "modules").mkdir(parents=True)
    if dist.is_initialized():
        dist.barrier()
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        payload = {}
        for name, module in modules.items():
            opts = [opt for key, opt in state.optimizers.items() if _owns(module, opt)]
            model_sd, optim_sd = get_state_dict(module, opts)
            payload[f"module/{name}"] = model_sd
            if opts:
                payload[f"optim/{name}"] = optim_sd
        dcp.save(payload, checkpoint_id=str(directory / "dcp"))
    else:
        for name, module in modules.items():
            save_model(module, str(directory / "modules" / f"{name}.safetensors"))
    torch.save(rng_state(), directory / f"rng-rank{rank}.pt")
    if rank == 0:
        torch.save(
            {
                "step": step,
                "optimizers": {k: o.state_dict() for k, o in state.optimizers.items()} if not dist.is_initialized() else {},
                "schedulers": {k: s.state_dict() for k, s in state.schedulers.items()},
                "ema": state.ema,
            },
            directory / "state.pt",
        )
    if dist.is_initialized():
        dist.barrier()
    if rank == 0:
        meta = {"step": step, "world_size": world_size, "method_state": method_state, "data_order": data_order}
        atomic.write_text(directory / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        complete = sorted(p for p in directory.parent.glob(f"{PREFIX}*") if (p / META).is_file())
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return directory


def _owns(module: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    ids = {id(p) for p in module.parameters()}
    return any(id(p) in ids for group in optimizer.param_groups for p in group["params"])


def load(
    directory: Path,
    modules: dict[str, nn.Module],
    state: TrainState,
    rank: int,
    world_size: int,
) -> dict:
    """Restore checkpoint `directory` in place; returns its meta (step, method_state, data_order)."""
    import torch.distributed as dist

    directory = Path(directory)
    meta = json.loads((directory / META).read_text())
    if meta["world_size"] != world_size:
        raise CheckpointError(
            f"{directory} was written by {meta['world_size']} processes, this run has {world_size}; resume with "
            f"torchrun --nproc_per_node {meta['world_size']}"
        )
    saved = torch.load(directory / "state.pt", map_location="cpu", weights_only=False)
    if dist.is_initialized():
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        payload, owners = {}, {}
        for name, module in modules.items():
            opts = [opt for opt in state.optimizers.values() if _owns(module, opt)]
            model_sd, optim_sd = get_state_dict(module, opts)
            payload[f"module/{name}"] = model_sd
            if opts:
                payload[f"optim/{name}"] = optim_sd
            owners[name] = opts
        dcp.load(payload, checkpoint_id=str(directory / "dcp"))
        for name, module in modules.items():
            set_state_dict(
                module, owners[name], model_state_dict=payload[f"module/{name}"],
                optim_state_dict=payload.get(f"optim/{name}", {}),
            )
    else:
        for name, module in modules.items():
            path = directory / "modules" / f"{name}.safetensors"
            if not path.is_file():
                raise CheckpointError(f"{path} is missing; the checkpoint does not match this stage's modules")
            load_model(module, str(path), device=str(next(module.parameters()).device))
        for key, opt in state.optimizers.items():
            opt.load_state_dict(saved["optimizers"][key])
    for key, sched in state.schedulers.items():
        sched.load_state_dict(saved["schedulers"][key])
    for key, shadow in state.ema.items():
        for dst, src in zip(shadow, saved["ema"][key], strict=True):
            dst.copy_(src)
    rng_path = directory / f"rng-rank{rank}.pt"
    set_rng_state(torch.load(rng_path, map_location="cpu", weights_only=False))
    return meta
