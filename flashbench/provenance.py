"""What a result file records about how it was made: code version, packages, platform, weights, data, command."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import flashbench

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "av",
    "pytorch-fid",
    "segment-anything",
    "timm",
    "diffusers",
    "transformers",
    "pycocotools",
)


def now() -> str:
    """UTC time, ISO 8601, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state(path: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding `path` (default: this package); (None, None) outside git."""
    cwd = Path(path or Path(flashbench.__file__).parent)

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain")
    return commit.strip(), None if status is None else bool(status.strip())


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def collect(device: str | None = None, **extra) -> dict:
    """The common provenance block: git commit/dirty, versions, python, platform, device, command, created.

    `extra` (weights, bench_content_hash, timings, ...) is merged in as given.
    """
    commit, dirty = git_state()
    record = {
        "git_commit": commit,
        "git_dirty": dirty,
        "flashbench_version": flashbench.__version__,
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "created": now(),
    }
    record.update(extra)
    return record
