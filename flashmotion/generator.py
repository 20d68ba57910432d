"""FlashMotion as flashbench Generators.

- `FlashMotion` ("flashmotion"): the few-step generator (4 steps, 1 network evaluation each).
- `WanAdapter` ("wan-adapter"): the multi-step teacher, Wan + trajectory adapter (50 UniPC steps with CFG).

Both take key=value args (strings from the CLI are typed by flashbench's spec parser): config (a YAML file of
these args, e.g. configs/tiny/flashmotion.yaml; explicit args win), preset, checkpoint (a folder from
flashmotion.checkpoint.save_checkpoint), model_path (a local diffusers Wan2.2-TI2V-5B folder), adapter
('resnet' | 'controlnet') and adapter_options (used for a fresh zero-initialised adapter when there is no
checkpoint), sampler ('few_step' | 'multistep'), steps, shift, guidance, solver, negative_prompt, device, dtype,
seed (random init of a checkpoint-less tiny backbone), trust_uncarded (load a checkpoint that has no card.json;
without it such a checkpoint is refused). The checkpoint is checked when the generator is built, not per sample.

A request whose size does not fit the model (frames 4k+1, sides multiples of the VAE stride x patch) is generated
at the next size up and cut/resized back to the requested (T, H, W). `denoise_seconds` times the sampling loop
only (after text/VAE encoding, before decoding), with device synchronisation.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flashbench.errors import GenerationError
from flashbench.generators.base import GeneratedVideo, GenerationRequest
from flashmotion.errors import ModelConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class GeneratorSettings:
    preset: str = "tiny"
    checkpoint: str | None = None
    model_path: str | None = None
    adapter: str = "resnet"
    adapter_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    sampler: str = "few_step"
    steps: int = 4
    shift: float = 5.0
    guidance: float = 5.0
    solver: str = "unipc"
    negative_prompt: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    trust_uncarded: bool = False

    @classmethod
    def from_args(cls, defaults: dict[str, Any], args: dict[str, Any]) -> GeneratorSettings:
        """Settings from class defaults < the YAML file `args["config"]` (e.g. configs/tiny/flashmotion.yaml) < args."""
        args = dict(args)
        config_path = args.pop("config", None)
        from_file = _read_yaml(config_path) if config_path is not None else {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((set(from_file) | set(args)) - known)
        if unknown:
            raise ModelConfigError(f"unknown generator arguments {unknown}; known: {sorted(known)}")
        values = {**defaults, **from_file, **args}
        for key, kind in (("steps", int), ("seed", int), ("shift", float), ("guidance", float)):
            value = values.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ModelConfigError(f"generator argument {key}={value!r} is not a number")
            try:
                values[key] = kind(value)
            except ValueError:
                raise ModelConfigError(f"generator argument {key}={value!r} is not {'a whole number' if kind is int else 'a number'}") from None
        settings = cls(**values)
        if not isinstance(settings.trust_uncarded, bool):
            raise ModelConfigError(f"trust_uncarded must be true or false, got {settings.trust_uncarded!r}")
        if settings.dtype not in DTYPES:
            raise ModelConfigError(f"unknown dtype {settings.dtype!r}; choose one of {sorted(DTYPES)}")
        return settings


def _read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    from flashbench.yaml_values import load_yaml

    path = Path(path)
    if not path.is_file():
        raise ModelConfigError(f"generator config {path} does not exist; see configs/<preset>/*.yaml")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:  # e.g. a !!python tag, which the safe loader refuses to construct
        raise ModelConfigError(f"{path} is not plain YAML ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path} must be a YAML mapping of generator arguments")
    return data


def _round_up(value: int, multiple: int, offset: int = 0) -> int:
    return math.ceil((value - offset) / multiple) * multiple + offset


class _TrajectoryGenerator:
    """Shared implementation; subclasses set `name` and the default sampler settings."""

    name = "flashmotion"
    defaults: dict[str, Any] = {}

    def __init__(self, **args: Any) -> None:
        from flashmotion.sampling import SamplerConfig

        self.settings = GeneratorSettings.from_args(self.defaults, args)
        s = self.settings
        self.sampler = SamplerConfig(kind=s.sampler, steps=s.steps, shift=s.shift, guidance=s.guidance, solver=s.solver)
        self._model = None
        if s.checkpoint is not None:  # a bad checkpoint fails here, once, not on every sample
            from flashmotion.checkpoint import allow_uncarded, read_config

            if s.trust_uncarded:
                allow_uncarded(s.checkpoint)
            read_config(s.checkpoint)

    @property
    def steps(self) -> int:
        """Sampler steps, for the leaderboard's Steps column."""
        return self.sampler.steps

    def load(self):
        """(encoders, role), built once on first use by flashmotion.models.build (as the trainer builds roles):
        from the checkpoint (its adapter, its saved backbone parts, the rest from model_path), else a fresh
        zero-initialised adapter on model_path's (or the seeded random tiny) backbone."""
        if self._model is None:
            from flashmotion.models.build import build_encoders, build_role

            s = self.settings
            dtype = DTYPES[s.dtype]
            common = {"preset": s.preset, "model_path": s.model_path, "checkpoint": s.checkpoint, "seed": s.seed,
                      "dtype": dtype, "device": s.device}
            encoders = build_encoders(**common)
            if s.checkpoint is not None:
                role = build_role(**common, adapter_checkpoint=s.checkpoint, trainable=())
            else:
                role = build_role(**common, adapter=s.adapter, adapter_options=s.adapter_options, trainable=())
            self._model = (encoders, role.eval())
        return self._model

    def _inputs(self, request: GenerationRequest, size: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """First frame (1, H', W', 3) and trajectory map (T', H', W', 3) at the model size (T', H', W')."""
        from flashbench.data.trajectories import render_condition
        from flashbench.video import resize_frames

        t, h, w = request.num_frames, request.height, request.width
        first = np.asarray(request.first_frame)
        if first.shape != (h, w, 3) or first.dtype != np.uint8:
            raise GenerationError(f"{request.sample_id}: first frame is {first.shape} {first.dtype}, expected ({h}, {w}, 3) uint8")
        if request.masks.shape[0] != t or tuple(request.masks.shape[2:]) != (h, w):
            raise GenerationError(f"{request.sample_id}: masks {request.masks.shape} do not match ({t}, N, {h}, {w})")
        condition = render_condition(request.masks, request.condition, request.boxes)
        model_t, model_h, model_w = size
        if (model_h, model_w) != (h, w):
            first = resize_frames(first[None], (model_h, model_w))[0]
            condition = resize_frames(condition, (model_h, model_w))
        pad = np.repeat(condition[-1:], model_t - t, axis=0)
        return first[None], np.concatenate([condition, pad], axis=0)

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        from flashbench.video import resize_frames
        from flashmotion.denoiser import TI2VDenoiser, with_first_frame
        from flashmotion.models.backbone import frames_to_tensor, tensor_to_frames
        from flashmotion.sampling import randn

        encoders, role = self.load()
        device = torch.device(self.settings.device)
        temporal, _ = encoders.vae_stride
        multiple = encoders.size_multiple
        size = (
            _round_up(request.num_frames, temporal, offset=1),
            _round_up(request.height, multiple),
            _round_up(request.width, multiple),
        )
        first, condition = self._inputs(request, size)
        with torch.inference_mode():
            image_latent = encoders.encode_video(frames_to_tensor(first).to(device))
            trajectory_latent = encoders.encode_video(frames_to_tensor(condition).to(device))
            text = encoders.encode_prompt([request.prompt])
            negative = encoders.encode_prompt([self.settings.negative_prompt]) if self.sampler.uses_cfg else None
            denoiser = TI2VDenoiser(role.transformer, image_latent, text, negative, role.adapter, trajectory_latent)
            generator = torch.Generator().manual_seed(int(request.seed))
            noise = randn(trajectory_latent.shape, generator, device)
            _synchronize(device)
            start = time.perf_counter()
            latents = self.sampler.sample(denoiser, noise, generator)
            _synchronize(device)
            seconds = time.perf_counter() - start
            video = encoders.decode_latents(with_first_frame(latents, image_latent))
        frames = tensor_to_frames(video)[: request.num_frames]
        if frames.shape[1:3] != (request.height, request.width):
            frames = resize_frames(frames, (request.height, request.width))
        extra = {"model_size": list(size), "sampler": dataclasses.asdict(self.sampler), "preset": self.settings.preset}
        return GeneratedVideo(frames=frames, nfe=denoiser.nfe, denoise_seconds=seconds, extra=extra)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class FlashMotion(_TrajectoryGenerator):
    """Few-step (4) trajectory-controllable I2V: DMD-distilled Wan2.2 + adapter, no CFG (NFE = steps)."""

    name = "flashmotion"
    defaults = {"sampler": "few_step", "steps": 4}


class WanAdapter(_TrajectoryGenerator):
    """Multi-step teacher: Wan2.2 + trajectory adapter, 50 UniPC steps with CFG (NFE = 2 x steps)."""

    name = "wan-adapter"
    defaults = {"sampler": "multistep", "steps": 50, "guidance": 5.0}


RECONSTRUCTION_SOURCES = ("video", "first-frame")


class VAEReconstruction:
    """The benchmark's real video through the backbone's VAE (encode, then decode; no network, nfe 0): the ceiling
    a latent generator on this VAE can reach, and what separates a VAE problem from a DiT problem on the leaderboard.
    With source=first-frame it reconstructs the `static` reference instead (the first frame repeated): static at
    the VAE's sharpness, the row a latent generator must beat to show it models motion.
    Args: preset, checkpoint (its saved VAE), model_path, source (video | first-frame), device, trust_uncarded."""

    name = "vae-reconstruction"
    steps = None

    def __init__(self, preset: str = "tiny", checkpoint: str | None = None, model_path: str | None = None,
                 source: str = "video", device: str = "cpu", trust_uncarded: bool = False) -> None:
        from flashmotion.checkpoint import allow_uncarded
        from flashmotion.models.build import build_encoders

        if checkpoint is None and model_path is None:
            raise ModelConfigError("vae-reconstruction needs checkpoint=DIR (a FlashMotion checkpoint with its VAE) or model_path=DIR")
        if source not in RECONSTRUCTION_SOURCES:
            raise ModelConfigError(f"vae-reconstruction source={source!r}: choose one of {', '.join(RECONSTRUCTION_SOURCES)}")
        if checkpoint is not None and trust_uncarded is True:
            allow_uncarded(checkpoint)
        self.source = source
        self.device = torch.device(device)
        self.encoders = build_encoders(preset=preset, model_path=model_path, checkpoint=checkpoint, device=device)
        self._bench = None

    def bind(self, bench) -> None:
        self._bench = bench

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        from flashmotion.models.backbone import frames_to_tensor, tensor_to_frames

        if self._bench is None:
            raise GenerationError("vae-reconstruction needs the benchmark: call bind_benchmark(generator, bench) first")
        frames = self._bench.read_video(self._bench.get(request.sample_id))
        if self.source == "first-frame":
            frames = np.repeat(frames[:1], len(frames), axis=0)
        temporal, _ = self.encoders.vae_stride
        padded = _round_up(len(frames), temporal, offset=1)
        frames = np.concatenate([frames, np.repeat(frames[-1:], padded - len(frames), axis=0)])
        start = time.perf_counter()
        with torch.inference_mode():
            video = self.encoders.decode_latents(self.encoders.encode_video(frames_to_tensor(frames).to(self.device)))
        seconds = time.perf_counter() - start
        return GeneratedVideo(frames=tensor_to_frames(video)[: request.num_frames], nfe=0, denoise_seconds=seconds)
