"""Estimated per-GPU memory of every Wan2.2-TI2V-5B training config, with and without gradient checkpointing.

Not a GPU measurement: every role is built on the meta device with the real shapes (no memory), then
  weights      trainable float32 4 B/param; frozen roles bf16 2 B/param (flashmotion.train.precision: frozen roles
               are bf16 under bf16 autocast, which `mixed_precision: auto` is on CUDA); encoders: UMT5-XXL text
               encoder bf16 (precision.encoder_dtype with model_path), Wan2.2 VAE float32;
  grads        float32 4 B per trainable param; AdamW m and v: 8 B; the loop's EMA (when the config sets it): 4 B;
  sharding     FSDP2 (`distributed: fsdp`) divides the trainable roles' weights/grads/Adam/EMA by the world size
               (plus one unsharded block in flight per role); DDP replicates everything;
  activations  measured on the meta device: the stage's graph-keeping forwards (which, below) run through the
               project's own code (RoleModel.predict_velocity = dit_forward + adapter; TrajectoryDiscriminator) at
               N = 27,280 tokens (121 frames at 704x1280: 31 x 22 x 40), 1 clip per GPU, and autograd's saved
               tensors are summed (distinct storages, parameters excluded). Attention keeps what FlashAttention
               keeps (q, k, v, output, log-sum-exp; bf16 on GPUs), not the N^2 weights of the CPU math path.
               Trainable roles are run in bf16 (the dtype autocast computes in) and their bf16 weight copies,
               which autocast makes per use and the backward keeps, are added: 2 B per trainable param in a graph
               without checkpointing (autocast's weight cache is off, flashmotion.train.precision); with
               checkpointing they live for one block.
               With checkpointing a recomputed block keeps only its inputs (what torch.utils.checkpoint holds);
               the backward then adds one block's recomputed activations plus as much again for their gradients.
               Without it, one block's activations are added for the gradients in flight. An adapter's per-block
               residuals (L x N x D bf16) are alive together at the end of its forward and are added too.
Printed: GiB per GPU for each config and the ratio to an 80 GiB H100/A100 (the reference).

    python benchmarks/memory_5b.py [--world-size 8] [--frames 121 --height 704 --width 1280]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
from diffusers import WanTransformer3DModel

from flashmotion.models.adapters import build_adapter
from flashmotion.models.backbone import Conditioning, build_on_meta, cast_transformer, num_params
from flashmotion.models.build import RoleModel
from flashmotion.models.discriminator import TrajectoryDiscriminator
from flashmotion.models.presets import get_preset
from flashmotion.train.config import TrainConfig, load_config, method_config, read_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "wan2.2-ti2v-5b"
GIB = 2**30
REFERENCE_GIB = 80.0
BF16 = torch.bfloat16
TEXT_TOKENS = 512

# google/umt5-xxl's encoder, the text encoder of Wan2.2 (its config.json)
UMT5_XXL = {"vocab_size": 256384, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
            "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32}


class _FlashAttention(torch.autograd.Function):
    """Attention's output shape, keeping for the backward what FlashAttention keeps: q, k, v, out, logsumexp."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q)
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, *_ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _attention(query, key, value, *args, **kwargs):
    return _FlashAttention.apply(query, key, value)


class _KeepInputs(torch.autograd.Function):
    """A checkpointed block: runs it without a graph and keeps its tensor inputs (what checkpoint holds)."""

    @staticmethod
    def forward(ctx, function, *args):
        ctx.save_for_backward(*(a for a in args if isinstance(a, torch.Tensor)))
        with torch.no_grad():
            return function(*args)

    @staticmethod
    def backward(ctx, grad):  # never called: the estimate only runs forwards
        raise NotImplementedError


def _checkpoint(function, *args):
    return _KeepInputs.apply(function, *args)


def saved_bytes(forward: Callable[[], object], exclude: list[torch.nn.Module]) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward of `forward()` (parameters excluded)."""
    weights = {p.untyped_storage()._cdata for m in exclude for p in m.parameters()}
    saved: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # alive until the sum, so storage ids are not reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in weights:
            saved[storage._cdata] = storage.nbytes()
            keep.append(t)
        return t

    with mock.patch("torch.nn.functional.scaled_dot_product_attention", _attention), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(saved.values())


@dataclass
class Shapes:
    transformer: int
    blocks: int
    dim: int
    adapter: int
    head: int
    text_encoder: int
    vae: int


@dataclass
class Activations:
    """Measured saved bytes of one clip's graph-keeping forwards (see the module docstring)."""

    plain: dict[str, float]  # role kind -> bytes without checkpointing
    checkpointed: dict[str, float]  # ... with checkpointing
    block: dict[str, float]  # one DiT block's saved bytes (frozen / trainable)
    residuals: float  # an adapter's L residuals of (N, D) bf16


