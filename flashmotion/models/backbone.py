"""Wan2.2 TI2V backbone through diffusers: transformer + VAE + UMT5 text encoder, and a block-level DiT forward.

The block-level forward (`embed` -> `iter_blocks` -> `unembed`) re-uses the diffusers modules of
`WanTransformer3DModel` (patch_embedding, rope, condition_embedder, blocks, norm_out/proj_out) in the order of
`WanTransformer3DModel.forward` (diffusers 0.42.1), so adapters can add one residual per block and the
discriminator can read block features without hooks or monkey-patching. tests/test_flashmotion_backbone.py checks
that `dit_forward` equals `WanTransformer3DModel.forward` bit for bit.

Image-to-video conditioning follows diffusers' Wan2.2-TI2V path (`expand_timesteps=True`): the first latent frame
is the clean, normalised VAE latent of the input image, and its tokens get timestep 0 (`token_timesteps`).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from torch import nn

from flashbench.errors import WeightsError
from flashmotion.errors import ModelConfigError
from flashmotion.models.presets import BackbonePreset, get_preset

SUBFOLDERS = ("transformer", "vae", "text_encoder", "tokenizer")


@dataclass
class DiTInputs:
    """Everything the DiT blocks need, computed once per forward.

    tokens: (B, N, D) patch-embedded latents; context: (B, L, D) projected text; temb: (B, N, D) per-token time
    embedding (or (B, D) with a per-sample timestep); timestep_proj: (B, N, 6, D) (or (B, 6, D)); rotary: RoPE
    (cos, sin); grid: (frames, height, width) of the token grid."""

    tokens: torch.Tensor
    context: torch.Tensor
    temb: torch.Tensor
    timestep_proj: torch.Tensor
    rotary: tuple[torch.Tensor, torch.Tensor]
    grid: tuple[int, int, int]


def embed(
    transformer: WanTransformer3DModel,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    text_embeds: torch.Tensor,
) -> DiTInputs:
    """Patch-embed `latents` (B, C, F, H, W) and embed `timestep` ((B,) or per-token (B, N)) and `text_embeds`."""
    _, _, num_frames, height, width = latents.shape
    p_t, p_h, p_w = transformer.config.patch_size
    grid = (num_frames // p_t, height // p_h, width // p_w)
    rotary = transformer.rope(latents)
    tokens = transformer.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()
    if timestep.ndim == 2:
        ts_seq_len = timestep.shape[1]
        timestep = timestep.flatten()
    else:
        ts_seq_len = None
    temb, timestep_proj, context, _ = transformer.condition_embedder(
        timestep, text_embeds, None, timestep_seq_len=ts_seq_len
    )
    if ts_seq_len is not None:
        timestep_proj = timestep_proj.unflatten(2, (6, -1))
    else:
        timestep_proj = timestep_proj.unflatten(1, (6, -1))
    return DiTInputs(tokens, context, temb, timestep_proj, rotary, grid)


def run_block(transformer: WanTransformer3DModel, block: nn.Module, hidden: torch.Tensor, inputs: DiTInputs) -> torch.Tensor:
    """One DiT block, with the transformer's gradient checkpointing when it is enabled and grads are on."""
    if torch.is_grad_enabled() and transformer.gradient_checkpointing:
        return transformer._gradient_checkpointing_func(block, hidden, inputs.context, inputs.timestep_proj, inputs.rotary)
    return block(hidden, inputs.context, inputs.timestep_proj, inputs.rotary)


