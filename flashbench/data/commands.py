"""CLI: `flashbench build synthetic|davis|magicdata` and `flashbench validate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from flashbench.cli import folder_arg, positive_float, positive_int, size_arg
from flashbench.errors import BenchmarkError


def _list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _add_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=folder_arg, required=True, help="benchmark folder to write")
    p.add_argument("--fps", type=positive_float, help="resample to this frame rate (default: native)")
    p.add_argument("--frames", type=positive_int, help="exact number of frames per video (default: native length)")
    p.add_argument("--frames-mode", choices=("uniform", "first"), default="uniform",
                   help="how --frames shortens a longer video: spread over it, or keep the first frames")  # fmt: skip
    p.add_argument("--min-frames", type=positive_int, help="videos shorter than this are padded (--pad) or dropped (--drop)")
    pad = p.add_mutually_exclusive_group()
    pad.add_argument("--pad", dest="pad", action="store_true", help="pad short videos by repeating the last frame")
    pad.add_argument("--drop", dest="pad", action="store_false", help="drop short videos (default)")
    p.add_argument("--size", type=size_arg, help="resize to HxW (even); default native (odd sides cropped by one)")
    p.add_argument("--min-area", type=float, default=0.0, help="drop objects whose mean area ratio is below this")
    p.add_argument("--max-area", type=float, default=1.0, help="drop objects whose mean area ratio is above this")
    p.add_argument("--groups", default="1,2,3,4,5,6+", help="object-count groups (default 1,2,3,4,5,6+)")
    p.add_argument("--per-group-cap", type=positive_int, help="keep at most K videos per group")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it is not empty")


def _options(args: argparse.Namespace):
    from flashbench.data.build import BuildOptions
    from flashbench.data.groups import parse_groups

    return BuildOptions(
        fps=args.fps,
        frames=args.frames,
        frames_mode=args.frames_mode,
        min_frames=args.min_frames,
        pad=args.pad,
        size=args.size,
        min_area=args.min_area,
        max_area=args.max_area,
        groups=_groups(args.groups, parse_groups),
        per_group_cap=args.per_group_cap,
    )


def _groups(spec: str, parse) -> tuple[str, ...]:
    try:
        return parse(spec)
    except ValueError as e:
        raise BenchmarkError(str(e)) from None


def _synthetic(args: argparse.Namespace) -> int:
    from flashbench.data.groups import parse_groups
    from flashbench.data.synthetic import build_synthetic

    bench = build_synthetic(
        args.out, videos_per_group=args.videos_per_group, frames=args.frames, size=args.size,
        groups=_groups(args.groups, parse_groups), seed=args.seed, overwrite=args.overwrite, fps=args.fps,
        style=args.style,
    )  # fmt: skip
    sizes = ", ".join(f"{g}: {n}" for g, n in bench.meta.group_sizes.items())
    _wrote(bench, f" ({sizes})")
    return 0


def _wrote(bench, detail: str = "") -> None:
    """The build's last lines: where it went, and a warning when its videos are shorter than evaluate's default
    FVD clip (evaluate would refuse them with its defaults)."""
    import sys

    from flashbench.evaluation import EvalSettings
    from flashbench.metrics.fvd import MIN_CLIP_LEN

    print(f"wrote {len(bench)} samples to {bench.root}{detail}; content hash {bench.meta.content_hash}")
    shortest = min((s.num_frames for s in bench.samples), default=None)
    clip = EvalSettings().clip_len
    if shortest is not None and shortest < clip:
        fix = (f"evaluate with --clip-len {shortest} or --fvd-protocol whole-video" if shortest >= MIN_CLIP_LEN
               else f"FVD needs >= {MIN_CLIP_LEN} frames: rebuild with --frames {clip} (or --min-frames)")
        print(f"warning: the shortest video has {shortest} frames, fewer than evaluate's default {clip}-frame FVD "
              f"clips; {fix}", file=sys.stderr)


def _davis(args: argparse.Namespace) -> int:
    from flashbench.data.davis import build_davis

    bench, summary = build_davis(
        args.root, args.out, _options(args), resolution=args.resolution,
        sequences=_list(args.sequences) if args.sequences else None, captions=args.captions,
        source_fps=args.source_fps, overwrite=args.overwrite,
    )  # fmt: skip
    print(summary.format())
    _wrote(bench)
    return 0


def _magicdata(args: argparse.Namespace) -> int:
    from flashbench.data.magicdata import MagicDataColumns, build_magicdata, parse_palette

    columns = MagicDataColumns(prompt=args.prompt_column, image=args.image_column,
                               trajectory=args.trajectory_column, video=args.video_column, id=args.id_column)  # fmt: skip
    bench, summary = build_magicdata(
        args.csv, args.out, _options(args), columns=columns, base_dir=args.base_dir,
        palette=parse_palette(args.palette) if args.palette else None, tolerance=args.tolerance,
        black=args.black, still=args.still, overwrite=args.overwrite, skip_missing=args.skip_missing,
    )  # fmt: skip
    print(summary.format())
    _wrote(bench)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from flashbench.data.validate import validate_benchmark

    if not args.dir.is_dir():
        raise BenchmarkError(f"{args.dir} is not a folder; give a benchmark folder (made by `flashbench build`)")
    report = validate_benchmark(args.dir)
    print(report.format())
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `build` (synthetic | davis | magicdata) and `validate`."""
    build = subparsers.add_parser("build", help="build a benchmark (synthetic, or import DAVIS / MagicData)")
    kinds = build.add_subparsers(dest="builder", required=True)

    syn = kinds.add_parser("synthetic", help="procedural videos of moving textured shapes")
    syn.add_argument("--out", type=folder_arg, required=True, help="benchmark folder to write")
    syn.add_argument("--videos-per-group", type=positive_int, default=8)
    syn.add_argument("--frames", type=positive_int, default=121)
    syn.add_argument("--fps", type=positive_float, default=24.0)
    syn.add_argument("--size", type=size_arg, default=(256, 256), help="HxW, even (default 256x256)")
    syn.add_argument("--groups", default="1,2,3,4,5,6+")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--style", choices=("textured", "flat"), default="textured",
                     help="textured objects and background (default), or plain objects 1.3x larger on a smooth background")
    syn.add_argument("--overwrite", action="store_true")
    syn.set_defaults(func=_synthetic)

    davis = kinds.add_parser("davis", help="import a DAVIS-2016/2017 folder")
    davis.add_argument("--root", type=Path, required=True, help="DAVIS folder (JPEGImages/, Annotations/)")
    davis.add_argument("--resolution", default="480p")
    davis.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    davis.add_argument("--captions", type=Path, help="JSON {sequence: prompt} (default: prompt from the name)")
    davis.add_argument("--source-fps", type=positive_float, default=24.0, help="frame rate of the DAVIS frames (24)")
    _add_filter_args(davis)
    davis.set_defaults(func=_davis)

    magic = kinds.add_parser("magicdata", help="import a MagicMotion/MagicData-style CSV")
    magic.add_argument("--csv", type=Path, required=True)
    magic.add_argument("--root", "--base-dir", dest="base_dir", type=Path,
                       help="relative paths in the CSV start here (default: its folder; for MagicMotion's own CSVs, "
                            "its repo folder)")  # fmt: skip
    magic.add_argument("--prompt-column", default="validation_prompt")
    magic.add_argument("--image-column", default="validation_images")
    magic.add_argument("--trajectory-column", default="validation_trajectory_maps",
                       help="mask-trajectory mp4(s), several separated by ';'")  # fmt: skip
    magic.add_argument("--video-column", default="video", help="the real video (reference for FID/FVD)")
    magic.add_argument("--id-column", default="id")
    magic.add_argument("--still", action="store_true", help="without a video, repeat the first frame as reference")
    magic.add_argument("--skip-missing", action="store_true",
                       help="skip rows whose files are missing (counted in the build summary) instead of failing")  # fmt: skip
    magic.add_argument("--palette", help="object colours R,G,B;R,G,B (default: dominant colours of the video)")
    magic.add_argument("--tolerance", type=float, default=40.0, help="max RGB L2 distance to an object colour")
    magic.add_argument("--black", type=int, default=40, help="pixels with every channel <= this are background")
    _add_filter_args(magic)
    magic.set_defaults(func=_magicdata)

    val = subparsers.add_parser("validate", help="check a benchmark folder's integrity")
    val.add_argument("dir", type=Path)
    val.set_defaults(func=_validate)
