"""Architecture presets for the Wan2.2 TI2V backbone, as diffusers/transformers config dicts.

`wan2.2-ti2v-5b` copies the published Wan-AI/Wan2.2-TI2V-5B-Diffusers configs (the values of
diffusers' scripts/convert_wan_to_diffusers.py for model_type "Wan2.2-TI2V-5B" and `vae22_diffusers_config`).
`tiny` uses the same classes and the same structural switches (residual VAE with 2x2 patchify, per-token timesteps)
at CPU size: 2 blocks of width 64, a 3-level VAE (stride 4x8x8 after patchify; the 5B VAE has 4 levels, 4x16x16)
with the 5B's 48 latent channels and a 16-channel decoder (with 16 latent channels and an 8-channel decoder the
trained tiny VAE's reconstructions already lost to the `static` reference on FVD), and a 1-layer UMT5 text
encoder over the offline byte-level ByT5 tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flashmotion.errors import ModelConfigError

# Wan2.2 VAE latent statistics (48 channels), from vae22_diffusers_config.
_WAN22_LATENTS_MEAN = [
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
]  # fmt: skip
_WAN22_LATENTS_STD = [
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
]  # fmt: skip


@dataclass(frozen=True)
class BackbonePreset:
    """transformer / vae: kwargs of WanTransformer3DModel / AutoencoderKLWan. text_encoder: UMT5Config kwargs for
    a random-init encoder, or None when the encoder must come from a pretrained folder. tokenizer: 'byt5' (built
    offline) or None (load from the folder). max_sequence_length: text tokens (Wan uses 512)."""

    name: str
    transformer: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any] | None
    tokenizer: str | None
    max_sequence_length: int

    @property
    def self_contained(self) -> bool:
        """True for the CPU presets, which build every component from scratch (random-init text encoder, a VAE
        and DiT trained by stage 0); False for presets whose weights come from a pretrained folder."""
        return self.text_encoder is not None


WAN22_TI2V_5B = BackbonePreset(
    name="wan2.2-ti2v-5b",
    transformer={
        "patch_size": [1, 2, 2],
        "num_attention_heads": 24,
        "attention_head_dim": 128,
        "in_channels": 48,
        "out_channels": 48,
        "text_dim": 4096,
        "freq_dim": 256,
        "ffn_dim": 14336,
        "num_layers": 30,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "image_dim": None,
        "added_kv_proj_dim": None,
    },
    vae={
        "base_dim": 160,
        "decoder_base_dim": 256,
        "z_dim": 48,
        "dim_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_scales": [],
        "temperal_downsample": [False, True, True],
        "is_residual": True,
        "in_channels": 12,
        "out_channels": 12,
        "patch_size": 2,
        "scale_factor_temporal": 4,
        "scale_factor_spatial": 16,
        "latents_mean": _WAN22_LATENTS_MEAN,
        "latents_std": _WAN22_LATENTS_STD,
    },
    text_encoder=None,
    tokenizer=None,
    max_sequence_length=512,
)

TINY = BackbonePreset(
    name="tiny",
    transformer={
        "patch_size": [1, 2, 2],
        "num_attention_heads": 2,
        "attention_head_dim": 32,
        "in_channels": 48,
        "out_channels": 48,
        "text_dim": 32,
        "freq_dim": 32,
        "ffn_dim": 128,
        "num_layers": 2,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "image_dim": None,
        "added_kv_proj_dim": None,
        "rope_max_seq_len": 64,
    },
    vae={
        "base_dim": 8,
        "decoder_base_dim": 16,
        "z_dim": 48,
        "dim_mult": [1, 2, 2],
        "num_res_blocks": 1,
        "attn_scales": [],
        "temperal_downsample": [True, True],
        "is_residual": True,
        "in_channels": 12,
        "out_channels": 12,
        "patch_size": 2,
        "scale_factor_temporal": 4,
        "scale_factor_spatial": 8,
        "latents_mean": [0.0] * 48,
        "latents_std": [1.0] * 48,
    },
    text_encoder={
        "vocab_size": 384,  # ByT5: 256 bytes + 3 specials + 125 extra ids
        "d_model": 32,
        "d_kv": 8,
        "num_heads": 4,
        "num_layers": 1,
        "d_ff": 64,
        "relative_attention_num_buckets": 8,
        "dropout_rate": 0.0,
    },
    tokenizer="byt5",
    max_sequence_length=16,
)

# The CPU toy at which FlashMotion is meant to learn (docs/TRAINING.md, "Toy scale"): tiny's VAE (8x spatial,
# 4x temporal, 48 channels) and text encoder, and a DiT that resolves objects: patch 1x1 (one token per latent
# position, 8x8 px; a 96x96 frame is 12x12 tokens) and width 128 > its 48-value tokens (tiny's width 64 was
# narrower than its 192-value 2x2 tokens and could not copy a latent patch).
TOY = BackbonePreset(
    name="toy",
    transformer={
        **TINY.transformer,
        "patch_size": [1, 1, 1],
        "num_attention_heads": 2,
        "attention_head_dim": 64,
        "ffn_dim": 256,
        "num_layers": 4,
    },
    vae=TINY.vae,
    text_encoder=TINY.text_encoder,
    tokenizer=TINY.tokenizer,
    max_sequence_length=TINY.max_sequence_length,
)

PRESETS: dict[str, BackbonePreset] = {p.name: p for p in (WAN22_TI2V_5B, TINY, TOY)}


def get_preset(name: str) -> BackbonePreset:
    """The preset called `name` or a one-line error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelConfigError(f"unknown backbone preset {name!r}; choose one of {sorted(PRESETS)}") from None
