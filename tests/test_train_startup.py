"""Every shipped training config starts: for each `configs/*/*.yaml` with a `stage:` key, the stage is built with
that config's own flags and runs one optimisation step (or its export, for `steps: 0`) through the real loop.

Model: the config's preset; a GPU preset (weights from a folder) narrowed to a tiny width but with the preset's
structure (NARROW: the 5B preset keeps
its block type, patch size, 48 latent channels, per-token timesteps, its 4-level residual VAE with stride 4x16x16
and its 512 text tokens; heads, widths and the text encoder are CPU-sized and random-init, so the 5B configs need
no model_path: `random_teacher=true` lets its stages use the random-init teacher; depth is 6 of its 30 blocks, which keeps the discriminator's default feature blocks distinct and
the file under a minute: every module is per block, so no code path depends on the count). The CPU presets
(`tiny`, `toy`) are used as they are.

Flags kept as the config sets them: stage and method section, gradient checkpointing, EMA, betas, accumulation,
grad clip, lr schedule, distributed choice, the init inputs a pipeline run would give (the exports of the
producing stages, run with `steps: 0`, wired by `flashmotion.train.pipeline.resolve_inputs`), the validation of
configs that set `validate_every` (on a second benchmark). Shrunk: data to one 5-frame 64x64 clip per step
(batch_size 1), steps to 1, and a shared latent cache per preset.

Precision: configs of GPU presets (GPU_PRESETS) run `mixed_precision` as CUDA would resolve it: `auto` and `bf16`
become bf16 autocast **run on the CPU** (frozen roles in bf16, trainable weights float32), which works on CPU;
other presets run as on the CPU (`auto` = float32). config.json's dtype record is checked against that.

Distribution: `distributed: fsdp` configs run in a 1-process gloo group, so FSDP2 sharding of the stage's roles,
its gradient path and the DCP checkpoint are exercised in one process; `ddp` configs run as one process (their
gradient averaging is a no-op there; tests/test_train_ddp.py covers it under torchrun)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.utils.checkpoint

from flashbench.data.synthetic import build_synthetic
from flashmotion.checkpoint import read_config
from flashmotion.models.presets import PRESETS, TINY, BackbonePreset
from flashmotion.train import loop
from flashmotion.train.config import TrainConfig, from_dict, load_config, read_yaml
from flashmotion.train.logging import TrainLog
from flashmotion.train.loop import train
from flashmotion.train.pipeline import PRODUCES, plan, resolve_inputs

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("configs/*/*.yaml"))
TRAINING = [p for p in CONFIGS if "stage" in read_yaml(p)]
GENERATOR_CONFIGS = ("flashmotion", "wan_adapter")  # tests/test_flashmotion_generator.py parses these
GPU_PRESETS = tuple(name for name, p in PRESETS.items() if not p.self_contained)  # weights from a folder: GPU-sized
PLANS = {d.name: [name for name, _ in plan(d.name, d)] for d in sorted({p.parent for p in TRAINING})}  # real presets
FRAMES, SIZE = 5, 64


def narrow(preset: BackbonePreset) -> BackbonePreset:
    """`preset` at CPU size: the same patch, channels, switches and VAE levels; 6 blocks of 2 heads of 16, FFN 64,
    a 1-layer random-init UMT5 of width 32 over the offline ByT5 tokenizer, VAE base widths 8 / 16."""
    transformer = {**preset.transformer, "num_layers": 6, "num_attention_heads": 2, "attention_head_dim": 16,
                   "text_dim": 32, "freq_dim": 32, "ffn_dim": 64}
    vae = {**preset.vae, "base_dim": 8, "decoder_base_dim": 16}
    return dataclasses.replace(preset, transformer=transformer, vae=vae, text_encoder={**TINY.text_encoder, "d_model": 32},
                               tokenizer="byt5")


NARROW = {name: narrow(PRESETS[name]) for name in GPU_PRESETS}  # the CPU presets (tiny, toy) run as they are


@pytest.fixture(autouse=True)
def narrow_presets(monkeypatch):
    for name, preset in NARROW.items():
        monkeypatch.setitem(PRESETS, name, preset)
    monkeypatch.setattr(TrainLog, "plot", lambda self, path: None)  # loss.png: 2 s of matplotlib a run, not start-up


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The shared benchmark, caches and producer exports; one intra-op thread (CPU-width models are all overhead,
    and on shared cores a second OpenMP thread only spins: 10x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("startup")
    build_synthetic(root / "bench", videos_per_group=1, frames=FRAMES, size=(SIZE, SIZE), groups=("2",))
    build_synthetic(root / "val", videos_per_group=1, frames=FRAMES, size=(SIZE, SIZE), groups=("1",), seed=5)
    yield root
    torch.set_num_threads(threads)


def test_every_config_is_a_training_or_a_generator_config():
    assert len(TRAINING) >= 20  # 12 tiny + 12 toy + 9 Wan2.2-TI2V-5B training configs at the time of writing
    assert {p.stem for p in CONFIGS if p not in TRAINING} <= set(GENERATOR_CONFIGS)


def _overrides(path: Path, out: Path, root: Path) -> list[str]:
    data = read_yaml(path)
    preset = data.get("preset", "tiny")
    overrides = [f"out={out}", f"data.bench={root / 'bench'}", f"data.frames={FRAMES}", f"data.size=[{SIZE},{SIZE}]",
                 "batch_size=1", f"steps={min(int(data.get('steps', 100)), 1)}", f"data.cache={root / ('cache-' + preset)}"]
    if data.get("validate_every"):
        overrides.append(f"data.val_bench={root / 'val'}")  # a held-out benchmark, as `flashmotion pipeline --val-bench`
    if preset in GPU_PRESETS:
        overrides.append("random_teacher=true")  # the narrowed random-init stand-in for model_path's teacher
        if data.get("mixed_precision", "auto") in ("auto", "bf16"):
            overrides.append("mixed_precision=bf16")  # what `auto` is on CUDA, run on the CPU
    return overrides


def _run(path: Path, out: Path, root: Path, steps: int | None = None) -> Path:
    """Train `path` (shrunk, see the module docstring) into `out`, with the inputs `flashmotion pipeline` gives it:
    the exports of the producing runs before it in the pipeline's plan (none for a run outside the plan)."""
    overrides = _overrides(path, out, root) + ([f"steps={steps}"] if steps is not None else [])
    data = read_yaml(path)
    runs = PLANS[path.parent.name]
    before = runs[: runs.index(path.stem)] if path.stem in runs else []
    defaults = {PRODUCES[name]: str(_export(path.parent / f"{name}.yaml", root)) for name in before if name in PRODUCES}
    declared = data.get("init") or {}
    for value in declared.values():  # "@run": that run's export
        if isinstance(value, str) and value.startswith("@"):
            _export(path.parent / f"{value[1:]}.yaml", root)
    inputs = resolve_inputs(defaults, declared, root / path.parent.name, path.stem)
    config = load_config(path, overrides + [f"init.{key}={value}" for key, value in inputs.items()])
    if config.distributed == "fsdp" and config.steps > 0:  # a 1-process group: FSDP2 shards the roles, DCP saves
        out.parent.mkdir(parents=True, exist_ok=True)
        dist.init_process_group("gloo", init_method=f"file://{out.parent / (out.name + '.store')}", rank=0, world_size=1)
    try:
        return train(config, config_path=str(path))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _export(path: Path, root: Path) -> Path:
    """The export of producing config `path` run with steps: 0, once per module, where the pipeline puts it."""
    out = root / path.parent.name / path.stem
    if not (out / "done.json").is_file():
        _run(path, out, root, steps=0)
    return out / "export"


