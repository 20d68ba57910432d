"""Estimated per-GPU memory of the Wan2.2-TI2V-5B distillation stages (2, 3, LCM), from meta-device parameter counts.

Not a measurement (no GPU is needed): every role is built on the meta device with the real shapes (as
tests/test_train_meta5b.py does), then
  weights      trainable float32 4 B/param, frozen roles bf16 2 B/param (flashmotion.train.stage2_dmd.frozen_dtype),
               encoders: UMT5-XXL text encoder bf16, Wan2.2 VAE float32;
  grads        float32 4 B per trainable param; AdamW m and v: 8 B; the loop's EMA (when the config sets it): 4 B;
  sharding     FSDP2 (`distributed: fsdp`) divides the trainable roles' weights/grads/Adam/EMA by the world size
               (plus one unsharded block in flight per role); DDP replicates everything;
  activations  with gradient checkpointing, each forward that keeps a graph stores one bf16 (N, D) block input per
               DiT block it runs through, plus the transient of recomputing one block in the backward pass
               (q, k, v, attention output, two norms: 6 N D; FFN: 2 N F; bf16; x2 for their gradients);
               N = latent tokens of one clip (121 frames, 704x1280: 31 x 22 x 40 = 27,280), 1 clip per GPU.
Printed: GiB per GPU and the ratio to an 80 GiB H100/A100 (the reference).

    python benchmarks/memory_5b.py [--world-size 8] [--frames 121 --height 704 --width 1280]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from flashmotion.models.adapters import build_adapter
from flashmotion.models.backbone import build_on_meta, num_params
from flashmotion.models.discriminator import TrajectoryDiscriminator
from flashmotion.models.presets import get_preset
from flashmotion.train.config import load_config, method_config, read_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "wan2.2-ti2v-5b"
GIB = 2**30
REFERENCE_GIB = 80.0

# google/umt5-xxl's encoder, the text encoder of Wan2.2 (its config.json)
UMT5_XXL = {"vocab_size": 256384, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
            "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32}


@dataclass
class Shapes:
    transformer: int
    blocks: int
    dim: int
    ffn: int
    adapter: int
    head: int
    text_encoder: int
    vae: int


def shapes() -> Shapes:
    from transformers import UMT5Config, UMT5EncoderModel

    spec = get_preset("wan2.2-ti2v-5b")
    transformer, vae = build_on_meta("wan2.2-ti2v-5b")
    stage1 = read_yaml(CONFIGS / "stage1_adapter.yaml")["method"]
    with torch.device("meta"):
        adapter = build_adapter(stage1["adapter"], transformer, **stage1.get("adapter_options", {}))
        head = TrajectoryDiscriminator(transformer).classifier
        text = UMT5EncoderModel(UMT5Config(**UMT5_XXL))
    assert isinstance(transformer, WanTransformer3DModel)
    cfg = spec.transformer
    return Shapes(num_params(transformer), cfg["num_layers"], cfg["num_attention_heads"] * cfg["attention_head_dim"],
                  cfg["ffn_dim"], num_params(adapter), num_params(head), num_params(text), num_params(vae))


def tokens(frames: int, height: int, width: int) -> int:
    return ((frames - 1) // 4 + 1) * (height // 32) * (width // 32)  # VAE 4x16x16, patch 1x2x2


def estimate(stage_file: str, s: Shapes, n_tokens: int, world: int) -> dict[str, float]:
    config = load_config(CONFIGS / stage_file, ["model_path=/models/wan"])
    method = method_config(config)
    fsdp = config.distributed == "fsdp"
    ema = 4 if config.ema else 0
    per_trainable = 4 + 4 + 8 + ema  # weights, grads, Adam m + v, EMA
    block_input = n_tokens * s.dim * 2
    recompute = (6 * n_tokens * s.dim + 2 * n_tokens * s.ffn) * 2 * 2
    unsharded_block = s.transformer / s.blocks * 4
    encoders = s.text_encoder * 2 + s.vae * 4
    if config.stage == "stage2_dmd":  # generator + fake score trainable, real score frozen
        trainable = 2 * s.transformer * per_trainable / (world if fsdp else 1) + (2 * unsharded_block if fsdp else 0)
        frozen = s.transformer * 2
        activations = s.blocks * block_input + recompute  # one graph at a time (generator, then fake score)
    elif config.stage == "stage3_hybrid":  # adapter (+ head) trainable; FastGenerator and teacher frozen
        gan = method.gan_loss
        trainable = s.adapter * per_trainable + (s.head * per_trainable if gan else 0)
        backbones = 2 if gan and method.discriminator_backbone == "teacher" else 1
        frozen = s.transformer * 2 * backbones
        # the adapter's graph spans every generator block; the GAN term adds the discriminator backbone's blocks
        # up to its deepest feature block (the last by default)
        activations = s.blocks * block_input * (2 if gan else 1) + recompute
    else:  # lcm: student trainable (+ float32 EMA target), teacher frozen
        trainable = s.transformer * (per_trainable + 4) / (world if fsdp else 1) + (2 * unsharded_block if fsdp else 0)
        trainable += 2 * s.adapter * 4  # the frozen SlowAdapter in the student and the target, float32
        frozen = (s.transformer + s.adapter) * 2
        activations = s.blocks * block_input + recompute
    total = trainable + frozen + encoders + activations
    return {"trainable": trainable / GIB, "frozen": frozen / GIB, "encoders": encoders / GIB,
            "activations": activations / GIB, "total": total / GIB}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)
    s = shapes()
    n = tokens(args.frames, args.height, args.width)
    print(f"transformer {s.transformer / 1e9:.3f}B, adapter {s.adapter / 1e6:.1f}M, discriminator head {s.head / 1e6:.1f}M, "
          f"text encoder {s.text_encoder / 1e9:.2f}B, VAE {s.vae / 1e9:.3f}B; {n} tokens/clip; {args.world_size} GPUs")
    print(f"{'config':34s} {'trainable':>9s} {'frozen':>7s} {'encoders':>8s} {'activ.':>7s} {'total GiB':>9s} {'/80GiB':>7s}")
    for name in ("stage2_dmd.yaml", "stage3_hybrid.yaml", "ablation_no_gan.yaml", "lcm.yaml"):
        e = estimate(name, s, n, args.world_size)
        print(f"{name:34s} {e['trainable']:9.1f} {e['frozen']:7.1f} {e['encoders']:8.1f} {e['activations']:7.1f} "
              f"{e['total']:9.1f} {e['total'] / REFERENCE_GIB:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
