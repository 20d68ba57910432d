"""The one training loop shared by every stage (tiny CPU preset and the 5B preset alike).

Per optimizer step s (0-based) with global batch B, W ranks and A accumulation micro-batches:
- the B sample indices come from `batch_order(s)` (per-epoch seeded permutations); slot k = a * W + r (micro a,
  rank r) gets indices [k b, (k + 1) b), b = B / (W A);
- slot k's `StepContext.generator` is seeded from (seed, s, k), so the random draws of a slot do not depend on
  how slots are spread over processes: W ranks with A = 1 see what 1 process with A = W sees;
- `ctx.optimize(name, loss)` backpropagates loss / A into optimizer `name`'s parameters only
  (`backward(inputs=...)`; a plain backward for FSDP-sharded parameters), and on the last micro-batch averages the gradients over ranks, clips them to
  `grad_clip` (global norm), steps the AdamW optimizer and its LR schedule, zeroes the gradients and updates the
  EMA shadow (p_ema <- d p_ema + (1 - d) p);
- logged values are averaged over micro-batches and ranks; rows go to `<out>/log.csv` every `log_every` steps;
- with `validate_every`, the method's held-out validation (flashmotion.train.validation) adds `val/...` columns
  to the rows of those steps (EMA weights, eval mode, its own seeded generator: training's streams are untouched).
Models are built with the global RNGs seeded with `seed` on every rank (and, for ddp, rank 0's trainable
weights are broadcast); training then seeds them with seed + rank. A checkpoint is written every `checkpoint_every` steps
and at the end; `resume=True` restores the latest one and continues exactly (same CSV as an uninterrupted run),
with the run's own config: a resume whose config (YAML + overrides) differs from the run's config.json in
anything but `steps` is refused, as is resuming a finished run (done.json; delete it to train a run longer).
At the end: `<out>/export` (the method's generator checkpoint, with EMA weights when enabled), `<out>/loss.png`
and `<out>/done.json` (provenance; its presence marks the stage finished for the pipeline).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from flashbench import provenance
from flashmotion.errors import CheckpointError, ModelConfigError
from flashmotion.models.build import build_encoders, enable_gradient_checkpointing
from flashmotion.train import checkpointing, distributed, precision
from flashmotion.train.config import TrainConfig, check_teacher, method_config, to_dict
from flashmotion.train.data import BatchEncoder, ClipDataset, batch_order
from flashmotion.train.logging import TrainLog
from flashmotion.train.method import StepContext, TrainingMethod
from flashmotion.train.registry import get_stage
from flashmotion.train.validation import ValidatingMethod, ValidationSet

DONE = "done.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def slot_generator(seed: int, step: int, slot: int) -> torch.Generator:
    """The CPU generator of (step, slot): a SeedSequence of (seed, step, slot) gives its 63-bit seed."""
    value = int(np.random.SeedSequence([seed, step, slot]).generate_state(2, np.uint32).astype(np.uint64) @ [1, 2**32])
    return torch.Generator().manual_seed(value % 2**63)


def lr_lambda(schedule: str, warmup: int, total: int):
    def factor(i: int) -> float:
        if warmup and i < warmup:
            return (i + 1) / warmup
        if schedule == "cosine":
            progress = (i - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


class Optimization:
    """Optimizers, schedules, EMA and the `optimize` step of StepContext."""

    def __init__(self, config: TrainConfig, method: TrainingMethod, env: distributed.DistEnv, sharded: set[int]) -> None:
        self.config = config
        self.env = env
        overrides: dict[str, dict] = getattr(method, "optimizer_overrides", {}) or {}
        self.params: dict[str, list[torch.nn.Parameter]] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        for name, params in method.param_groups().items():
            params = [p for p in params if p.requires_grad]
            if not params:
                raise ModelConfigError(f"optimizer {name!r} of stage {config.stage} has no trainable parameters")
            opts = {"lr": config.lr, "betas": tuple(config.betas), "weight_decay": config.weight_decay, **overrides.get(name, {})}
            self.params[name] = params
            self.optimizers[name] = torch.optim.AdamW(params, **opts)
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                self.optimizers[name], lr_lambda(config.lr_schedule, config.warmup_steps, config.steps)
            )
        self.ema: dict[str, list[torch.Tensor]] = (
            {name: [p.detach().clone() for p in params] for name, params in self.params.items()} if config.ema else {}
        )
        self.sharded = sharded  # ids of parameters FSDP reduces itself
        self.calls: dict[str, int] = defaultdict(int)
        self.micro = 0

    def state(self) -> checkpointing.TrainState:
        return checkpointing.TrainState(self.optimizers, self.schedulers, self.ema)

    def begin_micro(self, micro: int) -> None:
        self.micro = micro
        self.calls.clear()

    def optimize(self, name: str, loss: torch.Tensor) -> dict[str, float]:
        if name not in self.optimizers:
            raise ModelConfigError(f"no optimizer {name!r}; this method has {sorted(self.optimizers)}")
        self.calls[name] += 1
        accumulation = self.config.accumulation
        if accumulation > 1 and self.calls[name] > 1:
            raise ModelConfigError(f"optimizer {name!r} is stepped twice in one train_step; that needs accumulation=1")
        params = self.params[name]
        if any(id(p) in self.sharded for p in params):
            # FSDP2 computes with gathered copies and reduce-scatters into the sharded .grad in its hooks, so the
            # sharded parameters are not autograd inputs of the loss: plain backward.
            (loss.float() / accumulation).backward()
        else:
            (loss.float() / accumulation).backward(inputs=params)
        if self.micro < accumulation - 1:
            return {}
        dense = [p for p in params if id(p) not in self.sharded]
        distributed.average_gradients(dense, self.env.world_size)
        clip = self.config.grad_clip if self.config.grad_clip is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        lr = self.optimizers[name].param_groups[0]["lr"]
        self.optimizers[name].step()
        self.schedulers[name].step()
        self.optimizers[name].zero_grad(set_to_none=True)
        if self.ema:
            decay = float(self.config.ema)
            with torch.no_grad():
                for shadow, p in zip(self.ema[name], params, strict=True):
                    shadow.lerp_(p.detach(), 1 - decay)
        return {f"grad_norm/{name}": float(norm), f"lr/{name}": float(lr)}

    @contextlib.contextmanager
    def ema_weights(self):
        """Parameters swapped with their EMA shadows inside the block (no-op without EMA)."""
        if not self.ema:
            yield
            return
        self._swap_ema()
        try:
            yield
        finally:
            self._swap_ema()

    @torch.no_grad()
    def _swap_ema(self) -> None:
        for name, params in self.params.items():
            for shadow, p in zip(self.ema[name], params, strict=True):
                tmp = p.detach().clone()
                p.copy_(shadow)
                shadow.copy_(tmp)


def _mean_logs(rows: list[dict[str, float]]) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        for key, value in row.items():
            sums[key] += float(value)
            counts[key] += 1
    return {key: sums[key] / counts[key] for key in sums}


def train(config: TrainConfig, resume: bool = False, config_path: str | None = None) -> Path:
    """Run (or resume) the stage described by `config`; returns its output folder."""
    env = distributed.init_distributed(config.device)
    try:
        return _train(config, resume, env, config_path)
    finally:
        distributed.shutdown()


def _train(config: TrainConfig, resume: bool, env: distributed.DistEnv, config_path: str | None) -> Path:
    check_teacher(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    stage = get_stage(config.stage)
    mcfg = method_config(config)
    per_slot, rest = divmod(config.batch_size, env.world_size * config.accumulation)
    if rest or per_slot == 0:
        raise ModelConfigError(
            f"batch_size {config.batch_size} must be a multiple of world size x accumulation "
            f"({env.world_size} x {config.accumulation})"
        )
    if not resume and checkpointing.latest_checkpoint(out) is not None:
        raise CheckpointError(f"{out} already holds checkpoints; pass --resume to continue or choose another out=DIR")
    if resume:
        _check_resume(out, config, env)
    device = env.device
    seed_everything(config.seed)  # model construction draws the same initial weights on every rank ...
    encoders = build_encoders(
        config.preset, config.model_path, config.init.get("encoders"), seed=config.seed,
        dtype=precision.encoder_dtype(config, device), device=device,
    )
    encoders.latent_shape(config.data.frames, *config.data.size)  # a size the VAE cannot take fails here, in one line
    method: TrainingMethod = stage.factory(config, mcfg, encoders, device)
    modules = method.modules()
    if env.distributed and config.distributed == "ddp":
        distributed.broadcast_modules(modules.values())  # ... and rank 0's are broadcast anyway, as DDP does
    seed_everything(config.seed + env.rank)
    if config.gradient_checkpointing:
        checkpoint_roles(config, method)
    sharded = distributed.shard_roles(modules.values()) if env.distributed and config.distributed == "fsdp" else set()
    if config.steps == 0:  # export only (e.g. an ablation that combines earlier stages' weights)
        if env.is_main:
            _write_config(out, config, config_path, method, encoders, device)
            for module in modules.values():
                module.eval()
            method.export(out / "export")
            _write_done(out, config, env, device, None)
        return out
    opt = Optimization(config, method, env, sharded)

    dataset = ClipDataset(config.data, seed=config.seed)
    encoder = BatchEncoder(encoders, config.data, stage.inputs, dataset.bench, device)
    validation = None
    if config.validate_every:
        if not isinstance(method, ValidatingMethod):
            raise ModelConfigError(f"stage {config.stage} has no held-out validation; drop validate_every")
        if config.data.val_bench is None:
            raise ModelConfigError("validate_every needs data.val_bench=DIR (flashmotion pipeline --val-bench DIR): "
                                   "a held-out benchmark no training uses; or validate_every=0")
        validation = ValidationSet(config, encoders, stage.inputs, device)
    start = 0
    data_order = {"seed": config.seed, "num_samples": len(dataset), "batch_size": config.batch_size}
    if resume:
        latest = checkpointing.latest_checkpoint(out)
        if latest is None:
            if env.is_main:
                print(f"--resume: no checkpoint under {out / 'checkpoints'}, starting from step 0")
        else:
            meta = checkpointing.read_meta(latest)
            if int(meta["step"]) > config.steps:
                raise CheckpointError(f"{latest} is at step {meta['step']}, past steps={config.steps}; pass steps >= "
                                      f"{meta['step']} or start a new out=DIR")
            meta = checkpointing.load(latest, modules, opt.state(), env.rank, env.world_size)
            if meta["data_order"] != data_order:
                raise CheckpointError(f"{latest} was written with data order {meta['data_order']}, this run has {data_order}")
            method.load_state_dict(meta["method_state"])
            start = int(meta["step"])
            if env.is_main:
                print(f"resuming from step {start} of {config.steps} ({latest})")
    if env.is_main:
        _write_config(out, config, config_path, method, encoders, device)
    log = TrainLog(out / "log.csv", start_step=start) if env.is_main else None

    for module in modules.values():
        module.train()
    pending: list[dict[str, float]] = []
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=config.stage, disable=not env.is_main)
    for step in bar:
        indices, epoch = batch_order(len(dataset), config.batch_size, step, config.seed)
        kind = method.condition_kind(step) if hasattr(method, "condition_kind") else config.data.condition
        rows = []
        for micro in range(config.accumulation):
            slot = micro * env.world_size + env.rank
            keys = [(i, epoch) for i in indices[slot * per_slot : (slot + 1) * per_slot]]
            batch = encoder([dataset[k] for k in keys], kind)
            opt.begin_micro(micro)
            ctx = StepContext(
                step=step, micro=micro, generator=slot_generator(config.seed, step, slot), device=device,
                rank=env.rank, world_size=env.world_size, _optimize=opt.optimize,
                _broadcast_int=lambda v: distributed.broadcast_int(v, env.world_size, device),
            )
            with precision.autocast_context(config, device):
                rows.append(method.train_step(batch, ctx))
        values = distributed.mean_over_ranks(_mean_logs(rows), env.world_size, device)
        done = step + 1
        pending.append(values)
        checks = {}
        if validation is not None and (done % config.validate_every == 0 or done == config.steps):
            with precision.autocast_context(config, device):  # the training step's number formats (bf16 roles)
                checks = _validate(validation, method, modules, opt, kind)
        if env.is_main and (done % config.log_every == 0 or done == config.steps):
            log.log(done, {**_mean_logs(pending), **checks})
            bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if "loss" in k})
        if done % config.log_every == 0:
            pending = []
        if done % config.checkpoint_every == 0 or done == config.steps:
            checkpointing.save(
                out, done, modules, opt.state(), method.state_dict(), data_order, env.rank, env.world_size,
                config.keep_checkpoints,
            )
    bar.close()
    for module in modules.values():
        module.eval()
    with opt.ema_weights():
        if sharded:
            _export_sharded(config, stage, mcfg, method, modules, env, out / "export")
        elif env.is_main:
            method.export(out / "export")
    if env.is_main:
        log.plot(out / "loss.png")
        log.close()
        _write_done(out, config, env, device, dataset.bench.meta.content_hash)
    return out


def checkpoint_roles(config: TrainConfig, method: TrainingMethod) -> list[torch.nn.Module]:
    """`gradient_checkpointing: true`: checkpointing on in every model of every role (returns those models); a
    stage with none that supports it is a one-line error."""
    models = enable_gradient_checkpointing(method.roles().values())
    if not models:
        raise ModelConfigError(
            f"gradient_checkpointing: true, but no model of stage {config.stage} supports it "
            f"({', '.join(type(m).__name__ for m in method.roles().values())}); set gradient_checkpointing: false"
        )
    return models


def _write_config(out: Path, config: TrainConfig, config_path: str | None, method: TrainingMethod, encoders, device) -> None:
    """config.json: the config, its file, and the number formats the run uses (autocast dtype; parameter dtypes of
    every role and of the encoders)."""
    roles = {name: precision.parameter_dtypes(module) for name, module in method.roles().items()}
    roles.update({f"encoders.{name}": precision.parameter_dtypes(getattr(encoders, name)) for name in ("vae", "text_encoder")})
    autocast = precision.autocast_dtype(config, device)
    dtypes = {"autocast": str(autocast).removeprefix("torch.") if autocast else None, "roles": roles}
    record = {"config": to_dict(config), "config_file": config_path, "dtypes": dtypes}
    (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")


def _validate(validation: ValidationSet, method, modules: dict[str, torch.nn.Module], opt: Optimization, kind: str) -> dict[str, float]:
    """The method's held-out validation with the EMA weights, every module in eval mode; training mode after."""
    for module in modules.values():
        module.eval()
    try:
        with opt.ema_weights():
            return validation.run(method, kind)
    finally:
        for module in modules.values():
            module.train()
