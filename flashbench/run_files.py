"""Files of a run folder (see RUN_SCHEMA): crash-safe JSON/JSONL IO and the merged view of generation logs.

JSONL logs are append-only. A process killed mid-append leaves at most one partial last line; readers skip it
and the next append cuts it off first, so every complete line survives and no line is ever half-read.
With `--shard i/N`, shard i appends to `<log>.shard-i-of-N.jsonl` (`generation` for generate, `samples` for
evaluate); readers merge all of them with `<log>.jsonl` (a later record for the same id wins) and `merge_logs`
folds them into one file, in the benchmark's order, so the merged file is the one a single process writes.

`scored_inputs` fingerprints what an evaluation scored (the generation records and the videos of the ok samples);
evaluate writes it into results.json and reports refuse a results.json whose run has changed since.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from flashbench import atomic
from flashbench.errors import FlashBenchError

RUN_JSON = "run.json"
GENERATION = "generation.jsonl"
SAMPLES = "samples.jsonl"
RESULTS = "results.json"
VIDEOS = "videos"
TRACKS = "tracks"
FEATURES = "features"
STATUSES = ("ok", "error")  # of every generation and samples record


class RunError(FlashBenchError):
    """A run folder is missing files, or belongs to another generator/benchmark."""


def shard_log_name(index: int, count: int, log: str = GENERATION) -> str:
    """The log (GENERATION or SAMPLES) of one shard: the plain log when there is a single shard."""
    return log if count == 1 else f"{log.removesuffix('.jsonl')}.shard-{index}-of-{count}.jsonl"


def write_json(path: Path, record: dict) -> None:
    """Write JSON atomically (temp file in the same folder, then rename)."""
    atomic.write_text(Path(path), json.dumps(record, indent=2) + "\n")


def read_json(path: Path, hint: str) -> dict:
    """Read a JSON file or raise RunError with `hint` (what to do)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing; {hint}") from None
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is not valid JSON ({e}); {hint}") from None


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSONL file; a partial last line (killed writer) is skipped, a bad line elsewhere is an error."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    records = []
    for i, line in enumerate(data.split(b"\n")[:-1], 1):  # text after the last newline was never finished
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise RunError(f"{path}:{i} is not valid JSON; fix or delete that line and rerun") from None
    return records


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record as a line, first cutting off a partial last line left by a killed writer."""
    path = Path(path)
    with open(path, "ab+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size:
            f.seek(max(0, size - 65536))
            tail = f.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                if cut < 0 and size > len(tail):
                    raise RunError(f"{path} ends with an over-long partial line; delete it and rerun")
                f.truncate(size - len(tail) + cut + 1)
        f.seek(0, os.SEEK_END)
        f.write((json.dumps(record) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def log_files(run: Path, log: str = GENERATION) -> list[Path]:
    """The plain log (GENERATION or SAMPLES) then its shard logs (sorted), those that exist."""
    run = Path(run)
    stem = re.escape(log.removesuffix(".jsonl"))
    shard = re.compile(rf"^{stem}\.shard-\d+-of-\d+\.jsonl$")
    shards = sorted(p for p in run.glob(f"{log.removesuffix('.jsonl')}.shard-*.jsonl") if shard.match(p.name))
    return [p for p in [run / log, *shards] if p.is_file()]


def latest_by_id(records: Iterable[dict]) -> dict[str, dict]:
    """Last record per id, in first-seen id order."""
    out: dict[str, dict] = {}
    for r in records:
        out.pop(r["id"], None)
        out[r["id"]] = r
    return out


def checked_records(path: Path) -> list[dict]:
    """read_jsonl of a generation or samples log whose every record has a sample id and a known status; else a
    RunError naming the file and the record."""
    records = read_jsonl(path)
    for i, r in enumerate(records, 1):
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not r["id"]:
            raise RunError(f"{path}: record {i} has no sample id; fix or delete that line and rerun")
        if r.get("status") not in STATUSES:
            raise RunError(f"{path}: record {i} ({r['id']}) has status {r.get('status')!r}, not one of "
                           f"{', '.join(STATUSES)}; fix or delete that line and rerun")
    return records


def merged_records(run: Path, log: str = GENERATION) -> dict[str, dict]:
    """Merged view of a log and its shard logs: the latest record per sample id (every record checked)."""
    return latest_by_id(r for path in log_files(run, log) for r in checked_records(path))


def merge_logs(run: Path, log: str = GENERATION, order: list[str] | None = None) -> Path:
    """Fold the shard logs into the plain log (latest record per id, in `order` when given) and delete them."""
    run = Path(run)
    paths = log_files(run, log)
    records = merged_records(run, log)
    if order is not None:
        rank = {sid: i for i, sid in enumerate(order)}
        records = dict(sorted(records.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    atomic.write_text(run / log, "".join(json.dumps(r) + "\n" for r in records.values()))
    for path in paths:
        if path.name != log:
            path.unlink(missing_ok=True)
    return run / log


def generation_logs(run: Path) -> list[Path]:
    """generation.jsonl then the generation shard logs (sorted), those that exist."""
    return log_files(run, GENERATION)


def generation_records(run: Path) -> dict[str, dict]:
    """Merged view of every generation log of the run: the latest record per sample id."""
    return merged_records(run, GENERATION)


def scored_inputs(run: Path) -> dict[str, str]:
    """{"generation": sha256 of the merged generation records (canonical JSON, by id), "videos": sha256 of the ok
    samples' ids and video sha256s ("missing" for an absent file)}: what an evaluation of `run` now scores."""
    from flashbench.weights import sha256_file

    run = Path(run)
    records = generation_records(run)
    generation, videos = hashlib.sha256(), hashlib.sha256()
    for sid in sorted(records):
        generation.update((json.dumps(records[sid], sort_keys=True) + "\n").encode())
        if records[sid].get("status") == "ok":
            path = run / VIDEOS / f"{sid}.mp4"
            videos.update(f"{sid} {sha256_file(path) if path.is_file() else 'missing'}\n".encode())
    return {"generation": generation.hexdigest(), "videos": videos.hexdigest()}


def merge_generation(run: Path, order: list[str] | None = None) -> Path:
    """Fold the generation shard logs into generation.jsonl (see `merge_logs`)."""
    return merge_logs(run, GENERATION, order)
