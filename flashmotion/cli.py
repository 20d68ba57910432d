"""`flashmotion` entry point: `sample` renders one benchmark sample with a FlashMotion checkpoint; `train` runs
one training stage from a YAML config (docs/TRAINING.md); `pipeline` runs every stage of a preset in order."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashbench.cli import OneLineParser, run
from flashbench.generators.base import CONDITIONS
from flashmotion.generator import DTYPES
from flashmotion.sampling import SAMPLERS, SOLVERS

FEW_STEP_MAX = 8  # --steps up to this use the few-step sampler unless --sampler says otherwise
# Options passed to the generator when given (None = the generator's default, or the --config file's value).
GENERATOR_OPTIONS = (
    "config", "preset", "checkpoint", "model_path", "adapter", "sampler", "steps", "shift", "guidance", "solver",
    "device", "dtype",
)


def _sample(args: argparse.Namespace) -> int:
    from flashbench.data.benchmark import Benchmark
    from flashbench.runner import build_request
    from flashbench.video import write_video
    from flashmotion.generator import FlashMotion, WanAdapter

    options = {key: getattr(args, key) for key in GENERATOR_OPTIONS if getattr(args, key) is not None}
    if args.sampler is None and args.steps is not None:
        options["sampler"] = "few_step" if args.steps <= FEW_STEP_MAX else "multistep"
    multistep = options.get("sampler") == "multistep"
    generator = (WanAdapter if multistep else FlashMotion)(**options)
    bench = Benchmark.load(Path(args.bench))
    request = build_request(bench, bench.get(args.sample), args.condition, args.seed)
    video = generator.generate(request)
    write_video(Path(args.out), video.frames, fps=request.fps)
    print(
        f"wrote {args.out}: {video.frames.shape[0]} frames {video.frames.shape[2]}x{video.frames.shape[1]}, "
        f"{generator.sampler.kind} {generator.sampler.steps} steps, NFE {video.nfe}, "
        f"denoising {video.denoise_seconds:.3f} s"
    )
    return 0


def _mp4_path(text: str) -> Path:
    path = Path(text)
    if path.is_dir() or path.suffix.lower() != ".mp4":
        raise argparse.ArgumentTypeError(f"{text} is not an .mp4 file path; give e.g. --out {path / 'sample.mp4'}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {path.parent} of {text} does not exist; create it first")
    return path


def _train(args: argparse.Namespace) -> int:
    from flashmotion.train.config import load_config
    from flashmotion.train.loop import train

    config = load_config(args.config, args.overrides)
    out = train(config, resume=args.resume, config_path=args.config)
    print(f"trained {config.stage} for {config.steps} steps: {out} (export: {out / 'export'})")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from flashmotion.train.pipeline import run_pipeline

    val_bench = Path(args.val_bench) if args.val_bench else None
    finished = run_pipeline(args.preset, Path(args.bench), Path(args.out), args.configs, args.model_path, args.until, val_bench)
    print(f"pipeline {args.preset}: {len(finished)} stages finished under {args.out}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from flashmotion.checkpoint_cards import publish

    out = publish(args.pipeline, args.out)
    print(f"published the run exports of {args.pipeline} with sha256 cards to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="flashmotion", description="Few-step trajectory-controllable image-to-video.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sample", help="generate one benchmark sample to an mp4")
    p.add_argument("--config", default=None, help="YAML of generator settings, e.g. configs/tiny/flashmotion.yaml")
    p.add_argument("--preset", default=None, help="backbone preset: tiny (default) | toy | wan2.2-ti2v-5b")
    p.add_argument("--checkpoint", default=None, help="FlashMotion checkpoint folder (default: fresh adapter)")
    p.add_argument("--model-path", default=None, help="local Wan2.2-TI2V-5B-Diffusers folder (5B preset)")
    p.add_argument("--adapter", default=None, help="adapter kind when there is no checkpoint (default resnet)")
    p.add_argument("--bench", required=True, help="benchmark folder")
    p.add_argument("--sample", required=True, help="sample id")
    p.add_argument("--condition", default="mask", choices=CONDITIONS)
    p.add_argument("--steps", type=int, default=None, help="default 4 (or the --config file's)")
    p.add_argument("--sampler", default=None, choices=SAMPLERS,
                   help=f"default: few_step for --steps <= {FEW_STEP_MAX}, else multistep (CFG)")
    p.add_argument("--shift", type=float, default=None, help="flow shift (default 5.0)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale for multistep (default 5.0)")
    p.add_argument("--solver", default=None, choices=SOLVERS, help="multistep solver (default unipc)")
    p.add_argument("--seed", type=int, default=0, help="run seed (per-sample seed derived as in flashbench)")
    p.add_argument("--device", default=None, help="default cpu")
    p.add_argument("--dtype", default=None, choices=tuple(DTYPES), help="default float32")
    p.add_argument("--out", type=_mp4_path, required=True, help="output .mp4 file")
    p.set_defaults(func=_sample)

    t = sub.add_parser("train", help="run one training stage (resumable; torchrun for several processes)")
    t.add_argument("--config", required=True, help="stage YAML, e.g. configs/tiny/stage1_adapter.yaml")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run's out folder")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, dotted for sections (data.bench=DIR)")
    t.set_defaults(func=_train)

    q = sub.add_parser("pipeline", help="every stage of a preset in order, skipping finished ones")
    q.add_argument("--preset", default="tiny", help="tiny | toy | wan2.2-ti2v-5b")
    q.add_argument("--bench", required=True, help="training benchmark folder")
    q.add_argument("--out", required=True, help="output folder (one sub-folder per stage)")
    q.add_argument("--configs", default=None, help="folder of stage YAMLs (default configs/<preset>)")
    q.add_argument("--model-path", default=None, help="local Wan2.2-TI2V-5B-Diffusers folder (5B preset)")
    q.add_argument("--until", default=None, help="stop after this stage or ablation (default: run all)")
    q.add_argument("--val-bench", default=None,
                   help="held-out benchmark for the stages that validate as they train (validate_every in their config)")
    q.set_defaults(func=_pipeline)

    c = sub.add_parser("publish", help="copy a pipeline's run exports to a checkpoint folder, each with a sha256 card")
    c.add_argument("--pipeline", required=True, type=Path, help="a `flashmotion pipeline` --out folder")
    c.add_argument("--out", required=True, type=Path, help="e.g. data/checkpoints")
    c.set_defaults(func=_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
