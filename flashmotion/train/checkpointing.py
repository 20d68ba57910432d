"""Resumable training checkpoints: modules, optimizers, schedulers, EMA, method state, RNG states and step.

Layout of `<out>/checkpoints/step-<NNNNNNNN>/`:
    modules/<name>.safetensors   one process: each checkpointed module's state dict (safetensors)
    dcp/                         in a process group (torchrun): torch.distributed.checkpoint of {modules,
                                 optimizers} (sharded with FSDP2; get_state_dict / set_state_dict handle both
                                 layouts)
    state.pt                     optimizers (without a process group) + schedulers + EMA shadows and the step
    rng-rank<r>.pt               per rank: torch, CUDA, numpy and python RNG states
    meta.json                    {"format", "step", "world_size", "method_state", "data_order", "files"}; written
                                 last (atomically), so a folder without it is incomplete and ignored by
                                 `latest_checkpoint`; "files" is the sha256 of every other file in the folder

The .pt files hold only tensors, numbers, strings and containers, so they load with weights_only=True; loading
checks the sha256 manifest first (flashmotion.train.checkpoint_safety), and DCP is read with a restricted reader.

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
from flashmotion.train import checkpoint_safety
from flashmotion.train.checkpoint_safety import META

FORMAT = 2  # 2: weights_only-loadable .pt files and a sha256 manifest in meta.json
PREFIX = "step-"


def rng_state() -> dict[str, Any]:
    """The RNG states as tensors and plain values (numpy's key array as an int64 tensor)."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state({
        "bit_generator": saved["bit_generator"],
        "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
        "has_gauss": saved["has_gauss"],
        "gauss": saved["gauss"],
    })
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
        meta = {
            "format": FORMAT, "step": step, "world_size": world_size, "method_state": method_state,
            "data_order": data_order, "files": checkpoint_safety.manifest(directory),
        }
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
    """Restore checkpoint `directory` in place after checking its sha256 manifest (on rank 0, before any rank
    reads it); returns its meta (step, method_state, data_order)."""
    import torch.distributed as dist

    directory = Path(directory)
    meta = read_meta(directory)
    if meta.get("world_size") != world_size:
        raise CheckpointError(
            f"{directory} was written by {meta.get('world_size')} processes, this run has {world_size}; resume with "
            f"torchrun --nproc_per_node {meta.get('world_size')}"
        )
    if rank == 0:
        checkpoint_safety.verify_manifest(directory, meta)
    if dist.is_initialized():
        dist.barrier()
    saved = checkpoint_safety.load_pickle(directory / "state.pt")
    if dist.is_initialized():
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        payload, owners = {}, {}
        for name, module in modules.items():
            opts = [opt for opt in state.optimizers.values() if _owns(module, opt)]
            model_sd, optim_sd = get_state_dict(module, opts)
            payload[f"module/{name}"] = model_sd
            if opts:
                payload[f"optim/{name}"] = optim_sd
            owners[name] = opts
        checkpoint_safety.load_dcp(payload, directory / "dcp")
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
    set_rng_state(checkpoint_safety.load_pickle(rng_path))
    return meta


def read_meta(directory: Path) -> dict:
    """meta.json of a checkpoint folder; a missing or garbled one is a CheckpointError."""
    path = Path(directory) / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}); delete this step folder to resume from an older one") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a format-{FORMAT} checkpoint (written by an older flashmotion: its files cannot be "
            "checked); start the run again in a new out=DIR"
        )
    return meta