def _trained(path: Path, root: Path) -> Path:
    out = root / "runs" / path.parent.name / path.stem
    return out if (out / "done.json").is_file() else _run(path, out, root)


@pytest.fixture()
def checkpoint_calls(monkeypatch) -> list[torch.nn.Module]:
    """The modules torch.utils.checkpoint.checkpoint recomputes (diffusers calls it by its module path)."""
    calls: list[torch.nn.Module] = []
    original = torch.utils.checkpoint.checkpoint

    def spy(function, *args, **kwargs):
        calls.append(getattr(function, "__self__", function))
        return original(function, *args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    return calls


@pytest.fixture()
def methods(monkeypatch) -> list:
    """The method objects the loop builds (captured where it turns on gradient checkpointing)."""
    captured: list = []
    original = loop.checkpoint_roles

    def capture(config, method):
        captured.append(method)
        return original(config, method)

    monkeypatch.setattr(loop, "checkpoint_roles", capture)
    return captured


def graph_blocks(method) -> list[torch.nn.Module]:
    """The blocks one training step backpropagates through: the trained transformers', and for an adapter stage
    the adapter's, the frozen transformer's under it and the discriminator backbone's up to its deepest feature
    block (the adapter's GAN loss passes through them)."""
    if method.name == "stage3_hybrid":
        blocks = [*method.generator.transformer.blocks, *method.generator.adapter.blocks]
        if method.discriminator is not None:
            blocks += method.discriminator.backbone.blocks[: method.discriminator.feature_blocks[-1] + 1]
        return blocks
    if method.name == "stage1_adapter":
        return [*method.slow.transformer.blocks, *method.slow.adapter.blocks]
    trained = [m for m in method.modules().values() if any(p.requires_grad for p in m.parameters())]
    return [block for role in trained for block in role.transformer.blocks]


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_starts_and_runs_one_step(path, workdir, checkpoint_calls, methods):
    out = _trained(path, workdir)
    assert (out / "done.json").is_file()
    record = json.loads((out / "config.json").read_text())
    config = from_dict(TrainConfig, record["config"])
    assert read_config(out / "export")["preset"] == config.preset  # the generator checkpoint loads
    assert record["config"]["gradient_checkpointing"] == config.gradient_checkpointing
    assert record["dtypes"]["autocast"] == ("bfloat16" if config.mixed_precision == "bf16" else None)
    frozen = "bfloat16" if config.mixed_precision == "bf16" else "float32"
    assert record["dtypes"]["roles"]["encoders.vae"].keys() == {"float32"}
    for name, dtypes in record["dtypes"]["roles"].items():
        assert set(dtypes) <= {frozen, "float32"}, name
    if config.steps == 0:
        assert not (out / "log.csv").exists()
        return
    with (out / "log.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    losses = {key: float(value) for key, value in row.items() if key.startswith("loss/") and value != ""}
    assert losses and all(math.isfinite(v) for v in losses.values()), row
    assert any(float(value) > 0 for key, value in row.items() if key.startswith("grad_norm/"))  # a real update
    if config.distributed == "fsdp":
        assert (out / "checkpoints" / "step-00000001" / "dcp").is_dir()  # sharded: torch.distributed.checkpoint
    if config.gradient_checkpointing:  # every block gradients traverse is recomputed in the backward pass
        method = methods[-1]  # the run's own (the producers' exports were built before it)
        recomputed = {id(m) for m in checkpoint_calls}
        blocks = graph_blocks(method)
        assert len(blocks) >= 6 and all(id(b) in recomputed for b in blocks)
    else:
        assert not checkpoint_calls


def test_stage3_config_json_records_the_roles_dtypes(workdir):
    """The 5B stage-3 config's FastGenerator transformer and discriminator backbone are frozen bf16 (diffusers keeps
    a few of their modules float32), the adapter and the discriminator head float32 (code and config agree)."""
    path = REPO / "configs" / "wan2.2-ti2v-5b" / "stage3_hybrid.yaml"
    out = _trained(path, workdir)
    roles = json.loads((out / "config.json").read_text())["dtypes"]["roles"]
    from flashmotion.models.adapters import ResNetAdapter
    from flashmotion.models.build import random_transformer
    from flashmotion.models.discriminator import TrajectoryDiscriminator

    transformer = random_transformer("wan2.2-ti2v-5b")
    adapter = ResNetAdapter.for_transformer(transformer, **read_yaml(path.parent / "stage1_adapter.yaml")["method"]["adapter_options"])
    head = TrajectoryDiscriminator(transformer).classifier
    kept = sum(p.numel() for n, p in transformer.named_parameters()
               if any(part in transformer._keep_in_fp32_modules for part in n.split(".")))
    total = sum(p.numel() for p in transformer.parameters())
    adapter_params = sum(p.numel() for p in adapter.parameters())
    assert roles["generator"] == {"bfloat16": total - kept, "float32": kept + adapter_params}
    assert roles["discriminator_backbone"] == {"bfloat16": total - kept, "float32": kept}
    assert roles["discriminator"] == {"float32": sum(p.numel() for p in head.parameters())}