def iter_blocks(
    transformer: WanTransformer3DModel,
    inputs: DiTInputs,
    residuals: Sequence[torch.Tensor] | None = None,
    num_blocks: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the hidden states after each of the first `num_blocks` blocks (all by default); `residuals[i]`
    (B, N, D), when given, is added to the output of block i before it is yielded and passed on."""
    blocks = transformer.blocks if num_blocks is None else transformer.blocks[:num_blocks]
    if residuals is not None and len(residuals) != len(transformer.blocks):
        raise ModelConfigError(f"got {len(residuals)} adapter residuals for {len(transformer.blocks)} DiT blocks")
    hidden = inputs.tokens
    for i, block in enumerate(blocks):
        hidden = run_block(transformer, block, hidden, inputs)
        if residuals is not None:
            hidden = hidden + residuals[i]
        yield hidden


def unembed(transformer: WanTransformer3DModel, hidden: torch.Tensor, inputs: DiTInputs) -> torch.Tensor:
    """Output norm, projection and unpatchify: (B, N, D) -> (B, C, F, H, W)."""
    temb = inputs.temb
    if temb.ndim == 3:
        shift, scale = (transformer.scale_shift_table.unsqueeze(0).to(temb.device) + temb.unsqueeze(2)).chunk(2, dim=2)
        shift, scale = shift.squeeze(2), scale.squeeze(2)
    else:
        shift, scale = (transformer.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
    shift, scale = shift.to(hidden.device), scale.to(hidden.device)
    hidden = (transformer.norm_out(hidden.float()) * (1 + scale) + shift).type_as(hidden)
    hidden = transformer.proj_out(hidden)
    p_t, p_h, p_w = transformer.config.patch_size
    f, h, w = inputs.grid
    hidden = hidden.reshape(hidden.shape[0], f, h, w, p_t, p_h, p_w, -1)
    return hidden.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def dit_forward(
    transformer: WanTransformer3DModel,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    text_embeds: torch.Tensor,
    adapter: nn.Module | None = None,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """The transformer's prediction for `latents`, with `adapter(condition, inputs)` residuals added per block.

    Without an adapter this equals `transformer(latents, timestep, text_embeds).sample` exactly."""
    inputs = embed(transformer, latents, timestep, text_embeds)
    residuals = adapter(condition, inputs) if adapter is not None else None
    hidden = inputs.tokens
    for block_output in iter_blocks(transformer, inputs, residuals):
        hidden = block_output
    return unembed(transformer, hidden, inputs)


def token_timesteps(timestep: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Per-token timesteps (B, F*H*W) for TI2V: `timestep` (B,) everywhere except the first latent frame (0)."""
    f, h, w = grid
    mask = torch.ones(f, h, w, dtype=torch.float32, device=timestep.device)
    mask[0] = 0
    return mask.flatten()[None] * timestep.float()[:, None]


def _build_tokenizer(kind: str):
    if kind != "byt5":
        raise ModelConfigError(f"unknown offline tokenizer {kind!r}; only 'byt5' can be built without downloads")
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


@dataclass
class Conditioning:
    """A batched conditioning record, batch-first.

    image_latent: (B, C, 1, h, w) clean normalised VAE latent of the first frame; text_embeds: (B, L, D_text);
    negative_embeds: (B, L, D_text) for classifier-free guidance, or None; trajectory_latent: (B, C, F, h, w) VAE
    latent of the trajectory-map video, or None (no adapter input)."""

    image_latent: torch.Tensor
    text_embeds: torch.Tensor
    negative_embeds: torch.Tensor | None = None
    trajectory_latent: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.image_latent.shape[0])

    def _map(self, fn) -> Conditioning:
        return Conditioning(*(None if v is None else fn(v) for v in (
            self.image_latent, self.text_embeds, self.negative_embeds, self.trajectory_latent)))

    def select(self, index: int | slice | Sequence[int] | torch.Tensor) -> Conditioning:
        """Rows `index` (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        elif not isinstance(index, slice):
            index = torch.as_tensor(index, dtype=torch.long)
        return self._map(lambda v: v[index.to(v.device) if isinstance(index, torch.Tensor) else index])

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Conditioning:
        return self._map(lambda v: v.to(device=device, dtype=dtype))

    @staticmethod
    def cat(items: Sequence[Conditioning]) -> Conditioning:
        """Rows of `items` stacked; optional fields must be present in all items or in none."""
        fields = ("image_latent", "text_embeds", "negative_embeds", "trajectory_latent")
        values = []
        for name in fields:
            parts = [getattr(c, name) for c in items]
            if all(p is None for p in parts):
                values.append(None)
            elif any(p is None for p in parts):
                raise ModelConfigError(f"cannot batch conditionings where only some have {name}")
            else:
                values.append(torch.cat(parts, dim=0))
        return Conditioning(*values)


class Encoders(nn.Module):
    """The frozen encoders every role shares: `vae` (AutoencoderKLWan), `text_encoder` (UMT5EncoderModel) and
    `tokenizer`, with the latent geometry. `patch_size` is the DiT's (it sets the size multiple)."""

    def __init__(
        self,
        vae: AutoencoderKLWan,
        text_encoder: nn.Module,
        tokenizer,
        max_sequence_length: int,
        preset: str,
        patch_size: Sequence[int] = (1, 2, 2),
    ) -> None:
        super().__init__()
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.max_sequence_length = max_sequence_length
        self.preset = preset
        self.patch_size = tuple(int(p) for p in patch_size)

    # --- geometry -----------------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @property
    def vae_stride(self) -> tuple[int, int]:
        """(temporal, spatial) compression of the VAE, including its patchify."""
        cfg = self.vae.config
        temporal = 2 ** sum(bool(d) for d in cfg.temperal_downsample)
        spatial = (cfg.patch_size or 1) * 2 ** (len(cfg.dim_mult) - 1)
        return temporal, spatial

    @property
    def size_multiple(self) -> int:
        """Heights and widths must be multiples of this (VAE stride x DiT patch)."""
        return self.vae_stride[1] * self.patch_size[1]

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, F, h, w) of the latent of a (num_frames, height, width) video; one-line error if it does not fit."""
        t, s = self.vae_stride
        if (num_frames - 1) % t or height % self.size_multiple or width % self.size_multiple:
            raise ModelConfigError(
                f"video {num_frames}x{height}x{width} does not fit the VAE: frames must be {t}k+1 and sizes "
                f"multiples of {self.size_multiple}"
            )
        return self.latent_channels, (num_frames - 1) // t + 1, height // s, width // s

    # --- encoders -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, max_sequence_length, text_dim) UMT5 states, zero past each prompt's length (as WanPipeline)."""
        device = self.text_encoder.device
        tokens = self.tokenizer(
            [" ".join(p.split()) for p in prompts],
            padding="max_length",
            max_length=self.max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        mask = tokens.attention_mask.to(device)
        states = self.text_encoder(tokens.input_ids.to(device), mask).last_hidden_state
        return states * mask[..., None].to(states.dtype)

    def _latent_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, self.latent_channels, 1, 1, 1)
        mean = torch.tensor(self.vae.config.latents_mean, device=like.device, dtype=like.dtype).view(shape)
        std = torch.tensor(self.vae.config.latents_std, device=like.device, dtype=like.dtype).view(shape)
        return mean, std

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents -> (z - mean) / std with Wan's per-channel statistics."""
        mean, std = self._latent_stats(latents)
        return (latents - mean) / std

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> normalised latents (B, C, F, h, w) (posterior mode, Wan's latent stats)."""
        vae_param = next(self.vae.parameters())
        latents = self.vae.encode(video.to(vae_param.device, vae_param.dtype)).latent_dist.mode()
        return self.normalize_latents(latents).float()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, C, F, h, w) -> video (B, 3, T, H, W) in [-1, 1]."""
        vae_param = next(self.vae.parameters())
        latents = latents.to(vae_param.device, vae_param.dtype)
        mean, std = self._latent_stats(latents)
        return self.vae.decode(latents * std + mean).sample.float()

    @torch.no_grad()
    def conditioning(
        self,
        first_frames: torch.Tensor,
        prompts: Sequence[str],
        trajectory_video: torch.Tensor | None = None,
        negative_prompt: str | Sequence[str] | None = None,
    ) -> Conditioning:
        """Encode a batch: first_frames (B, 3, H, W) or (B, 3, 1, H, W) in [-1, 1] (encoded as a 1-frame video, as
        the generators do), prompts (B strings), trajectory_video (B, 3, T, H, W) in [-1, 1], negative_prompt (one
        string for all rows, or B strings; None: no CFG branch)."""
        if first_frames.ndim == 4:
            first_frames = first_frames[:, :, None]
        if len(prompts) != first_frames.shape[0]:
            raise ModelConfigError(f"got {len(prompts)} prompts for {first_frames.shape[0]} first frames")
        negative = None
        if negative_prompt is not None:
            negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
            negative = self.encode_prompt(negatives)
        trajectory = self.encode_video(trajectory_video) if trajectory_video is not None else None
        return Conditioning(self.encode_video(first_frames), self.encode_prompt(prompts), negative, trajectory)


class WanBackbone(Encoders):
    """Wan2.2 TI2V: `transformer` (WanTransformer3DModel) on top of the `Encoders` (`vae`, `text_encoder`,
    `tokenizer`). Build with `WanBackbone.build(preset, path)`; `encoders()` gives the shared encoder part."""

    def __init__(
        self,
        transformer: WanTransformer3DModel,
        vae: AutoencoderKLWan,
        text_encoder: nn.Module,
        tokenizer,
        max_sequence_length: int,
        preset: str,
    ) -> None:
        super().__init__(vae, text_encoder, tokenizer, max_sequence_length, preset, transformer.config.patch_size)
        self.transformer = transformer

    def encoders(self) -> Encoders:
        """An `Encoders` sharing (not copying) this backbone's VAE, text encoder and tokenizer."""
        return Encoders(self.vae, self.text_encoder, self.tokenizer, self.max_sequence_length, self.preset, self.patch_size)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_preset_config(cls, preset: BackbonePreset, seed: int = 0) -> WanBackbone:
        """Random-init backbone from a preset's configs (the tiny preset; the 5B needs pretrained weights).
        The transformer is drawn first after seeding (flashmotion.models.build.random_transformer relies on it)."""
        if preset.text_encoder is None or preset.tokenizer is None:
            raise ModelConfigError(f"preset {preset.name!r} has no random-init text encoder; load it from a folder")
        from transformers import UMT5Config, UMT5EncoderModel

        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG state
            torch.manual_seed(seed)
            transformer = WanTransformer3DModel.from_config(preset.transformer)
            vae = AutoencoderKLWan.from_config(preset.vae)
            text_encoder = UMT5EncoderModel(UMT5Config(**preset.text_encoder))
        backbone = cls(transformer, vae, text_encoder, _build_tokenizer(preset.tokenizer), preset.max_sequence_length, preset.name)
        return backbone.eval()

    @classmethod
    def from_pretrained(
        cls, path: str | Path, preset: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
    ) -> WanBackbone:
        """Load a local diffusers-format folder (transformer/, vae/, text_encoder/, tokenizer/), as published
        for Wan-AI/Wan2.2-TI2V-5B-Diffusers. The transformer and text encoder take `dtype`; the VAE stays float32."""
        root = Path(path)
        missing = [name for name in SUBFOLDERS if not (root / name).is_dir()]
        if missing:
            raise WeightsError(
                f"{root} is not a diffusers Wan folder (missing {', '.join(missing)}); download "
                "Wan-AI/Wan2.2-TI2V-5B-Diffusers there or point model_path at one"
            )
        spec = get_preset(preset)
        parts = {name: load_component(root, name, dtype) for name in SUBFOLDERS}
        backbone = cls(**parts, max_sequence_length=spec.max_sequence_length, preset=preset)
        return backbone.to(device).eval()

    @classmethod
    def build(
        cls,
        preset: str,
        path: str | Path | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> WanBackbone:
        """`path` given: load it (any preset); otherwise random init (tiny only)."""
        if path is not None:
            return cls.from_pretrained(path, preset, dtype=dtype, device=device)
        spec = get_preset(preset)
        if spec.text_encoder is None:
            raise WeightsError(
                f"preset {preset!r} needs pretrained weights: pass model_path=DIR (a local copy of "
                "Wan-AI/Wan2.2-TI2V-5B-Diffusers)"
            )
        backbone = cls.from_preset_config(spec, seed=seed)
        if dtype != torch.float32:
            cast_transformer(backbone.transformer, dtype)
            backbone.text_encoder.to(dtype)
        return backbone.to(device)

    def save_pretrained(self, path: str | Path, components: Sequence[str] = SUBFOLDERS) -> None:
        """Write a diffusers-format folder that `from_pretrained` (and diffusers' WanPipeline) can read."""
        root = Path(path)
        for name in components:
            if name not in SUBFOLDERS:
                raise ModelConfigError(f"unknown backbone component {name!r}; choose from {SUBFOLDERS}")
            getattr(self, name).save_pretrained(root / name)

    def token_grid(self, latent_shape: Sequence[int]) -> tuple[int, int, int]:
        p_t, p_h, p_w = self.transformer.config.patch_size
        _, f, h, w = latent_shape[-4:]
        return f // p_t, h // p_h, w // p_w


def cast_transformer(transformer: WanTransformer3DModel, dtype: torch.dtype) -> WanTransformer3DModel:
    """Cast in place to `dtype` as diffusers' from_pretrained(torch_dtype=...) does: modules named in
    `_keep_in_fp32_modules` stay float32."""
    keep = WanTransformer3DModel._keep_in_fp32_modules
    for name, param in transformer.named_parameters():
        if not any(part in keep for part in name.split(".")):
            param.data = param.data.to(dtype)
    return transformer


def load_component(root: str | Path, name: str, dtype: torch.dtype = torch.float32):
    """One backbone component from `root/name` (diffusers/transformers format); the VAE is always float32."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    if not (Path(root) / name).is_dir():
        raise WeightsError(f"missing {Path(root) / name}; the backbone folder is incomplete")
    if name == "transformer" and importlib.util.find_spec("accelerate") is None:  # for _keep_in_fp32_modules
        raise ModelConfigError("loading WanTransformer3DModel needs accelerate: pip install accelerate")
    loaders = {  # weights from safetensors only: a pickled .bin is refused, never unpickled
        "transformer": lambda: WanTransformer3DModel.from_pretrained(root, subfolder=name, torch_dtype=dtype,
                                                                    use_safetensors=True),
        "vae": lambda: AutoencoderKLWan.from_pretrained(root, subfolder=name, torch_dtype=torch.float32,
                                                        use_safetensors=True),
        "text_encoder": lambda: UMT5EncoderModel.from_pretrained(root, subfolder=name, dtype=dtype, use_safetensors=True),
        "tokenizer": lambda: AutoTokenizer.from_pretrained(root, subfolder=name),
    }
    if name not in loaders:
        raise ModelConfigError(f"unknown backbone component {name!r}; choose from {SUBFOLDERS}")
    try:
        return loaders[name]()
    except (OSError, ValueError, RuntimeError) as e:
        text = " ".join(str(e).split())[:300]
        raise WeightsError(f"{Path(root) / name} cannot be loaded ({type(e).__name__}: {text}); it needs "
                           "save_pretrained files with safetensors weights") from None


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, H, W) float32 in [-1, 1]."""
    video = torch.from_numpy(np.array(frames, dtype=np.uint8)).float().div(127.5).sub(1.0)
    return video.permute(3, 0, 1, 2)[None]


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    video = ((video[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(1, 2, 3, 0).cpu().numpy()


def build_on_meta(preset: str) -> tuple[WanTransformer3DModel, AutoencoderKLWan]:
    """Transformer and VAE of `preset` with parameters on the meta device (no memory): for sizes and shapes."""
    spec = get_preset(preset)
    with torch.device("meta"):
        transformer = WanTransformer3DModel.from_config(spec.transformer)
        vae = AutoencoderKLWan.from_config(spec.vae)
    return transformer, vae


def num_params(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
