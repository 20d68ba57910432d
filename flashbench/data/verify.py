"""Check that a benchmark's files still hold the content its meta.json was built with, before scoring on it.

The full check recomputes the content hash (every video decoded, flashbench.data.benchmark.content_hash) and
compares each real video's decoded frame count and size with its manifest record. It is slow on large
benchmarks, so a passed check leaves a stamp, sha256 over (path, size, mtime, ctime, inode, device) of every
file of the benchmark, under $FLASHBENCH_HOME/verified/; the next check with the same stamp and meta hash passes
without decoding. Any change of those (or a new or missing file) forces the full check again. The ctime is
what makes the stamp trustworthy: writing a file or setting its mtime back (`touch -d`, `os.utime`) sets it to
the current time, and no user call sets it back, so an edit of the same size with the mtime restored is
still seen; a file swapped in by rename has another inode.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path

from flashbench import atomic, weights
from flashbench.data.benchmark import Benchmark
from flashbench.errors import BenchmarkError
from flashbench.video import decoded_digest


class Verify(str, Enum):
    """How `generate`/`evaluate` check the benchmark: `auto` (stamp, full check when it changed), `full`
    (always decode everything: `--verify`) or `off` (`--no-verify`, recorded in provenance)."""

    AUTO = "auto"
    FULL = "full"
    OFF = "off"


def files_stamp(root: Path) -> str:
    """sha256 over (relative path, size, mtime_ns, ctime_ns, inode, device) of every file under `root`, sorted
    by path."""
    root = Path(root)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        fields = (path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        h.update(("\0".join(map(str, fields)) + "\n").encode())
    return h.hexdigest()


def _stamp_file(root: Path) -> Path:
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:24]
    return weights.home() / "verified" / f"{key}.json"


def _stamp_matches(bench: Benchmark, stamp: str) -> bool:
    try:
        record = json.loads(_stamp_file(bench.root).read_text())
    except (OSError, ValueError):
        return False
    return record.get("stamp") == stamp and record.get("content_hash") == bench.meta.content_hash


def check_videos(bench: Benchmark) -> None:
    """Every real video decodes to the frame count and size its manifest record says."""
    for sample in bench.samples:
        _, count, height, width = decoded_digest(bench.path(sample, "video"))
        if (count, height, width) != (sample.num_frames, sample.height, sample.width):
            raise BenchmarkError(
                f"{sample.id}: real video decodes to {count} frames of {height}x{width}, manifest says "
                f"{sample.num_frames} of {sample.height}x{sample.width}; rebuild the benchmark"
            )


def verify_benchmark(bench: Benchmark, mode: Verify | str = Verify.AUTO) -> str:
    """Raise BenchmarkError unless the benchmark's content matches its meta.json; return how it was checked:
    'stamp' (unchanged since a full check), 'full' or 'skipped' (mode off)."""
    mode = Verify(mode)
    if mode is Verify.OFF:
        return "skipped"
    stamp = files_stamp(bench.root)
    if mode is Verify.AUTO and _stamp_matches(bench, stamp):
        return "stamp"
    check_videos(bench)
    computed = bench.compute_content_hash()
    if computed != bench.meta.content_hash:
        raise BenchmarkError(
            f"{bench.root} no longer matches its meta.json (content hash {computed[:12]}, built as "
            f"{bench.meta.content_hash[:12]}): its files changed since the build; rebuild it "
            "(`flashbench validate` lists the problems) or pass --no-verify to score it as it is"
        )
    try:
        atomic.write_text(_stamp_file(bench.root), json.dumps(
            {"root": str(bench.root.resolve()), "stamp": stamp, "content_hash": computed}) + "\n")
    except OSError:
        pass  # read-only cache: the full check runs again next time
    return "full"
