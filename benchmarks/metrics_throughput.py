"""Throughput of FlashBench's FID/FVD feature extraction and Fréchet distance vs reference pipelines.

In one run, on the same synthetic videos (written as mp4 by this script):
- features: FlashBench streams frames from the mp4s into batched models, vs a pytorch-fid-style pipeline
  (every frame written as a PNG file, read back with pytorch-fid's ImagePathDataset + DataLoader, fed to the
  same model; FVD clips stacked from the PNGs);
- Fréchet distance: symmetric-eigen square root vs pytorch-fid's `calculate_frechet_distance`
  (scipy.linalg.sqrtm) on the same 2048-d statistics.
Prints times, ratios and both values (they must agree within 1e-6 relative). Not a test.

    .venv/bin/python benchmarks/metrics_throughput.py [--videos 8 --frames 33 --size 128 --device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flashbench import weights
from flashbench.metrics.fid import InceptionFeatures
from flashbench.metrics.frechet import feature_stats, fid_from_features, frechet_distance
from flashbench.metrics.fvd import I3DFeatures, clip_starts, fvd_from_features
from flashbench.video import iter_frames, write_video


def make_videos(folder: Path, count: int, frames: int, size: int, seed: int = 0) -> list[Path]:
    """Moving coloured squares over a noisy gradient: enough structure for non-trivial features."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    paths = []
    for i in range(count):
        base = np.stack([xx * 255 / size, yy * 255 / size, np.full_like(xx, 40 * i % 255)], -1)
        video = np.empty((frames, size, size, 3), np.uint8)
        pos = rng.integers(0, size // 2, size=(3, 2))
        vel = rng.integers(-4, 5, size=(3, 2))
        colors = rng.integers(0, 256, size=(3, 3))
        for t in range(frames):
            frame = base + rng.normal(0, 8, base.shape)
            for p, v, c in zip(pos, vel, colors, strict=True):
                y, x = (p + v * t) % (size - size // 4)
                frame[y : y + size // 4, x : x + size // 4] = c
            video[t] = frame.clip(0, 255)
        write_video(folder / f"{i:03d}.mp4", video, fps=24)
        paths.append(folder / f"{i:03d}.mp4")
    return paths


def dump_pngs(videos: list[Path], root: Path) -> list[list[Path]]:
    """pytorch-fid-style input: every decoded frame as a PNG file."""
    out = []
    for video in videos:
        folder = root / video.stem
        folder.mkdir(parents=True)
        files = []
        for t, frame in enumerate(iter_frames(video)):
            files.append(folder / f"{t:05d}.png")
            Image.fromarray(frame).save(files[-1])
        out.append(files)
    return out


@torch.no_grad()
def reference_fid_features(
    model: torch.nn.Module, files: list[Path], batch_size: int, device: str
) -> np.ndarray:
    """pytorch-fid's own loop: ImagePathDataset (PIL + ToTensor) -> DataLoader -> InceptionV3 -> pool3."""
    import torchvision.transforms as TF
    from pytorch_fid.fid_score import ImagePathDataset

    loader = torch.utils.data.DataLoader(
        ImagePathDataset(files, transforms=TF.ToTensor()), batch_size=batch_size, shuffle=False
    )
    return np.concatenate([model(batch.to(device))[0].flatten(1).double().cpu().numpy() for batch in loader])


def reference_fvd_features(features: I3DFeatures, files: list[Path], clip_len: int) -> np.ndarray:
    """Clips stacked from PNG files read back, fed to the same I3D in batches."""
    frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    clips = [frames[s : s + clip_len] for s in clip_starts(len(frames), clip_len, clip_len)]
    bs = features.batch_size
    return np.concatenate(
        [features.clip_features(np.stack(clips[i : i + bs])) for i in range(0, len(clips), bs)]
    )


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def rel_diff(x: float, y: float) -> float:
    return abs(x - y) / max(abs(x), abs(y), 1e-300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--stats-samples", type=int, default=4096, help="samples for the 2048-d Fréchet timing"
    )
    args = parser.parse_args()

    for name in ("inception-fid", "i3d-kinetics400"):
        weights.fetch(name)
    inception = InceptionFeatures(device=args.device, batch_size=32)
    i3d = I3DFeatures(device=args.device, clip_len=16, batch_size=8)
    half = args.videos // 2

    with tempfile.TemporaryDirectory(prefix="flashbench-bench-") as tmp:
        videos = make_videos(Path(tmp) / "mp4", args.videos, args.frames, args.size)
        print(f"{args.videos} videos x {args.frames} frames at {args.size}x{args.size}, device {args.device}")

        inception.video_features(videos[0])  # warm-up (allocator, kernels) outside every timing
        i3d.video_features(videos[0])
        ours_fid, t_ours_fid = timed(lambda: [inception.video_features(v) for v in videos])
        ours_fvd, t_ours_fvd = timed(lambda: [i3d.video_features(v) for v in videos])

        pngs, t_dump = timed(lambda: dump_pngs(videos, Path(tmp) / "png"))
        ref_fid, t_ref_fid = timed(
            lambda: [reference_fid_features(inception.model, f, 32, args.device) for f in pngs]
        )
        ref_fvd, t_ref_fvd = timed(lambda: [reference_fvd_features(i3d, f, 16) for f in pngs])

    fid_ours = fid_from_features(np.concatenate(ours_fid[:half]), np.concatenate(ours_fid[half:]))
    fid_ref = fid_from_features(np.concatenate(ref_fid[:half]), np.concatenate(ref_fid[half:]))
    fvd_ours = fvd_from_features(np.concatenate(ours_fvd[:half]), np.concatenate(ours_fvd[half:]))
    fvd_ref = fvd_from_features(np.concatenate(ref_fvd[:half]), np.concatenate(ref_fvd[half:]))
    print(f"FID features: streaming {t_ours_fid:.2f}s | PNG dump {t_dump:.2f}s + read/model {t_ref_fid:.2f}s "
          f"-> speedup x{(t_dump + t_ref_fid) / t_ours_fid:.2f}")  # fmt: skip
    print(f"FVD features: streaming {t_ours_fvd:.2f}s | PNG dump {t_dump:.2f}s + read/model {t_ref_fvd:.2f}s "
          f"-> speedup x{(t_dump + t_ref_fvd) / t_ours_fvd:.2f}")  # fmt: skip
    print(
        f"FID ours {fid_ours:.6f} vs PNG pipeline {fid_ref:.6f} (rel diff {rel_diff(fid_ours, fid_ref):.1e})"
    )
    print(
        f"FVD ours {fvd_ours:.6f} vs PNG pipeline {fvd_ref:.6f} (rel diff {rel_diff(fvd_ours, fvd_ref):.1e})"
    )

    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(2048, 2048)) / 45
    a = rng.normal(size=(args.stats_samples, 2048)) @ mixing
    b = (rng.normal(size=(args.stats_samples, 2048)) + 0.1) @ mixing
    (mu1, s1), (mu2, s2) = feature_stats(a), feature_stats(b)
    ours, t_ours = timed(lambda: frechet_distance(mu1, s1, mu2, s2))
    ref, t_ref = timed(lambda: float(calculate_frechet_distance(mu1, s1, mu2, s2)))
    print(f"Fréchet 2048-d: eigen {t_ours:.2f}s vs scipy sqrtm {t_ref:.2f}s -> speedup x{t_ref / t_ours:.2f}; "
          f"values {ours:.8f} vs {ref:.8f} (rel diff {rel_diff(ours, ref):.1e})")  # fmt: skip
    worst = max(rel_diff(fid_ours, fid_ref), rel_diff(fvd_ours, fvd_ref), rel_diff(ours, ref))
    print(
        "values agree within 1e-6 relative" if worst < 1e-6 else f"VALUES DIFFER: worst rel diff {worst:.1e}"
    )


if __name__ == "__main__":
    main()