def _meta_transformer(trainable: bool) -> WanTransformer3DModel:
    """The 5B transformer on the meta device in bf16, diffusers' float32 modules kept (as build_role casts it)."""
    transformer, _ = build_on_meta("wan2.2-ti2v-5b")
    return cast_transformer(transformer, BF16).requires_grad_(trainable)


def _stage1_adapter(transformer: WanTransformer3DModel, trainable: bool) -> torch.nn.Module:
    method = read_yaml(CONFIGS / "stage1_adapter.yaml")["method"]
    with torch.device("meta"):
        adapter = build_adapter(method["adapter"], transformer, BF16, **method.get("adapter_options", {}))
    return adapter.requires_grad_(trainable)


def shapes() -> Shapes:
    from transformers import UMT5Config, UMT5EncoderModel

    transformer, vae = build_on_meta("wan2.2-ti2v-5b")
    with torch.device("meta"):
        head = TrajectoryDiscriminator(transformer).classifier
        text = UMT5EncoderModel(UMT5Config(**UMT5_XXL))
    cfg = get_preset("wan2.2-ti2v-5b").transformer
    return Shapes(num_params(transformer), cfg["num_layers"], cfg["num_attention_heads"] * cfg["attention_head_dim"],
                  num_params(_stage1_adapter(transformer, False)), num_params(head), num_params(text), num_params(vae))


def latent_grid(frames: int, height: int, width: int) -> tuple[int, int, int]:
    return (frames - 1) // 4 + 1, height // 16, width // 16  # VAE 4x16x16


