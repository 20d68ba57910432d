"""How well a slow generator (stage-0 teacher) predicts clean latents, against copying the first frame.

For each benchmark (typically the training one and a held-out one) and each noise level sigma, over its clips at
the model size: x_t = (1 - sigma) x0 + sigma eps with fixed seeds, x0_hat = role.predict_x0(x_t, 1000 sigma, cond)
(TI2V: latent frame 0 is the clean image latent), and the mean squared error of latent frames 1.. per frame:

  model    mean (x0_hat - x0)^2
  static   mean (encode(first frame repeated) - x0)^2   the latent of the `static` reference, same VAE

At high sigma the sample's layout is decided; an x0 error above `static` there means the DiT has not learnt to
continue the first frame, and a held-out error well above the training one means it memorised its clips. No
sampling, no metric weights: a few seconds per benchmark on CPU for the tiny preset.

    python benchmarks/teacher_x0_error.py --checkpoint data/checkpoints/stage0_dit \
        --bench TRAIN_BENCH --bench HELD_OUT [--sigmas 0.5,0.8,0.97 --limit 48 --frames 17 --size 48x48]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from flashbench import provenance
from flashmotion.models.backbone import frames_to_tensor
from flashmotion.models.build import build_encoders, build_role
from flashmotion.train.config import DataConfig
from flashmotion.train.data import BatchEncoder, ClipDataset
from flashmotion.train.validation import x0_error


def x0_errors(checkpoint: str, bench: Path, sigmas: list[float], limit: int, frames: int, size: list[int],
              preset: str, seed: int = 0) -> dict:
    """{'model': {sigma: [mse per latent frame 1..]}, 'static': [mse per latent frame 1..], 'clips': n}."""
    encoders = build_encoders(preset, checkpoint=checkpoint)
    role = build_role(preset, checkpoint=checkpoint, trainable=()).eval()
    config = DataConfig(bench=str(bench), frames=frames, size=size, random_crop=False)
    dataset = ClipDataset(config)
    batches = BatchEncoder(encoders, config, "latents", dataset.bench, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    n = min(len(dataset), limit)
    model = {s: [] for s in sigmas}
    static = []
    for index in tqdm(range(n), desc=f"x0 error {bench.name}", unit="clip"):
        clip = dataset[(index, 0)]
        batch = batches([clip], "mask")
        x0 = batch.latents
        with torch.inference_mode():
            still = encoders.encode_video(frames_to_tensor(np.repeat(clip.video[:1], len(clip.video), axis=0)))
            static.append((still - x0)[:, :, 1:].pow(2).mean(dim=(0, 1, 3, 4)))
            for sigma in sigmas:
                model[sigma].append(x0_error(role, x0, batch.cond, sigma, torch.randn(x0.shape, generator=generator)))
    mean = lambda rows: [round(float(v), 4) for v in torch.stack(rows).mean(0)]  # noqa: E731
    return {"clips": n, "model": {str(s): mean(rows) for s, rows in model.items()}, "static": mean(static)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a FlashMotion checkpoint with its VAE (stage0_dit export)")
    parser.add_argument("--bench", required=True, type=Path, action="append", help="benchmark folder (repeat)")
    parser.add_argument("--sigmas", default="0.5,0.8,0.97")
    parser.add_argument("--limit", type=int, default=48, help="clips per benchmark")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="48x48")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--out", type=Path, default=None, help="write teacher_x0_error.json here")
    args = parser.parse_args(argv)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    size = [int(v) for v in args.size.lower().split("x")]
    results = {}
    for bench in args.bench:
        r = results[str(bench)] = x0_errors(args.checkpoint, bench, sigmas, args.limit, args.frames, size, args.preset)
        print(f"{bench} ({r['clips']} clips), MSE of latent frames 1.. (mean, then per frame):")
        print(f"  {'static':>12s} {np.mean(r['static']):.3f}  {r['static']}")
        for sigma, per_frame in r["model"].items():
            print(f"  {'sigma ' + sigma:>12s} {np.mean(per_frame):.3f}  {per_frame}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"results": results, "provenance": provenance.collect(checkpoint=args.checkpoint, sigmas=sigmas)}
        (args.out / "teacher_x0_error.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
