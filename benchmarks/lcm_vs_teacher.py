"""LCM (ResNet) student at 4 steps vs its teacher (slow generator + SlowAdapter) at 4 steps, on a held-out benchmark.

Both run through flashbench's generate + evaluate (resumable run folders under --out), with the same seeds:
  teacher-4   "wan-adapter checkpoint=TEACHER steps=4"   (UniPC with CFG, the teacher's own sampler cut to 4 steps:
                                                           NFE 8)
  lcm-4       "baselines.lcm:LCM checkpoint=STUDENT"     (multistep consistency sampling, NFE 4)
and prints overall FVD (lower is better) and mask IoU (higher is better) and the student/teacher ratios. The
distillation should make the student win at equal steps; the script prints whatever comes out.

    python benchmarks/lcm_vs_teacher.py --bench HELD_OUT --teacher runs/tiny/stage1_adapter/export \
        --student runs/tiny/lcm/export --out runs/lcm_vs_teacher [--preset tiny --condition box --device cpu] \
        [--clip-len 9]   # FVD clip length: the tiny preset trains on 9-frame clips (I3D needs >= 9)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flashbench import provenance
from flashbench.data.benchmark import Benchmark
from flashbench.evaluation import EvalSettings, evaluate
from flashbench.runner import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, type=Path, help="held-out benchmark folder")
    parser.add_argument("--teacher", required=True, help="stage-1 export (slow generator + SlowAdapter)")
    parser.add_argument("--student", required=True, help="lcm export")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--condition", default="box", choices=["mask", "box"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--clip-len", type=int, default=16, help="FVD clip length (the videos need at least this many frames)")
    args = parser.parse_args(argv)
    bench = Benchmark.load(args.bench)
    common = f"preset={args.preset} device={args.device}"
    runs = {
        "teacher-4": f"wan-adapter checkpoint={args.teacher} steps=4 {common}",
        "lcm-4": f"baselines.lcm:LCM checkpoint={args.student} steps=4 {common}",
    }
    results = {}
    for name, spec in runs.items():
        run = args.out / name
        generate(bench, run, spec, condition=args.condition, limit=args.limit, name=name, device=args.device)
        overall = evaluate(bench, run, EvalSettings(device=args.device, clip_len=args.clip_len)).overall
        results[name] = {"fvd": overall.fvd, "mask_iou": overall.mask_iou, "spec": spec}
    print(f"{'run':10s} {'FVD':>10s} {'mask IoU':>9s}  spec")
    for name, r in results.items():
        fvd = "n/a" if r["fvd"] is None else f"{r['fvd']:.2f}"
        iou = "n/a" if r["mask_iou"] is None else f"{r['mask_iou']:.2f}"
        print(f"{name:10s} {fvd:>10s} {iou:>9s}  {r['spec']}")
    s, t = results["lcm-4"], results["teacher-4"]
    if s["fvd"] is not None and t["fvd"]:
        print(f"FVD student/teacher: {s['fvd'] / t['fvd']:.3f} (< 1: the student wins)")
    if s["mask_iou"] is not None and t["mask_iou"]:
        print(f"mask IoU student/teacher: {s['mask_iou'] / t['mask_iou']:.3f} (> 1: the student wins)")
    record = {"results": results, "provenance": provenance.collect(
        device=args.device, bench_content_hash=bench.meta.content_hash, condition=args.condition, limit=args.limit, clip_len=args.clip_len)}
    (args.out / "lcm_vs_teacher.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
