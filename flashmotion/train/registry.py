"""Stages by name. Each method module registers a `Stage` at import; `get_stage(name)` imports it on demand.

A stage's `factory(train, config, encoders, device)` builds its roles with flashmotion.models.build (from
`train.preset`, `train.model_path` and the named input checkpoints `train.init`) and returns the method object
`Method(config, encoders, **roles)`. `inputs` says what the data pipeline must produce for it: "pixels" (the
video, stage0_vae: the VAE trains, so nothing is encoded), "latents" (encoded latents + conditioning without a
trajectory map) or "trajectory" (latents + conditioning + trajectory latent).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from flashmotion.errors import ModelConfigError

INPUTS = ("pixels", "latents", "trajectory")

# Where each stage's module lives (imported lazily, so a stage's heavy imports cost only its users).
STAGE_MODULES: dict[str, str] = {
    "stage0_vae": "flashmotion.train.stage0_vae",
    "stage0_dit": "flashmotion.train.stage0_dit",
    "stage1_adapter": "flashmotion.train.stage1_adapter",
    "stage2_dmd": "flashmotion.train.stage2_dmd",
    "stage3_hybrid": "flashmotion.train.stage3_hybrid",
    "lcm": "baselines.lcm",
}


@dataclass(frozen=True)
class Stage:
    name: str
    config_cls: type
    factory: Callable[..., Any]  # (train: TrainConfig, config, encoders: Encoders, device: torch.device) -> method
    inputs: str = "trajectory"

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise ModelConfigError(f"stage {self.name}: inputs must be one of {INPUTS}, got {self.inputs!r}")


_STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    _STAGES[stage.name] = stage
    return stage


def get_stage(name: str) -> Stage:
    """The registered stage `name` (importing its module), or a one-line error listing the known ones."""
    if name not in _STAGES and name in STAGE_MODULES:
        try:
            importlib.import_module(STAGE_MODULES[name])
        except ModuleNotFoundError as e:
            if e.name != STAGE_MODULES[name]:
                raise
            raise ModelConfigError(f"stage {name!r} is not available in this checkout ({STAGE_MODULES[name]} is missing)") from None
    if name not in _STAGES:
        raise ModelConfigError(f"unknown stage {name!r}; choose one of {sorted(STAGE_MODULES)}")
    return _STAGES[name]


def role_kwargs(train: Any, device: torch.device) -> dict[str, Any]:
    """The build_role/build_encoders keyword arguments every stage shares: preset, model_path, seed, device."""
    return {"preset": train.preset, "model_path": train.model_path, "seed": train.seed, "device": device}
