"""CLI: `flashbench export` (inputs for generators run elsewhere; heavy imports inside the handler)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from flashbench.cli import folder_arg
from flashbench.export import EXPORT_FORMATS, INDEX_JSON, MAGICMOTION_CSV, OUTPUTS
from flashbench.generators.base import CONDITIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write each sample's first frame, prompt, trajectory map and seed for a generator run elsewhere",
        description=f"Writes OUT/{INDEX_JSON} + index.csv and the per-sample inputs; 'magicmotion' also writes "
        f"OUT/{MAGICMOTION_CSV} (MagicMotion's validation CSV: 49 frames, 480x720, 8 fps). Put the generated "
        f"videos at OUT/{OUTPUTS}/<id>.mp4 and score them with --generator \"videos dir=OUT/{OUTPUTS}\". Resumable.",
    )
    p.add_argument("--bench", type=Path, required=True, help="benchmark folder")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="input layout to write")
    p.add_argument("--out", type=folder_arg, required=True, help="export folder: new, empty or an earlier export")
    p.add_argument("--condition", default=CONDITIONS[0], choices=CONDITIONS, help="trajectory map to render")
    p.add_argument("--seed", type=int, default=0, help="run seed; per-sample seeds match `flashbench generate --seed`")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples of the benchmark")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from flashbench.data.benchmark import Benchmark
    from flashbench.export import export

    index = export(Benchmark.load(args.bench), args.out, args.format, condition=args.condition, seed=args.seed,
                   limit=args.limit)
    print(f"exported {len(index['samples'])} samples ({args.format}, {args.condition}) to {args.out}")
    out = args.out.resolve()
    if args.format == "magicmotion":
        from baselines.magicmotion import inference_command

        print(f"run in your MagicMotion clone: {shlex.join(inference_command(out / MAGICMOTION_CSV, args.condition))}")
    then = ["flashbench", "generate", "--bench", str(args.bench.resolve()), "--generator",
            f"videos {shlex.quote(f'dir={out / OUTPUTS}')}",
            "--condition", args.condition, "--seed", str(args.seed), "--out", "RUN"]
    print(f"then: {shlex.join(then)}")
    return 0
