"""`flashbench` entry point. Each area registers its own subcommands; heavy imports happen inside handlers."""

from __future__ import annotations

import argparse
import errno
import importlib
import math
import sys
from pathlib import Path

from flashbench.errors import FlashBenchError

# Modules exposing `register(subparsers)`; each adds its subcommands with `set_defaults(func=handler)`.
COMMAND_MODULES = (
    "flashbench.data.commands",  # build synthetic|davis|magicdata, validate
    "flashbench.metrics.commands",  # weights fetch|list|verify, fid, fvd
    "flashbench.harness_commands",  # generate, evaluate, demo
    "flashbench.report.commands",  # report, compare
    "flashbench.export_commands",  # export
)


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors on one line (`error: PROG: MESSAGE`), exit code 2, nothing written."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (fps, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for `HxW` sizes (e.g. 480x832) -> (height, width), both >= 1."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use HxW, e.g. 480x832") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: height and width must be >= 1")
    return h, w


def folder_arg(text: str) -> Path:
    """argparse type for an output folder: anything but an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    return path


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(text: str) -> str:
    """`text` when it names a torch device of DEVICE_TYPES that this machine has; else FlashBenchError."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise FlashBenchError(f"--device {text!r} is not a device; use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FlashBenchError(f"--device {text}: this machine has no usable CUDA GPU; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise FlashBenchError(f"--device {text}: there are only {torch.cuda.device_count()} GPUs (cuda:0 ...)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise FlashBenchError(f"--device {text}: MPS is not available here; use --device cpu")
    return text


def os_error_line(e: OSError) -> str:
    """One line for an OSError (disk full, read-only folder, name too long): what, where, what to do."""
    name = errno.errorcode.get(e.errno or 0, "")
    where = f" ({e.filename})" if e.filename else ""
    hint = {"ENOSPC": "free disk space", "EROFS": "use a writable folder", "EACCES": "check the permissions",
            "EPERM": "check the permissions", "ENAMETOOLONG": "use a shorter name"}.get(name, "check the path")
    return f"{e.strerror or e}{where}{f' [{name}]' if name else ''}; {hint} and rerun"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="flashbench", description="Trajectory-control video benchmark.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse `argv` and call the chosen handler; a FlashBenchError becomes `error: <message>` and exit code 2.

    A leading `--` is dropped: `torchrun ... -m flashbench.cli -- evaluate --run R` needs it (torchrun's own
    parser rejects `--run` as an ambiguous abbreviation of its --run-path), and some Python versions pass it on.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FlashBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the environment, not the code: disk full, read-only or missing folder, long name
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
