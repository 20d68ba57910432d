"""The tracker's own accuracy on real video: the `ground-truth` generator's mask/box IoU on DAVIS sequences.

Imports a DAVIS folder (`flashbench build davis`, H.264 round trip included) into a temporary benchmark (or takes a
FlashBench benchmark as it is, `--bench`, e.g. a synthetic one), then
scores each sample's real video exactly as `flashbench evaluate` scores a `ground-truth` run
(evaluation.score_sample: prompted with each object's ground-truth mask at its first visible frame), without
the FID/FVD part. Prints M-IoU / B-IoU per sequence and per object, frames, and seconds per frame (encoder and
decoder separately). Since the video is the real one, every point below 100 is the tracker's error.

`--ceiling` also prints, per object, the mean over frames of the best IoU among SAM's hypotheses when it is
prompted on each frame from that frame's own ground-truth mask: what a perfect tracking rule could reach
with this segmenter at this input size (expensive: one more decoder pass per frame and object).

Data: the DAVIS development sequences in ../shared/data/davis-dev (DAVIS, CC BY-NC 4.0, Perazzi et al. 2016,
Pont-Tuset et al. 2017): for tests and development only. Not a test.

    python benchmarks/tracker_accuracy.py --root ../shared/data/davis-dev/single [--root .../multi] [--bench B]
        [--image-size 1024] [--sequences soapbox,kite-surf] [--ceiling] [--set exclusive=false ...]
        [--embeddings-cache DIR]

`--set NAME=VALUE` changes one TrackerSettings rule (YAML-typed value), e.g. to measure a rule switched off.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from flashbench.data.benchmark import Benchmark
from flashbench.data.davis import build_davis
from flashbench.evaluation import score_sample
from flashbench.metrics.segment.mobilesam import load_mobilesam
from flashbench.metrics.segment.prompts import mask_logits
from flashbench.metrics.segment.tracker import SamTracker, TrackerSettings, _iou, _Step
from flashbench.yaml_values import load_yaml


def ceiling(tracker: SamTracker, frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N,) mean over visible frames of the best hypothesis IoU when prompted from the frame's own mask."""
    model = tracker.model_for(*frames.shape[1:3])
    step = _Step(model, frames.shape[1:3], tracker.settings)
    best = [[] for _ in range(masks.shape[1])]
    with torch.inference_mode():
        for t, emb in enumerate(tracker.encode(model, frames)):
            step.set_embedding(emb)
            for k in range(masks.shape[1]):
                if masks[t, k].any():
                    box, points, labels = step._prompt(masks[t, k], np.full(4, np.nan), [])
                    logits = mask_logits(masks[t, k], step.input_hw, step.size, step.low_res)
                    hyps = step.hypotheses(points, labels, box, logits)[0]
                    best[k].append(_iou(hyps, masks[t, k]).max())
    return np.array([np.mean(b) if b else np.nan for b in best])


