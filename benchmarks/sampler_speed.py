"""Wall time of the 50-step CFG sampler over the 4-step sampler on the same backbone + adapter, in one run.

Times the denoising loop only (inputs encoded beforehand, no VAE decode), after a warm-up, as the median of
several interleaved repeats. The target is a ratio >= 24x (the NFE ratio, 100 / 4 = 25x, is what samplers
with no overhead besides the network would give).

    .venv/bin/python benchmarks/sampler_speed.py [--preset tiny] [--frames 17 --size 128x128] [--repeats 5]

On the tiny model one network call is only tens of ms, so at small sizes (e.g. 64x64) run-to-run jitter and
the cold first call of each loop (4 calls to amortise it over, against 100) move the ratio by several x on a
busy CPU; the default 128x128 keeps the per-call work large enough to measure the samplers themselves.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from flashmotion.denoiser import TI2VDenoiser
from flashmotion.models.adapters import build_adapter
from flashmotion.models.backbone import WanBackbone
from flashmotion.sampling import SamplerConfig, randn

TARGET = 24.0


def run_once(config: SamplerConfig, denoiser, noise: torch.Tensor, seed: int, device: torch.device) -> float:
    """Seconds of one sampling loop (device-synchronised)."""
    generator = torch.Generator().manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    config.sample(denoiser, noise, generator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--adapter", default="resnet")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="128x128", help="HxW")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    height, width = (int(v) for v in args.size.lower().split("x"))

    backbone = WanBackbone.build(args.preset, args.model_path, device=device)
    adapter = build_adapter(args.adapter, backbone.transformer).eval()
    shape = (1, *backbone.latent_shape(args.frames, height, width))
    gen = torch.Generator().manual_seed(0)
    image_latent = randn((*shape[:2], 1, *shape[3:]), gen, device)
    trajectory = randn(shape, gen, device)
    noise = randn(shape, gen, device)
    text = backbone.encode_prompt(["a red ball rolls to the left"])
    negative = backbone.encode_prompt([""])

    def make_denoiser() -> TI2VDenoiser:
        return TI2VDenoiser(backbone.transformer, image_latent, text, negative, adapter, trajectory)

    few = SamplerConfig(kind="few_step", steps=4)
    multi = SamplerConfig(kind="multistep", steps=50, guidance=5.0, solver="unipc")
    times: dict[str, list[float]] = {"few": [], "multi": []}
    nfe: dict[str, int] = {}
    with torch.inference_mode():
        # Interleaved repeats, so both samplers see the same machine load; repeat 0 is the warm-up.
        for i in range(args.repeats + 1):
            for key, config in (("few", few), ("multi", multi)):
                denoiser = make_denoiser()
                seconds = run_once(config, denoiser, noise, i, device)
                nfe[key] = denoiser.nfe
                if i > 0:
                    times[key].append(seconds)
    few_s, multi_s = statistics.median(times["few"]), statistics.median(times["multi"])
    few_nfe, multi_nfe = nfe["few"], nfe["multi"]
    ratio = multi_s / few_s
    print(f"preset {args.preset}, adapter {args.adapter}, video {args.frames}x{height}x{width}, latent {list(shape[1:])}, "
          f"device {device}, median of {args.repeats}")
    print(f"4-step:        {few_s * 1000:9.2f} ms  NFE {few_nfe}")
    print(f"50-step CFG:   {multi_s * 1000:9.2f} ms  NFE {multi_nfe}")
    print(f"ratio 50-step CFG / 4-step: {ratio:.2f}x (target >= {TARGET:.0f}x, NFE ratio {multi_nfe / few_nfe:.0f}x) "
          f"{'PASS' if ratio >= TARGET else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
