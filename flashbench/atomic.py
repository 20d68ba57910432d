"""Atomic file writes: every file a reader may see is either absent or complete.

Invariant: the target path only ever appears through `os.replace` of a fully written temp file in the same
folder (same filesystem, so the rename is atomic); a writer killed mid-write leaves at most a hidden temp file
`.<name>.<pid>.tmp<suffix>`, never a partial target. The temp file keeps the target's suffix, so libraries that
pick a format by extension (numpy's .npz, PyAV's .mp4) write the right one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_path(target: Path) -> Path:
    """The temp name `atomic_path` uses for `target` in this process."""
    target = Path(target)
    return target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")


@contextmanager
def atomic_path(target: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path next to `target`; when the block succeeds, rename it onto `target` (with permission
    bits `mode` when given); when it raises, delete the temp file and leave `target` as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
