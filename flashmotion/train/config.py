"""Training configs: YAML -> dataclasses, with `key=value` overrides (dotted keys) and one-line errors.

A config file holds the common `TrainConfig` fields, a `data:` section (`DataConfig`), an `init:` mapping of
named input checkpoints (e.g. `encoders`, `teacher`, `adapter`, `generator`: what each stage reads is in its
module docstring) and a `method:` section validated by the stage's own dataclass (flashmotion.train.registry).
Unknown keys anywhere, wrong types and bad values raise ModelConfigError naming the key.

Override values are parsed as YAML scalars (`steps=20`, `data.size=[32,32]`, `ema=null`, `method.adapter=resnet`).
Files and overrides read floats as YAML 1.2 does: `2e-4` is a float (PyYAML's YAML 1.1 resolver wants `2.0e-4`
and would read it as a string).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flashbench.yaml_values import load_yaml
from flashmotion.errors import ModelConfigError

MIXED_PRECISION = ("auto", "bf16", "fp32")
DISTRIBUTED = ("ddp", "fsdp")
LR_SCHEDULES = ("constant", "cosine")
CONDITION_KINDS = ("mask", "box")
RANDOM_TEACHER_REFUSED = ("stage1_adapter",)  # stages that would silently train against a random-init teacher


@dataclass
class DataConfig:
    """bench: FlashBench benchmark folder; frames: 4k+1 frames per clip; size: [H, W] of the model input;
    random_crop: crop a random window of `min_crop` to 1 of each side (keeping the target aspect) before resizing
    (off when `cache` is set: cached latents need deterministic inputs); cache: folder of the latent/embedding
    cache (null: no cache); native_crop: with random_crop, a `size` window at the benchmark's own pixel scale
    (no resize: the VAE's convolutions see objects at the size they are scored at); condition: the trajectory map kind (mask | box) unless the method picks one per step (stage 1's
curriculum); negative_prompt: the CFG negative text; val_bench: a held-out benchmark for the stage's validation
(`validate_every`; flashmotion.train.validation)."""

    bench: str | None = None
    frames: int = 9
    size: list[int] = field(default_factory=lambda: [32, 32])
    random_crop: bool = True
    min_crop: float = 0.8
    native_crop: bool = False
    cache: str | None = None
    condition: str = "mask"
    negative_prompt: str = ""
    val_bench: str | None = None

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise ModelConfigError(f"data.size must be [H, W] with positive sides, got {self.size}")
        if self.frames < 1 or (self.frames - 1) % 4:
            raise ModelConfigError(f"data.frames must be 4k+1 (1, 5, 9, 17, ...), got {self.frames}")
        if self.condition not in CONDITION_KINDS:
            raise ModelConfigError(f"data.condition must be one of {CONDITION_KINDS}, got {self.condition!r}")
        if not 0 < self.min_crop <= 1:
            raise ModelConfigError(f"data.min_crop must be in (0, 1], got {self.min_crop}")


@dataclass
class TrainConfig:
    """stage: registry name; preset: backbone preset; model_path: local Wan2.2-TI2V-5B-Diffusers folder; out: run
    folder (checkpoints/, log.csv, loss.png, export/); steps: optimizer steps (0: build the method and export, no
training); batch_size: GLOBAL batch per step
    (split over ranks; times `accumulation` micro-batches); lr / weight_decay / betas / warmup_steps /
    lr_schedule: AdamW and its LR schedule (the same for every optimizer unless `method` overrides); grad_clip:
    max global grad norm per optimizer (null: none); ema: EMA decay of the trainable parameters (null: off; the
    export uses the EMA weights); gradient_checkpointing: recompute the blocks of every role's models in the
    backward pass, frozen ones included (flashmotion.train.loop.checkpoint_roles); mixed_precision: auto = bf16
    autocast on CUDA, fp32 on CPU (frozen roles follow it: flashmotion.train.precision); distributed: ddp
    (gradient averaging) or fsdp (FSDP2 fully_shard per role) under torchrun; checkpoint_every / keep_checkpoints:
    resumable checkpoints; log_every: CSV rows; validate_every / validate_clips: the stage's held-out
    validation every N steps (0: off) on the first clips of data.val_bench (flashmotion.train.validation); seed:
    base seed (rank r uses seed + r); random_teacher: let a
    stage that needs a teacher (RANDOM_TEACHER_REFUSED) train on a random-init one when neither init.teacher nor
    model_path gives it (smoke tests of the tiny preset; off: `check_teacher` refuses to train it)."""

    stage: str
    preset: str = "tiny"
    model_path: str | None = None
    out: str = "runs/train"
    steps: int = 100
    batch_size: int = 1
    accumulation: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    grad_clip: float | None = 1.0
    ema: float | None = None
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"
    distributed: str = "ddp"
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 1
    validate_every: int = 0
    validate_clips: int = 4
    random_teacher: bool = False
    init: dict[str, str | None] = field(default_factory=dict)  # null: drop a pipeline default
    data: DataConfig = field(default_factory=DataConfig)
    method: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.init = {key: value for key, value in self.init.items() if value is not None}
        checks = [
            (self.steps >= 0, f"steps must be >= 0 (0: export only), got {self.steps}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.accumulation >= 1, f"accumulation must be >= 1, got {self.accumulation}"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.validate_every >= 0, f"validate_every must be >= 0 (0: off), got {self.validate_every}"),
            (self.validate_every % self.log_every == 0, f"validate_every ({self.validate_every}) must be a multiple of "
             f"log_every ({self.log_every}): validation values go into the log rows"),
            (self.validate_clips >= 1, f"validate_clips must be >= 1, got {self.validate_clips}"),
            (self.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}"),
            (self.distributed in DISTRIBUTED, f"distributed must be one of {DISTRIBUTED}, got {self.distributed!r}"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"),
            (self.ema is None or 0 < self.ema < 1, f"ema must be a decay in (0, 1) or null, got {self.ema}"),
            (len(self.betas) == 2, f"betas must be [beta1, beta2], got {self.betas}"),
            *((not str(v).startswith("@"), f"init.{k} = {v} names a pipeline run: run it through `flashmotion pipeline` "
               f"or pass init.{k}=DIR") for k, v in self.init.items()),
        ]
        for ok, message in checks:
            if not ok:
                raise ModelConfigError(message)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """`value` checked against the annotation `tp` (ints accepted for floats, nested dataclasses built)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ModelConfigError as e:
                errors.append(str(e))
        raise ModelConfigError(errors[0])
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ModelConfigError(f"{where} must be a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ModelConfigError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ModelConfigError(f"{where} must be a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, key_tp, where): _coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ModelConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Instance of dataclass `cls` from `data`; one-line ModelConfigError on unknown keys, missing required
    fields or wrong types."""
    if not isinstance(data, dict):
        raise ModelConfigError(f"{where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = "" if where == "config" else f"{where}."
        raise ModelConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; known in {where}: {', '.join(sorted(fields))}")
    missing = [
        name for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ModelConfigError(f"{where} is missing required key(s) {', '.join(missing)}")
    values = {k: _coerce(v, hints[k], k if where == "config" else f"{where}.{k}") for k, v in data.items()}
    return cls(**values)


def check_teacher(config: TrainConfig) -> None:
    """Refuse to train a stage of RANDOM_TEACHER_REFUSED on a random-init teacher unless random_teacher is set."""
    if (config.stage in RANDOM_TEACHER_REFUSED and "teacher" not in config.init and config.model_path is None
            and not config.random_teacher):
        raise ModelConfigError(f"{config.stage} needs a teacher: pass init.teacher=DIR (the stage0_dit export) or "
                               "model_path=DIR; random_teacher=true trains on a random-init one (smoke tests only)")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], yaml value)."""
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ModelConfigError(f"override {text!r} must look like key=value or section.key=value")
    try:
        return key.split("."), load_yaml(value) if value != "" else ""
    except yaml.YAMLError as e:  # e.g. a !!python tag, which the safe loader refuses to construct
        raise ModelConfigError(f"override {key}= is not a plain YAML value ({' '.join(str(e).split())[:200]})") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`data` with each 'dotted.key=value' set (sections are created; unknown keys fail at validation)."""
    data = dict(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            child = dict(child) if isinstance(child, dict) else {}
            node[key] = child
            node = child
        node[keys[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelConfigError(f"training config {path} does not exist; see configs/<preset>/<stage>.yaml")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:  # also a !!python tag, which the safe loader refuses to construct
        raise ModelConfigError(f"{path} is not plain YAML ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path} must be a YAML mapping of training settings")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None) -> TrainConfig:
    """TrainConfig from the YAML at `path` (or `base`), with overrides applied, and its `method` section
    validated by the stage's dataclass (kept as a dict in `TrainConfig.method`; `method_config` gives the object)."""
    data = read_yaml(path) if path is not None else dict(base or {})
    config = from_dict(TrainConfig, apply_overrides(data, overrides or []))
    method_config(config)  # validate now: a bad method key fails before any model is built
    return config


def method_config(config: TrainConfig) -> Any:
    """The stage's method dataclass built from `config.method`."""
    from flashmotion.train.registry import get_stage

    return from_dict(get_stage(config.stage).config_cls, config.method, "method")
