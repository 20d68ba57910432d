"""`flashbench generate`: run a generator over a benchmark into a run folder (see RUN_SCHEMA).

Resumable and kill -9 safe: each video is written to a temp name and renamed, then its record is appended to
the generation log, so a finished id has both; a rerun skips ids already logged (`retry_errors` retries the
failed ones) and removes temp files a killed run left. `--shard i/N` (i in 0..N-1) takes every N-th sample of
the (optionally `--limit`ed) benchmark and logs to its own `generation.shard-i-of-N.jsonl`; the last shard to
finish merges the logs into generation.jsonl (so does `flashbench generate --out RUN --merge`), and evaluate
reads the merged view either way. Per-sample seeds are derived from (run seed, sample id), so a sample gets
the same seed whatever the sharding or order. Where the generator runs (in this process, or in a worker process
with `--isolate` / `--timeout`, so that a sample that kills its process is recorded): flashbench.sample_worker.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from flashbench import provenance
from flashbench.data.benchmark import Benchmark
from flashbench.data.sample import Sample
from flashbench.data.verify import Verify, verify_benchmark
from flashbench.errors import FlashBenchError, VideoError
from flashbench.generators.base import CONDITIONS, GenerationRequest, check_output
from flashbench.generators.registry import accepts, format_spec, generator_factory, parse_spec
from flashbench.run_files import (
    RUN_JSON,
    VIDEOS,
    RunError,
    append_jsonl,
    generation_records,
    merge_generation,
    read_json,
    shard_log_name,
    write_json,
)
from flashbench.sample_worker import InFlight, InProcess, SampleFailed, SampleTimeout, Worker, one_line
from flashbench.video import RUN_VIDEO_STORE, video_info, write_rgb_lossless

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based): the samples at positions index, index + count, ..."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
            raise FlashBenchError(f"bad --shard {text!r}: use i/N with 0 <= i < N, e.g. 0/4")
        return cls(int(m.group(1)), int(m.group(2)))

    def select(self, samples: list[Sample]) -> list[Sample]:
        return samples[self.index :: self.count]


@dataclass
class GenerateSummary:
    """Outcome of one `generate` call: counts over this shard's samples and where records went."""

    run: Path
    generated: int
    failed: int
    skipped: int
    log: Path
    failed_total: int

    def message(self) -> str:
        text = f"{self.generated} generated, {self.skipped} already done, {self.failed} failed in {self.run}"
        if self.failed_total:
            text += (f"; {self.failed_total} sample(s) failed: see status \"error\" records in {self.log} "
                     "(rerun with --retry-errors after fixing the generator)")
        return text


