"""CLI: `flashbench report RUN... --out DIR` and `flashbench compare RUN_A RUN_B ... [--base RUN] [--out DIR]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from flashbench.cli import folder_arg, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="leaderboard, per-group tables, plots, gallery and index.html"
    )
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="evaluated run folders (row order)")
    report.add_argument(
        "--out", type=folder_arg, required=True, help="report folder (index.html, leaderboard.md, ...)"
    )
    report.add_argument(
        "--base", type=Path, default=None, help="also write an ablation table against this run"
    )
    report.add_argument(
        "--allow-mixed", action="store_true", help="report runs on different benchmark content"
    )
    report.add_argument(
        "--gallery-per-group",
        type=int,
        default=2,
        metavar="K",
        help="gallery samples per object-count group (0: no gallery)",
    )
    report.add_argument("--n-boot", type=positive_int, default=10000, help="paired bootstrap resamples (with --base)")
    report.set_defaults(func=_report)

    compare = subparsers.add_parser(
        "compare", help="ablation table: deltas vs a base run, paired bootstrap tests"
    )
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="evaluated run folders")
    compare.add_argument("--base", type=Path, default=None, help="base run (default: the first RUN)")
    compare.add_argument(
        "--out",
        type=folder_arg,
        default=Path("reports/compare"),
        help="where compare.{md,csv,json} go (default: reports/compare)",
    )
    compare.add_argument(
        "--allow-mixed", action="store_true", help="compare runs on different benchmark content"
    )
    compare.add_argument("--n-boot", type=positive_int, default=10000, help="paired bootstrap resamples")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    compare.set_defaults(func=_compare)


def _report(args: argparse.Namespace) -> int:
    from flashbench.report.writer import write_report

    index = write_report(
        args.runs,
        args.out,
        base=args.base,
        allow_mixed=args.allow_mixed,
        gallery_per_group=args.gallery_per_group,
        n_boot=args.n_boot,
    )
    print((args.out / "leaderboard.md").read_text(), end="")
    print(f"report: {index}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from flashbench.report.compare import write_compare
    from flashbench.report.runs import check_same_benchmark, load_runs_with_base
    from flashbench.report.tables import to_markdown

    runs, base = load_runs_with_base(args.runs, args.base)
    base = base or runs[0]
    warning = check_same_benchmark(runs, args.allow_mixed)
    _, table = write_compare(runs, base, args.out, n_boot=args.n_boot, seed=args.seed, warning=warning)
    print(to_markdown(table), end="")
    print(f"written: {args.out / 'compare.md'} (.csv, .json)")
    return 0
