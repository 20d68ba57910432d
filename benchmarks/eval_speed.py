"""Where `flashbench evaluate` spends its time per generated video, before vs after, in one run.

On the same synthetic scenes (flashbench.data.synthetic, written to mp4 and read back):
- tracking, seconds per frame per object:
  before: the previous pipeline (segment_anything's SamPredictor: every frame upsampled to 1024^2 and encoded
  alone, then one batched decoder call);
  after: `SamTracker` (frames encoded in batches at the input size chosen from the video size, 4 x the long
  side within [256, 1024]; one decoder pass per object and frame, plus its rules);
  plus the mean mask IoU against the scene's ground truth at each encoder size, so a size is never chosen for
  speed alone;
- FID / FVD features, seconds per frame: before, each extractor decoding the mp4 again; after, both reading
  the frames the tracker already decoded (what evaluation.py does: one decode per video).
On CUDA the encoder runs in bf16 with channels-last inputs (encoder.EncoderSettings). Not a test.

    python benchmarks/eval_speed.py [--size 128 --frames 12 --objects 2 --device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything.predictor import SamPredictor

from flashbench.data.synthetic import generate_scene
from flashbench.metrics.fid import InceptionFeatures
from flashbench.metrics.fvd import I3DFeatures
from flashbench.metrics.iou import mask_iou, summarize
from flashbench.metrics.segment.encoder import auto_image_size
from flashbench.metrics.segment.mobilesam import load_mobilesam
from flashbench.metrics.segment.prompts import mask_prompts
from flashbench.video import read_video, write_video


@torch.inference_mode()
def before_tracking(model, frames: np.ndarray, prompts: np.ndarray) -> float:
    """Seconds for the previous pipeline's work on a video: SamPredictor.set_image (1024^2) + one batched
    box/point decode per frame (its loss rules cost nothing next to these)."""
    predictor = SamPredictor(model)
    start = time.perf_counter()
    for frame in frames:
        predictor.set_image(frame)
        boxes, points = mask_prompts(prompts, 1, 0.1)
        coords = torch.as_tensor(predictor.transform.apply_coords(points, predictor.original_size), dtype=torch.float)
        box_t = torch.as_tensor(predictor.transform.apply_boxes(boxes, predictor.original_size), dtype=torch.float)
        predictor.predict_torch(coords, torch.ones(coords.shape[:2], dtype=torch.int), box_t, multimask_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128, help="video side (square)")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--objects", type=int, default=2)
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    hw = (args.size, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        scenes = []
        for seed in range(args.scenes):
            scene = generate_scene(args.objects, args.frames, hw, seed=seed)
            path = Path(tmp) / f"{seed}.mp4"
            write_video(path, scene.frames, 24.0)
            scenes.append((path, scene.masks))
        n_frames = args.scenes * args.frames
        n_obj_frames = n_frames * args.objects

        auto = auto_image_size(*hw)
        sizes = sorted({256, 512, 1024, auto})
        print(f"video {hw[0]}x{hw[1]}, {args.scenes} scenes x {args.frames} frames x {args.objects} objects; "
              f"auto encoder size {auto}; device {args.device}")
        after = {}
        for size in sizes:
            tracker = load_mobilesam(device=args.device, image_size=size, progress=False)
            ious, seconds = [], 0.0
            for path, masks in scenes:
                frames = read_video(path)
                first = masks.any(axis=(2, 3)).argmax(axis=0)
                t0 = time.perf_counter()
                pred = tracker.track(frames, masks[first, np.arange(masks.shape[1])], first)
                seconds += time.perf_counter() - t0
                ious.append(summarize(mask_iou(pred, masks, first)).mean)
            after[size] = (seconds, float(np.mean(ious)))
        model = load_mobilesam(device=args.device, image_size=1024).model_for(1024, 1024)
        before = 0.0
        for path, masks in scenes:
            first = masks.any(axis=(2, 3)).argmax(axis=0)
            before += before_tracking(model, read_video(path), masks[first, np.arange(masks.shape[1])])

        print(f"\ntracking, s per frame per object (before: SamPredictor at 1024, {before / n_obj_frames:.3f})")
        print(f"{'encoder size':>12} {'s/frame/obj':>11} {'vs before':>9} {'mask IoU':>8}")
        for size, (sec, iou) in after.items():
            tag = " (auto)" if size == auto else ""
            print(f"{size:>12} {sec / n_obj_frames:>11.3f} {before / sec:>8.1f}x {100 * iou:>8.1f}{tag}")

        fid, fvd = InceptionFeatures(device=args.device), I3DFeatures(device=args.device, clip_len=min(16, args.frames))
        t0 = time.perf_counter()
        for path, _ in scenes:  # before: every consumer decodes the file itself
            read_video(path)  # the tracker's decode
            fid.video_features(path)
            fvd.video_features(path)
        sep = time.perf_counter() - t0
        t0 = time.perf_counter()
        for path, _ in scenes:  # after: one decode shared by the tracker and both feature extractors
            frames = read_video(path)
            fid.video_features(frames)
            fvd.video_features(frames)
        shared = time.perf_counter() - t0
        print(f"\ndecode + FID + FVD features, s per frame: before (one decode each) {sep / n_frames:.3f}, "
              f"after (one shared decode) {shared / n_frames:.3f}, ratio {sep / shared:.2f}x")


if __name__ == "__main__":
    main()
