"""CLI: `flashbench generate`, `flashbench evaluate`, `flashbench demo` (heavy imports inside the handlers)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashbench.cli import check_device, folder_arg, positive_float, positive_int
from flashbench.errors import FlashBenchError
from flashbench.eval_features import FVD_PROTOCOLS
from flashbench.generators.base import CONDITIONS
from flashbench.metrics.segment.base import SEGMENTERS


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser(
        "generate",
        help="run a generator over a benchmark into a run folder (resumable, shardable)",
        description="Writes RUN/videos/<id>.mp4, RUN/generation.jsonl and RUN/run.json. Rerunning skips finished "
        "samples. With --shard i/N (0 <= i < N) each shard logs to RUN/generation.shard-i-of-N.jsonl; the last "
        "shard to finish merges the logs (or run with --merge; evaluate also merges).",
    )
    gen.add_argument("--bench", type=Path, help="benchmark folder")
    gen.add_argument("--generator", help="registered name or module:Class, optionally with key=value args")
    gen.add_argument("--gen-arg", action="append", default=[], metavar="KEY=VALUE",
                     help="generator argument (repeatable; value typed as YAML)")
    gen.add_argument("--out", type=folder_arg, required=True, help="run folder")
    gen.add_argument("--condition", default=CONDITIONS[0], choices=CONDITIONS)
    gen.add_argument("--seed", type=int, default=0, help="run seed (per-sample seeds derive from it)")
    gen.add_argument("--shard", default="0/1", help="i/N: generate every N-th sample starting at i (0-based)")
    gen.add_argument("--limit", type=positive_int, default=None, help="only the first N samples of the benchmark")
    gen.add_argument("--name", default=None, help="display name in reports (default: the generator's name)")
    gen.add_argument("--device", default="cpu", help="passed to generators that take a `device` argument")
    gen.add_argument("--retry-errors", action="store_true", help="retry samples whose generation failed")
    gen.add_argument("--merge", action="store_true", help="only merge the shard logs of --out, then exit")
    gen.add_argument("--isolate", action="store_true",
                     help="run the generator in a worker process: a sample that ends that process (os._exit, a "
                     "crash) is recorded as an error and a fresh worker goes on")
    gen.add_argument("--timeout", type=positive_float, default=None, metavar="S",
                     help="per-sample limit in seconds (implies --isolate): a sample still generating then is "
                     "recorded as a timeout error, its worker killed, and the run goes on with a fresh one")
    _add_verify_args(gen)
    gen.set_defaults(func=_generate)

    ev = subparsers.add_parser(
        "evaluate",
        help="score a run: segmenter IoU per sample, FID/FVD per group and overall, results.json",
        description="Resumable: reuses RUN/samples.jsonl and RUN/features/ entries; real-video features are "
        "cached under $FLASHBENCH_HOME/features/<benchmark content hash>/. With --shard i/N each shard scores "
        "every N-th sample into RUN/samples.shard-i-of-N.jsonl; the shard that completes the set writes "
        "results.json. Under torchrun (`torchrun --nproc-per-node G -m flashbench.cli -- evaluate ... --device "
        "cuda`) rank r takes shard r/G on cuda:LOCAL_RANK and rank 0 writes results.json.",
    )
    ev.add_argument("--bench", type=Path, required=True, help="benchmark folder the run was generated on")
    ev.add_argument("--run", type=Path, required=True, help="run folder written by `flashbench generate`")
    ev.add_argument("--segmenter", default="mobilesam", choices=tuple(SEGMENTERS))
    ev.add_argument("--segmenter-checkpoint", default=None, help="segmenter weight file (sam, sam2 and efficienttam need one)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--fid-stride", type=positive_int, default=1, help="use every K-th frame for FID")
    ev.add_argument("--fvd-protocol", default="clips", choices=FVD_PROTOCOLS,
                    help="clips: non-overlapping --clip-len-frame clips, one FVD row each (default); whole-video: "
                    "one I3D clip and row per video, the TF/StyleGAN-V reference protocol")
    ev.add_argument("--clip-len", type=positive_int, default=16, help="frames per FVD clip (--fvd-protocol clips)")
    ev.add_argument("--bootstrap", type=positive_int, default=1000, metavar="N", help="interval resamples for 95%% CIs")
    ev.add_argument("--no-bootstrap", action="store_true", help="skip the confidence intervals")
    ev.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ev.add_argument("--shard", default=None, help="i/N: score every N-th sample starting at i (0-based)")
    ev.add_argument("--allow-errors", action="store_true",
                    help="exit 0 even when some samples failed (they are listed in results.json, never scored)")
    _add_verify_args(ev)
    ev.set_defaults(func=_evaluate)

    demo = subparsers.add_parser(
        "demo", help="the paper's table at toy scale: every generator on a synthetic FlashBench-mini, CPU, ~20 min"
    )
    demo.add_argument("--out", type=folder_arg, default=Path("reports/demo"))
    demo.add_argument("--quick", action="store_true",
                      help="groups 1 and 2 with 2 videos each (4 of the full demo's 24 videos per row)")
    demo.add_argument("--from-scratch", action="store_true",
                      help="first train every checkpoint (flashmotion pipeline --preset tiny, about an hour) under OUT")
    demo.add_argument("--checkpoints", type=Path, default=None, help="checkpoint folder (default: the shipped data/checkpoints)")
    demo.add_argument("--videos-per-group", type=positive_int, default=None, help="default 4 (--quick: 2)")
    demo.add_argument("--groups", default=None, help="object-count groups (default all six; --quick: 1,2)")
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(func=_demo)


def _add_verify_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--verify", dest="verify", action="store_const", const="full", default="auto",
                       help="check the benchmark's content hash in full (default: only when its files changed)")
    group.add_argument("--no-verify", dest="verify", action="store_const", const="off",
                       help="skip the benchmark content check (recorded in run.json / results.json)")


def _generate(args: argparse.Namespace) -> int:
    from flashbench.data.benchmark import Benchmark
    from flashbench.generators.registry import parse_args
    from flashbench.run_files import merge_generation
    from flashbench.runner import Shard, generate, selected_samples

    if args.merge:
        if not (args.out / "run.json").is_file():
            raise FlashBenchError(f"--merge: {args.out} is not a run folder (no run.json); give the --out of a run")
        order = None
        if args.bench is not None:
            order = [s.id for s in selected_samples(Benchmark.load(args.bench), None)]
        print(f"merged: {merge_generation(args.out, order)}")
        return 0
    if args.bench is None or args.generator is None:
        raise FlashBenchError("generate needs --bench and --generator (or --merge to merge shard logs)")
    check_device(args.device)
    summary = generate(
        Benchmark.load(args.bench), args.out, args.generator, generator_args=parse_args(args.gen_arg),
        condition=args.condition, seed=args.seed, shard=Shard.parse(args.shard), limit=args.limit,
        name=args.name, device=args.device, retry_errors=args.retry_errors, verify=args.verify,
        timeout=args.timeout, isolate=args.isolate,
    )
    print(summary.message())
    return 1 if summary.failed_total else 0


def _evaluate(args: argparse.Namespace) -> int:
    from flashbench.data.benchmark import Benchmark
    from flashbench.distributed_eval import evaluate_distributed, torchrun_launch
    from flashbench.evaluation import EvalSettings, evaluate
    from flashbench.runner import Shard

    settings = EvalSettings(
        segmenter=args.segmenter, segmenter_checkpoint=args.segmenter_checkpoint, device=args.device,
        fid_stride=args.fid_stride, clip_len=args.clip_len, fvd_protocol=args.fvd_protocol, bootstrap=0 if args.no_bootstrap else args.bootstrap,
        seed=args.seed,
    )
    launch = torchrun_launch()
    if launch is None:  # under torchrun each rank takes cuda:LOCAL_RANK
        check_device(args.device)
    if launch is not None and args.shard is not None:
        raise FlashBenchError("--shard and torchrun both split the samples; use one of them")
    bench = Benchmark.load(args.bench)
    if launch is not None:
        results = evaluate_distributed(bench, args.run, settings, launch, verify=args.verify)
        if results is None:  # rank > 0: rank 0 prints and writes results.json
            return 0
    else:
        shard = Shard.parse(args.shard or "0/1")
        results = evaluate(bench, args.run, settings, shard=shard, verify=args.verify)
        if results is None:
            print(f"shard {shard.index}/{shard.count} scored into {args.run}; results.json is written by the "
                  "shard that completes the set")
            return 0
    o = results.overall

    def fmt(v: float | None, digits: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    print(f"{results.run.name}: n={o.n} FID={fmt(o.fid)} FVD={fmt(o.fvd)} "
          f"mask IoU={fmt(o.mask_iou)} box IoU={fmt(o.box_iou)} ObjMC={fmt(o.objmc)} px errors={len(results.errors)}")
    if results.ceiling is not None:
        c = results.ceiling.overall
        print(f"tracker ceiling (ground truth, {results.ceiling.segmenter}): mask IoU={fmt(c.mask_iou)} "
              f"box IoU={fmt(c.box_iou)} ObjMC={fmt(c.objmc)} px")
    print(f"results: {args.run / 'results.json'}")
    if results.errors and not args.allow_errors:
        print(f"error: {len(results.errors)} sample(s) failed and were not scored (listed under \"errors\" in "
              "results.json); fix them, or pass --allow-errors to accept a partial score", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    import dataclasses

    from flashbench.demo import DemoSettings, quick_settings, run_demo

    settings = quick_settings() if args.quick else DemoSettings()
    if args.videos_per_group is not None:
        settings = dataclasses.replace(settings, videos_per_group=args.videos_per_group)
    if args.groups is not None:
        settings = dataclasses.replace(settings, groups=args.groups)
    index = run_demo(args.out, settings, device=check_device(args.device), checkpoints=args.checkpoints, from_scratch=args.from_scratch)
    print(index)
    return 0