def _flat(record: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_resume(out: Path, config: TrainConfig, env: distributed.DistEnv) -> None:
    """Refuse to resume a finished run, or one whose config.json differs from `config` in anything but steps
    (and out: a run folder may be moved)."""
    if is_finished(out):
        raise CheckpointError(f"{out} is finished ({DONE}): nothing to resume; to train it longer delete {DONE} "
                              "and pass steps=N, else start a new out=DIR")
    path = out / "config.json"
    if not path.is_file():
        return
    own = _flat(json.loads(path.read_text())["config"])
    now = _flat(json.loads(json.dumps(to_dict(config))))
    differ = [key for key in sorted(set(own) | set(now)) if own.get(key) != now.get(key) and key not in ("steps", "out")]
    if differ:
        listing = "; ".join(f"{key}: {own.get(key)!r} in the run, {now.get(key)!r} now" for key in differ[:4])
        raise CheckpointError(f"--resume continues {out} with its own config ({path}); these differ: {listing}. "
                              "Drop those overrides (or fix the YAML), or start a new out=DIR")
    if own.get("steps") != config.steps and env.is_main:
        print(f"note: the run was configured for {own.get('steps')} steps; resuming toward steps={config.steps}")


def _export_sharded(config, stage, mcfg, method, modules, env, directory: Path) -> None:
    """Export of FSDP2-sharded modules: all ranks gather full state dicts (to CPU, on rank 0); rank 0 rebuilds
    the method on the CPU, loads them and exports (FSDP2 modules cannot be unwrapped in place)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = {name: get_model_state_dict(module, options=options) for name, module in modules.items()}
    if env.is_main:
        cpu = torch.device("cpu")
        encoders = build_encoders(config.preset, config.model_path, config.init.get("encoders"), seed=config.seed, device=cpu)
        fresh = stage.factory(config, mcfg, encoders, cpu)
        for name, module in fresh.modules().items():
            module.load_state_dict(full[name])
            module.eval()
        fresh.load_state_dict(method.state_dict())
        fresh.export(directory)


def _write_done(out: Path, config: TrainConfig, env: distributed.DistEnv, device: torch.device, bench_hash: str | None) -> None:
    record = provenance.collect(
        device=str(device), stage=config.stage, steps=config.steps, config=to_dict(config),
        bench_content_hash=bench_hash, world_size=env.world_size,
    )
    (out / DONE).write_text(json.dumps(record, indent=2, default=str) + "\n")


def is_finished(out: Path) -> bool:
    return (Path(out) / DONE).is_file()
