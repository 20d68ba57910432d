"""FVD and mask IoU of every model a `flashmotion pipeline` run produced, on a held-out benchmark.

Rows (each through flashbench's resumable generate + evaluate, same seeds, folders under --out):
  random-init-50   "wan-adapter" with no checkpoint (seeded random tiny backbone + zero adapter), 50-step CFG
  static           flashbench's `static` reference (the first frame repeated)
  vae-recon        the real video through the stage-0 VAE (the ceiling of every latent row below)
  static-vae       `static` through the stage-0 VAE: static at the VAE's sharpness, the bar for modelling motion
  teacher-50       stage0_dit export, 50-step CFG (its adapter is zero-initialised: no trajectory control)
  slow-adapter-50  stage1_adapter export, 50-step CFG
  fast+slow-4      ablation_slow_adapter export (FastGenerator + SlowAdapter), 4 steps
  flashmotion-4    stage3_hybrid export (FastGenerator + FastAdapter), 4 steps
A row whose export does not exist yet is printed as "not trained". FVD: lower is better; mask IoU: higher.

    python benchmarks/pipeline_quality.py --pipeline runs/pipeline --bench HELD_OUT --out runs/quality \
        [--condition box --device cpu --limit N --clip-len 16]
(build a held-out benchmark with another seed: flashbench build synthetic --out HELD_OUT --seed 7 ...)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flashbench import provenance
from flashbench.data.benchmark import Benchmark
from flashbench.evaluation import EvalSettings, evaluate
from flashbench.runner import generate

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def rows(pipeline: Path, preset: str, device: str) -> dict[str, tuple[str, Path | None]]:
    """name -> (generator spec, export folder it needs or None). The 50-step rows sample with the preset's teacher
    settings, configs/<preset>/wan_adapter.yaml (CFG scale included)."""
    common = f"preset={preset} device={device}"
    teacher = f"wan-adapter config={CONFIGS / preset / 'wan_adapter.yaml'}"
    export = lambda stage: pipeline / stage / "export"  # noqa: E731
    return {
        "random-init-50": (f"{teacher} {common}", None),
        "static": ("static", None),
        "vae-recon": (f"vae-reconstruction checkpoint={export('stage0_vae')} preset={preset} device={device}", export("stage0_vae")),
        "static-vae": (f"vae-reconstruction checkpoint={export('stage0_vae')} source=first-frame preset={preset} "
                       f"device={device}", export("stage0_vae")),
        "teacher-50": (f"{teacher} checkpoint={export('stage0_dit')} {common}", export("stage0_dit")),
        "slow-adapter-50": (f"{teacher} checkpoint={export('stage1_adapter')} {common}", export("stage1_adapter")),
        "fast+slow-4": (f"flashmotion checkpoint={export('ablation_slow_adapter')} {common}", export("ablation_slow_adapter")),
        "flashmotion-4": (f"flashmotion checkpoint={export('stage3_hybrid')} {common}", export("stage3_hybrid")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", required=True, type=Path, help="the pipeline's --out folder")
    parser.add_argument("--bench", required=True, type=Path, help="held-out benchmark folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--condition", default="box", choices=["mask", "box"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--clip-len", type=int, default=16, help="FVD clip frames (<= the benchmark's frames)")
    parser.add_argument("--rows", default=None, help="comma-separated subset of the rows (default: all)")
    args = parser.parse_args(argv)
    bench = Benchmark.load(args.bench)
    results = {}
    table = rows(args.pipeline, args.preset, args.device)
    wanted = list(table) if args.rows is None else args.rows.split(",")
    unknown = sorted(set(wanted) - set(table))
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(table)}")
    for name, (spec, needs) in ((n, table[n]) for n in wanted):
        if needs is not None and not (needs / "flashmotion.json").is_file():
            results[name] = {"spec": spec, "fvd": None, "mask_iou": None, "note": "not trained"}
            continue
        run = args.out / name
        generate(bench, run, spec, condition=args.condition, limit=args.limit, name=name, device=args.device)
        overall = evaluate(bench, run, EvalSettings(device=args.device, clip_len=args.clip_len)).overall
        results[name] = {"spec": spec, "fvd": overall.fvd, "mask_iou": overall.mask_iou, "note": ""}
    print(f"{'run':16s} {'FVD':>10s} {'mask IoU':>9s}  spec")
    for name, r in results.items():
        fvd = r["note"] or ("n/a" if r["fvd"] is None else f"{r['fvd']:.2f}")
        iou = "" if r["note"] else ("n/a" if r["mask_iou"] is None else f"{r['mask_iou']:.3f}")
        print(f"{name:16s} {fvd:>10s} {iou:>9s}  {r['spec']}")
    record = {"results": results, "provenance": provenance.collect(
        device=args.device, bench_content_hash=bench.meta.content_hash, condition=args.condition, limit=args.limit,
        clip_len=args.clip_len)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline_quality.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