def share_embeddings(tracker: SamTracker, cache: Path | None = None) -> None:
    """Encode each distinct video once in this process (the single- and multi-object imports of a sequence are
    the same video): wraps `tracker.encode` with a memo keyed by the frames' bytes; the encoder time is counted
    once. With `cache`, embeddings are also kept there across runs (keyed by checkpoint, input size and frames;
    a cached video's encoder time reads as ~0: measure costs without it)."""
    memo: dict[tuple[int, bytes], list[torch.Tensor]] = {}
    encode = tracker.encode

    def shared(model, frames):  # a generator: the encoding happens on the first next(), inside the timed loop
        size = model.image_encoder.img_size
        key = (size, hashlib.sha256(frames.tobytes()).digest())
        if key not in memo:
            path = None if cache is None else cache / f"{tracker.checkpoint_sha256}-{size}-{key[1].hex()[:32]}.pt"
            if path is not None and path.is_file():
                memo[key] = torch.load(path, weights_only=True)
            else:
                memo[key] = list(encode(model, frames))
                if path is not None:
                    cache.mkdir(parents=True, exist_ok=True)
                    torch.save(memo[key], path)
        yield from memo[key]

    tracker.encode = shared


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, action="append", default=[], help="DAVIS folder (repeatable)")
    ap.add_argument("--bench", type=Path, action="append", default=[],
                    help="a FlashBench benchmark folder, e.g. `flashbench build synthetic` (repeatable)")
    ap.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    ap.add_argument("--image-size", type=int, help="encoder input side (default: chosen from the video size)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ceiling", action="store_true", help="also print the per-frame hypothesis ceiling")
    ap.add_argument("--embeddings-cache", type=Path, help="keep frame embeddings here across runs (development)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a TrackerSettings rule")
    args = ap.parse_args()
    if not args.root and not args.bench:
        ap.error("give at least one --root DAVIS folder or --bench benchmark folder")
    tracker = load_mobilesam(device=args.device, image_size=args.image_size, progress=True)
    fields = {f.name for f in dataclasses.fields(TrackerSettings)}
    changes = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in fields:
            ap.error(f"--set {item}: unknown rule {name!r}; choose one of {sorted(fields)}")
        changes[name] = load_yaml(value)
    tracker.settings = dataclasses.replace(tracker.settings, **changes)
    share_embeddings(tracker, args.embeddings_cache)
    print(f"segmenter: {tracker.describe()}")
    print("DAVIS data: CC BY-NC 4.0 (Perazzi et al. 2016; Pont-Tuset et al. 2017), development use only")
    header = f"{'set':<28} {'sequence':<12} {'object':>6} {'frames':>6} {'M-IoU':>6} {'B-IoU':>6} {'ceiling':>7} {'enc s/f':>7} {'dec s/f':>7}"
    rows, means = [], {}
    for root in [*args.root, *args.bench]:
        with tempfile.TemporaryDirectory(prefix="flashbench-davis-") as tmp:
            if root in args.bench:
                bench = Benchmark.load(root)
            else:
                bench, _ = build_davis(root, Path(tmp) / "bench", sequences=args.sequences.split(",") if args.sequences else None)
                bench = Benchmark.load(bench.root)
            for sample in bench.samples:
                frames = bench.read_video(sample)
                before = dict(tracker.timings)
                t0 = time.perf_counter()
                scored = score_sample(sample, bench, frames, tracker, Path(tmp) / f"{sample.id}.json")
                wall = time.perf_counter() - t0
                enc = (tracker.timings["encode_s"] - before["encode_s"]) / len(frames)
                dec = (tracker.timings["decode_s"] - before["decode_s"]) / len(frames)
                ceil = ceiling(tracker, frames, bench.tracks(sample).masks) if args.ceiling else None
                name = f"{root.parent.name}/{root.name}"
                for k, obj in enumerate(scored["objects"]):
                    c = "" if ceil is None else f"{100 * ceil[k]:.1f}"
                    rows.append(f"{name:<28} {sample.id:<12} {obj['id']:>6} {len(frames):>6} {100 * obj['mask_iou']:>6.1f} "
                                f"{100 * obj['box_iou']:>6.1f} {c:>7} {enc:>7.2f} {dec:>7.2f}")
                rows.append(f"{name:<28} {sample.id:<12} {'all':>6} {len(frames):>6} {100 * scored['mask_iou']:>6.1f} "
                            f"{100 * scored['box_iou']:>6.1f} {'':>7} {enc:>7.2f} {dec:>7.2f}  ({wall / len(frames):.2f} s/frame wall)")
                means.setdefault(name, []).append((scored["mask_iou"], scored["box_iou"]))
                print(rows[-1], flush=True)
                if tracker.events:
                    print(f"    events: {tracker.events}")
    print()
    print(header)
    print("\n".join(rows))
    for name, vals in means.items():
        m, b = np.mean(vals, axis=0)
        print(f"{name}: mean over sequences M-IoU {100 * m:.1f}, B-IoU {100 * b:.1f}")


if __name__ == "__main__":
    main()
