"""CLI: `flashbench weights fetch|list|verify`, `flashbench fid A B`, `flashbench fvd A B`.

A and B are folders of videos (mp4 ...) or folders of frame folders (PNG/JPG frames), as pytorch-fid takes
folders of images; the last line printed is `FID: <value>` / `FVD: <value>`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flashbench.cli import check_device, positive_int
from flashbench.errors import FlashBenchError, VideoError, WeightsError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `weights`, `fid` and `fvd` subcommands."""
    w = sub.add_parser("weights", help="fetch, list or verify the metric weight files")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    fetch = wsub.add_parser(
        "fetch",
        help="download (or copy --from a local file or URL) into the cache, sha256-verified "
        "(an unpinned alternative is format-checked instead, with a warning)",
    )
    fetch.add_argument("names", nargs="*", help="registry names (default: all)")
    fetch.add_argument(
        "--from", dest="source", help="a local copy of the file, or an http(s) URL to it (one NAME only)"
    )
    fetch.set_defaults(func=_weights_fetch)
    wsub.add_parser("list", help="registry entries and cache status").set_defaults(func=_weights_list)
    verify = wsub.add_parser(
        "verify", help="re-hash the cached files and their derived files (damaged derived files are rebuilt)"
    )
    verify.add_argument("names", nargs="*", help="registry names (default: all)")
    verify.set_defaults(func=_weights_verify)

    fid = sub.add_parser("fid", help="FID between two folders of videos or frame folders")
    _add_pair_args(fid, batch_size=32)
    fid.add_argument("--stride", type=positive_int, default=1, help="use every N-th frame (default 1: all frames)")
    fid.set_defaults(func=_fid)

    fvd = sub.add_parser("fvd", help="FVD between two folders of videos or frame folders")
    _add_pair_args(fvd, batch_size=8)
    fvd.add_argument(
        "--clip-len", type=int, default=16, help="frames per I3D clip (0: each whole video is one clip)"
    )
    fvd.add_argument("--clip-stride", type=positive_int, help="frames between clip starts (default: --clip-len)")
    fvd.set_defaults(func=_fvd)


def _add_pair_args(p: argparse.ArgumentParser, batch_size: int) -> None:
    p.add_argument("a", type=Path, help="folder of videos or of frame folders")
    p.add_argument("b", type=Path, help="folder of videos or of frame folders")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help=f"batch size (default {batch_size})")


def _names(names: list[str]) -> list[str]:
    from flashbench import weights

    for name in names:
        weights.get_entry(name)
    return names or sorted(weights.REGISTRY)


def _weights_fetch(args: argparse.Namespace) -> int:
    from flashbench import weights

    if args.source is not None and len(args.names) != 1:
        raise WeightsError("--from takes exactly one NAME: flashbench weights fetch NAME --from FILE")
    for name in _names(args.names):
        print(f"{name}: {weights.fetch(name, source=args.source)}")
    return 0


def _weights_list(args: argparse.Namespace) -> int:
    from flashbench import weights

    for name, entry in sorted(weights.REGISTRY.items()):
        path = weights.cached(name)
        print(f"{name}: {entry.description} [{path if path else 'not fetched'}]")
        for wf in entry.files:
            size = f"{wf.size} bytes" if wf.size is not None else "size not pinned"
            sources = [
                *wf.urls,
                *([f"pip {wf.package.requirement} ({wf.package.kind})"] if wf.package else []),
            ]
            sha = f"sha256 {wf.sha256}" if wf.pinned else f"sha256 not pinned (used only when listed in $FLASHBENCH_TRUSTED_SHA256; format check: {wf.check})"
            print(f"  {wf.filename}  {sha}  {size}  sources: {', '.join(sources) or '--from only'}")
    return 0


def _weights_verify(args: argparse.Namespace) -> int:
    from flashbench import weights

    bad = 0
    for name in _names(args.names):
        try:
            path = weights.verify(name)
            print(f"{name}: ok {path}")
            for line in weights.verify_derived(name, path):
                print(f"{name}: derived {line}")
        except WeightsError as e:
            print(f"{name}: {e}")
            bad += 1
    return 1 if bad else 0


def list_videos(folder: Path) -> list[Path]:
    """Videos (by suffix) or frame folders in `folder`, sorted by name; FlashBenchError if none."""
    from flashbench.metrics.fid import frame_files

    folder = Path(folder)
    if not folder.is_dir():
        raise VideoError(f"not a folder: {folder}")
    items = sorted(
        p
        for p in folder.iterdir()
        if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and frame_files(p))
    )
    if not items:
        raise VideoError(f"{folder} has no videos ({', '.join(VIDEO_SUFFIXES)}) or frame folders (PNG/JPG)")
    return items


def _features(extract, videos: list[Path], desc: str):
    import numpy as np
    from tqdm import tqdm

    return np.concatenate([extract(v) for v in tqdm(videos, desc=desc, unit="video")])


def _fid(args: argparse.Namespace) -> int:
    from flashbench.metrics.fid import InceptionFeatures
    from flashbench.metrics.frechet import fid_from_features

    if args.stride < 1:
        raise FlashBenchError(f"--stride must be >= 1, got {args.stride}")
    device = check_device(args.device)
    videos_a, videos_b = list_videos(args.a), list_videos(args.b)
    model = InceptionFeatures(device=device, batch_size=args.batch_size)
    a = _features(lambda v: model.video_features(v, stride=args.stride), videos_a, f"FID {args.a.name}")
    b = _features(lambda v: model.video_features(v, stride=args.stride), videos_b, f"FID {args.b.name}")
    print(f"FID: {fid_from_features(a, b)}")
    return 0


def _fvd(args: argparse.Namespace) -> int:
    from flashbench.metrics.fvd import I3DFeatures, fvd_from_features

    device = check_device(args.device)
    videos_a, videos_b = list_videos(args.a), list_videos(args.b)
    model = I3DFeatures(
        device=device,
        clip_len=args.clip_len or None,
        clip_stride=args.clip_stride,
        batch_size=args.batch_size,
    )
    a = _features(model.video_features, videos_a, f"FVD {args.a.name}")
    b = _features(model.video_features, videos_b, f"FVD {args.b.name}")
    print(f"FVD: {fvd_from_features(a, b)}")
    return 0