def tokens(frames: int, height: int, width: int) -> int:
    f, h, w = latent_grid(frames, height, width)
    return f * (h // 2) * (w // 2)  # patch 1x2x2


def measure(frames: int, height: int, width: int) -> Activations:
    """Saved bytes of each kind of graph-keeping forward, with and without checkpointing, on the meta device."""
    f, h, w = latent_grid(frames, height, width)
    cfg = get_preset("wan2.2-ti2v-5b").transformer
    with torch.device("meta"):
        x = torch.empty(1, cfg["in_channels"], f, h, w, dtype=BF16)
        cond = Conditioning(torch.empty(1, cfg["in_channels"], 1, h, w), torch.empty(1, TEXT_TOKENS, cfg["text_dim"], dtype=BF16),
                            None, torch.empty(1, cfg["in_channels"], f, h, w))
        t = torch.empty(1)

    def run(kind: str, checkpointed: bool) -> float:
        trainable = kind in ("trained", "trained_frozen_adapter")
        transformer = _meta_transformer(trainable)
        adapter = None
        if kind in ("frozen_trained_adapter", "trained_frozen_adapter"):
            adapter = _stage1_adapter(transformer, kind == "frozen_trained_adapter")
        role = RoleModel(transformer, adapter)
        models = [transformer] + ([adapter] if adapter is not None else [])
        if checkpointed:
            for model in models:
                model.enable_gradient_checkpointing(_checkpoint)
        if kind == "discriminator":  # the frozen backbone on a differentiable input, the head trains
            discriminator = TrajectoryDiscriminator(transformer)
            with torch.device("meta"):
                fake = torch.empty_like(x, requires_grad=True)
            return saved_bytes(lambda: discriminator(fake, t, cond.text_embeds, cond.trajectory_latent), [*models, discriminator])
        return saved_bytes(lambda: role.predict_velocity(x, t, cond), models)

    kinds = ("trained", "frozen_trained_adapter", "trained_frozen_adapter", "discriminator")
    plain = {k: run(k, False) for k in kinds}
    checkpointed = {k: run(k, True) for k in kinds}
    n = tokens(frames, height, width)
    block = {"frozen": _block_bytes(False, n), "trained": _block_bytes(True, n)}
    return Activations(plain, checkpointed, block, cfg["num_layers"] * n * cfg["num_attention_heads"] * cfg["attention_head_dim"] * 2)


def _block_bytes(trainable: bool, n: int) -> float:
    """Saved bytes of one DiT block over `n` tokens (its inputs excluded: they are the previous block's output
    and the embeddings every block shares)."""
    cfg = get_preset("wan2.2-ti2v-5b").transformer
    dim, head = cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["attention_head_dim"]
    block = _meta_transformer(trainable).blocks[0]
    with torch.device("meta"):
        hidden = torch.empty(1, n, dim, dtype=BF16, requires_grad=True)
        context = torch.empty(1, TEXT_TOKENS, dim, dtype=BF16)
        temb = torch.empty(1, n, 6, dim, dtype=BF16)
        rotary = (torch.empty(1, n, 1, head), torch.empty(1, n, 1, head))
    return saved_bytes(lambda: block(hidden, context, temb, rotary), [block])


def graph_forwards(config: TrainConfig) -> list[str]:
    """The kinds of forward whose graphs are alive together at the stage's peak (one clip)."""
    method = method_config(config)
    if config.steps == 0:
        return []
    if config.stage in ("stage0_dit", "stage2_dmd"):  # stage 2: the generator's graph, then the fake score's
        return ["trained"]
    if config.stage == "stage1_adapter":
        return ["frozen_trained_adapter"]
    if config.stage == "stage3_hybrid":  # the adapter's loss backpropagates through generator and discriminator
        return ["frozen_trained_adapter"] + (["discriminator"] if method.gan_loss else [])
    if config.stage == "lcm":
        return ["trained_frozen_adapter"]
    raise ValueError(f"no memory model for stage {config.stage}")


def estimate(stage_file: str, s: Shapes, a: Activations, world: int, checkpointing: bool) -> dict[str, float]:
    config = load_config(CONFIGS / stage_file, ["model_path=/models/wan", "init.generator=G", "init.adapter=A"])
    method = method_config(config)
    fsdp = config.distributed == "fsdp"
    ema = 4 if config.ema else 0
    per_trainable = 4 + 4 + 8 + ema  # weights, grads, Adam m + v, EMA
    unsharded_block = s.transformer / s.blocks * 4
    encoders = s.text_encoder * 2 + s.vae * 4
    shard = (lambda n: n / world + 2 * unsharded_block) if fsdp else (lambda n: n)
    if config.stage == "stage0_dit":  # the teacher trains
        trainable, frozen = shard(s.transformer * per_trainable), 0.0
    elif config.stage == "stage2_dmd":  # generator + fake score trainable, real score frozen
        trainable, frozen = shard(2 * s.transformer * per_trainable), s.transformer * 2
    elif config.stage == "stage1_adapter":  # adapter trainable, teacher frozen
        trainable, frozen = s.adapter * per_trainable, s.transformer * 2
    elif config.stage == "stage3_hybrid":  # adapter (+ head) trainable; FastGenerator and teacher frozen
        gan = method.gan_loss
        trainable = s.adapter * per_trainable + (s.head * per_trainable if gan else 0)
        backbones = 2 if gan and method.discriminator_backbone == "teacher" else 1
        frozen = s.transformer * 2 * backbones
    else:  # lcm: student trainable (+ float32 EMA target), teacher frozen
        trainable = shard(s.transformer * (per_trainable + 4)) + 2 * s.adapter * 4  # + the SlowAdapter twice, float32
        frozen = (s.transformer + s.adapter) * 2
    forwards = graph_forwards(config)
    activations = 0.0
    if forwards:
        saved = a.checkpointed if checkpointing else a.plain
        activations = sum(saved[k] for k in forwards)
        activations += sum(a.residuals for k in forwards if k != "trained" and k != "discriminator")
        trained_block = any(k.startswith("trained") for k in forwards)
        one_block = a.block["trained" if trained_block else "frozen"]
        if checkpointing:
            activations += 2 * one_block  # the recomputed block and its gradients
        else:
            activations += one_block + 2 * s.transformer * sum(k.startswith("trained") for k in forwards)
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
    a = measure(args.frames, args.height, args.width)
    print(f"transformer {s.transformer / 1e9:.3f}B, adapter {s.adapter / 1e6:.1f}M, discriminator head {s.head / 1e6:.1f}M, "
          f"text encoder {s.text_encoder / 1e9:.2f}B, VAE {s.vae / 1e9:.3f}B; {n} tokens/clip; {args.world_size} GPUs")
    print("saved activations of one clip (GiB), without / with checkpointing: "
          + ", ".join(f"{k} {a.plain[k] / GIB:.1f} / {a.checkpointed[k] / GIB:.2f}" for k in a.plain)
          + f"; one DiT block: frozen {a.block['frozen'] / GIB:.2f}, trained {a.block['trained'] / GIB:.2f}; "
          f"adapter residuals {a.residuals / GIB:.2f}")
    header = f"{'config':30s} {'trainable':>9s} {'frozen':>7s} {'encoders':>8s} {'activ. ckpt':>11s} {'total':>7s} {'/80GiB':>6s}"
    print(header + f" {'activ. plain':>12s} {'total':>7s} {'/80GiB':>6s}")
    for path in sorted(CONFIGS.glob("*.yaml")):
        if "stage" not in read_yaml(path):
            continue  # a generator config
        on, off = (estimate(path.name, s, a, args.world_size, c) for c in (True, False))
        print(f"{path.stem:30s} {on['trainable']:9.1f} {on['frozen']:7.1f} {on['encoders']:8.1f} {on['activations']:11.1f} "
              f"{on['total']:7.1f} {on['total'] / REFERENCE_GIB:6.2f} {off['activations']:12.1f} {off['total']:7.1f} "
              f"{off['total'] / REFERENCE_GIB:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