def sample_seed(run_seed: int, sample_id: str) -> int:
    """Deterministic per-sample seed in [0, 2**31) from the run seed and the sample id."""
    digest = hashlib.sha256(f"{int(run_seed)}/{sample_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def selected_samples(bench: Benchmark, limit: int | None) -> list[Sample]:
    """The samples a run covers: the first `limit` of the benchmark (all when None)."""
    if limit is not None and limit < 1:
        raise FlashBenchError(f"--limit must be >= 1, got {limit}")
    return list(bench.samples[:limit] if limit is not None else bench.samples)


def build_request(bench: Benchmark, sample: Sample, condition: str, run_seed: int) -> GenerationRequest:
    """The request for one sample: first frame, prompt, target masks/boxes, size, per-sample seed."""
    tracks = bench.tracks(sample)
    return GenerationRequest(
        sample_id=sample.id,
        first_frame=bench.first_frame(sample),
        prompt=sample.prompt,
        masks=tracks.masks,
        boxes=tracks.boxes,
        condition=condition,  # type: ignore[arg-type]
        num_frames=sample.num_frames,
        fps=sample.fps,
        height=sample.height,
        width=sample.width,
        seed=sample_seed(run_seed, sample.id),
    )


def _check_compatible(out: Path, bench: Benchmark, spec: str, condition: str, seed: int) -> dict | None:
    """The existing run.json of `out` (None if new); RunError if it was made with another generator spec,
    condition, seed or benchmark content."""
    path = out / RUN_JSON
    if not path.is_file():
        return None
    existing = read_json(path, "delete the run folder or choose another --out")
    for key, value, label in (("generator", spec, "generator spec"), ("condition", condition, "condition"),
                              ("seed", seed, "seed")):
        if existing.get(key) != value:
            raise RunError(f"{out} was made with {label} {existing.get(key)!r}, not {value!r}; "
                           "use another --out (or delete that run) to change it")
    check_video_store(out, existing)
    old_hash = (existing.get("bench") or {}).get("content_hash")
    if old_hash != bench.meta.content_hash:
        raise RunError(f"{out} was generated on benchmark content {str(old_hash)[:12]}, but {bench.root} is "
                       f"{bench.meta.content_hash[:12]}; use another --out for this benchmark")
    return existing


def check_video_store(run: Path, info: dict) -> None:
    """RunError unless run.json `info` records the video store this version writes (RUN_VIDEO_STORE). Runs from
    before it stored x264 yuv420p crf 12: lossy copies whose scores are not those of what the generator made."""
    store = info.get("video_store")
    if store != RUN_VIDEO_STORE:
        what = "lossy x264 crf 12 (from before runs were stored losslessly)" if store is None else store
        raise RunError(f"{run} stores its videos as {what}, not {RUN_VIDEO_STORE['codec']} lossless RGB: its scores "
                       "would be of a copy, not of what the generator made; generate it again into a new --out")


def _remove_stale_temps(videos: Path, sample_id: str) -> None:
    """Delete temp files a killed writer left for this id (the atomic writer names them .<id>.<pid>.tmp.mp4)."""
    pattern = re.compile(rf"^\.{re.escape(sample_id)}\.\d+\.tmp\.mp4$")
    for p in videos.glob(".*.tmp.mp4"):
        if pattern.match(p.name):
            p.unlink(missing_ok=True)


def _generate_one(engine, bench: Benchmark, sample: Sample, condition: str, run_seed: int, out: Path, log: Path,
                  device: str, inflight: InFlight | None) -> int:
    """Generate, check and write one sample, then log its record; returns 1 when it failed, else 0. `inflight`
    (in-process engines): names the sample while it is generated, so a process that dies leaves its id behind."""
    _remove_stale_temps(out / VIDEOS, sample.id)
    record = {"id": sample.id, "status": "ok", "error": None, "seed": sample_seed(run_seed, sample.id),
              "nfe": None, "denoise_seconds": None, "wall_seconds": None, "device": device}
    start = time.perf_counter()
    if inflight is not None:
        inflight.start(sample.id)
    try:
        request = build_request(bench, sample, condition, run_seed)
        video = engine.generate(request)
        record["wall_seconds"] = time.perf_counter() - start
        frames = check_output(video, request)
        target = out / VIDEOS / f"{sample.id}.mp4"
        try:
            write_rgb_lossless(target, frames, sample.fps)
        except OSError as e:  # the message may name only the temp file: name the video the run is missing
            raise OSError(e.errno, f"cannot write {target}: {e.strerror or e}", str(target)) from None
        record.update(nfe=int(video.nfe), denoise_seconds=float(video.denoise_seconds))
        if video.extra.get("warnings"):  # e.g. the `videos` generator resampling a mismatched file
            record["warnings"] = [str(w) for w in video.extra["warnings"]]
    except KeyboardInterrupt:
        if inflight is not None:
            inflight.clear()  # an interrupt is not a crash of this sample
        raise
    except SampleTimeout as e:
        record.update(status="error", error=f"timeout: {e}")
    except SampleFailed as e:
        record.update(status="error", error=str(e))
    except BaseException as e:  # noqa: BLE001 - a failing sample is logged and never scored; the run goes on
        record.update(status="error", error=one_line(e))
    append_jsonl(log, record)
    return int(record["status"] == "error")


def _video_complete(path: Path, num_frames: int) -> bool:
    """The video exists and demuxes to `num_frames` frames (a truncated or corrupt file does not)."""
    try:
        return video_info(path).num_frames == num_frames
    except VideoError:
        return False


def generate(
    bench: Benchmark,
    out: Path,
    spec: str,
    generator_args: dict | None = None,
    condition: str = "mask",
    seed: int = 0,
    shard: Shard = Shard(),
    limit: int | None = None,
    name: str | None = None,
    device: str = "cpu",
    retry_errors: bool = False,
    progress: bool = True,
    verify: Verify | str = Verify.AUTO,
    timeout: float | None = None,
    isolate: bool = False,
) -> GenerateSummary:
    """Generate every not-yet-finished sample of this shard into `out`; see the module docstring.

    Fault isolation: everything per sample (reading its files, building the request, generating, checking the
    output, writing the video) is inside the per-sample error path, `SystemExit` and other `BaseException`s
    included; only KeyboardInterrupt stops the run (finished samples stay logged). `isolate` runs the generator
    in a worker process (a sample that ends that process is recorded as an error, the worker restarted);
    `timeout` (seconds) bounds each generate call and implies `isolate` (a hung worker is killed). The benchmark
    is verified first (flashbench.data.verify)."""
    if condition not in CONDITIONS:
        raise FlashBenchError(f"unknown condition {condition!r}: use one of {', '.join(CONDITIONS)}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise FlashBenchError(f"--timeout must be a positive number of seconds, got {timeout}")
    gen_name, args = parse_spec(spec)
    args.update(generator_args or {})
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FlashBenchError(f"--out {out} is a file; give a run folder")
    run = _check_compatible(out, bench, format_spec(gen_name, args), condition, int(seed))  # before loading
    verified = verify_benchmark(bench, verify)
    kwargs = dict(args)
    if "device" not in kwargs and accepts(generator_factory(gen_name), "device"):
        kwargs["device"] = device
    isolate = isolate or timeout is not None
    inflight = InFlight(out / f".in-flight.{shard_log_name(shard.index, shard.count)}")
    died_on = None if isolate else inflight.died_on()
    if died_on is not None:
        print(f"note: the last run died while generating {died_on}; generating it in a worker process this time",
              file=sys.stderr)
    engine = Worker(gen_name, kwargs, bench.root, timeout) if isolate or died_on else InProcess(gen_name, kwargs, bench)
    (out / VIDEOS).mkdir(parents=True, exist_ok=True)
    if run is None:
        run = {
            "schema_version": SCHEMA_VERSION,
            "name": name or engine.name,
            "generator": format_spec(gen_name, args),
            "generator_args": args,
            "condition": condition,
            "seed": int(seed),
            "steps": engine.steps,
            "limit": limit,
            "video_store": RUN_VIDEO_STORE,
            "bench": {"root": str(bench.root.resolve()), "name": bench.meta.name,
                      "content_hash": bench.meta.content_hash, "verified": verified},
            "created": provenance.now(),
            "provenance": provenance.collect(device=device),
        }
        write_json(out / RUN_JSON, run)
    elif run.get("limit") != limit or (verified == "skipped" and run["bench"].get("verified") != "skipped"):
        run["limit"] = limit  # a later call may widen (or narrow) what the run covers
        if verified == "skipped":  # any call that skipped the check leaves its mark
            run["bench"]["verified"] = "skipped"
        write_json(out / RUN_JSON, run)
    samples = selected_samples(bench, run["limit"])
    mine = shard.select(samples)
    log = out / shard_log_name(shard.index, shard.count)
    records = generation_records(out)

    def finished(sample: Sample) -> bool:
        r = records.get(sample.id)
        if r is None:
            return False
        if r["status"] == "ok":  # a video lost or truncated since (copied badly, disk full) is made again
            return _video_complete(out / VIDEOS / f"{sample.id}.mp4", sample.num_frames)
        return not retry_errors

    todo = sorted((s for s in mine if not finished(s)), key=lambda s: s.id != died_on)  # that one first
    failed = 0
    try:
        for sample in tqdm(todo, desc=f"generate {run['name']}", unit="video", disable=not progress):
            if not isolate and isinstance(engine, Worker) and sample.id != died_on:
                engine.close()  # the sample that killed the last run is done: back to this process
                engine = InProcess(gen_name, kwargs, bench)
            failed += _generate_one(engine, bench, sample, condition, run["seed"], out, log, device,
                                    inflight if isinstance(engine, InProcess) else None)
    finally:
        engine.close()
    inflight.clear()
    merged = generation_records(out)
    if shard.count > 1 and all(s.id in merged for s in samples):
        log = merge_generation(out, [s.id for s in samples])
    failed_total = sum(1 for s in samples if merged.get(s.id, {}).get("status") == "error")
    return GenerateSummary(out, len(todo) - failed, failed, len(mine) - len(todo), log, failed_total)
