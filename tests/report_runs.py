"""Builders of tiny benchmarks and fake evaluated RUN folders (RUN_SCHEMA) for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flashbench.data.benchmark import Benchmark, BenchmarkWriter
from flashbench.data.objects import write_objects
from flashbench.video import write_video

GROUPS = ("1", "2", "3+")
SIZE = (32, 48)
FRAMES = 9


def _scene(num_objects: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise background with moving coloured squares; masks (T, N, H, W)."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    frames = np.repeat(rng.integers(40, 120, size=(1, h, w, 3), dtype=np.uint8), FRAMES, axis=0)
    masks = np.zeros((FRAMES, num_objects, h, w), dtype=bool)
    for k in range(num_objects):
        y, x = 2 + 9 * k % (h - 12), 2 + 11 * k
        color = rng.integers(150, 255, size=3, dtype=np.uint8)
        for t in range(FRAMES):
            masks[t, k, y : y + 10, x + t : x + t + 10] = True
            frames[t][masks[t, k]] = color
    return frames, masks


def build_bench(root: Path, counts: tuple[int, ...] = (1, 2, 3, 4)) -> Benchmark:
    writer = BenchmarkWriter(root, name="tiny", groups=GROUPS, build={"kind": "test"})
    for i, n in enumerate(counts):
        frames, masks = _scene(n, seed=i)
        writer.add(f"s{i}-n{n}", frames, masks, fps=8.0, prompt=f"{n} squares <drift> & slide", source="test")
    return writer.close()


def metrics(
    fid=None, fvd=None, mask_iou=None, box_iou=None, seconds=None, n=4, ci=True, reasons=None, objmc=None
) -> dict:
    """A METRICS record; CIs are +-5% around each value when `ci`. Without `objmc` it has no ObjMC keys, as the
    files from before ObjMC."""
    values = {"fid": fid, "fvd": fvd, "mask_iou": mask_iou, "box_iou": box_iou}
    if objmc is not None:
        values.update(objmc=objmc, objmc_norm=objmc / 2)
    record = {
        "n": n,
        **values,
        "denoise_seconds": seconds,
        "nfe": 4.0,
        "ci95": {k: ([v * 0.95, v * 1.05] if ci and v is not None else None) for k, v in values.items()},
    }
    if reasons:
        record["reasons"] = reasons
    return record


def make_run(
    folder: Path,
    name: str,
    bench: Benchmark | None,
    overall: dict,
    groups: dict | None = None,
    steps: int | None = 4,
    samples: list[dict] | None = None,
    videos: bool = True,
    tracks: bool = True,
    errors: list[dict] | None = None,
    bench_hash: str | None = None,
    seed: int = 0,
    settings: dict | None = None,
    ceiling: dict | None = None,
) -> Path:
    """Write run.json, results.json (with the tracker `ceiling` record when given), samples.jsonl and (from
    `bench`) videos/ and tracks/ for every sample."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    content_hash = bench_hash or (bench.meta.content_hash if bench else "f" * 64)
    root = str(bench.root) if bench else "/nonexistent"
    run = {
        "schema_version": 1,
        "name": name,
        "generator": f"tests:{name}",
        "generator_args": {},
        "condition": "mask",
        "seed": seed,
        "steps": steps,
        "bench": {"root": root, "name": "tiny", "content_hash": content_hash},
        "created": "2025-01-01T00:00:00+00:00",
        "provenance": {"git_commit": "abc123"},
    }
    (folder / "run.json").write_text(json.dumps(run))
    rng = np.random.default_rng(seed)
    if samples is None and bench is not None:
        samples = [
            {
                "id": s.id,
                "group": s.group,
                "object_count": s.object_count,
                "status": "ok",
                "error": None,
                "mask_iou": float(rng.uniform(0.4, 0.9)),
                "box_iou": float(rng.uniform(0.4, 0.9)),
                "objects": [],
                "denoise_seconds": 0.1,
                "nfe": 4,
            }
            for s in bench
        ]
    samples = samples or []
    with open(folder / "samples.jsonl", "w") as f:
        for record in samples:
            f.write(json.dumps(record) + "\n")
    results = {
        "schema_version": 1,
        "run": {
            "name": name,
            "generator": run["generator"],
            "condition": "mask",
            "steps": steps,
            "seed": seed,
        },
        "overall": overall,
        "groups": groups or {},
        "settings": {"bootstrap": {"n": 1000, "seed": 0}, **(settings or {})},
        "provenance": {
            "git_commit": "0123456789abcdef",
            "git_dirty": False,
            "flashbench_version": "0.1.0",
            "packages": {},
            "bench_content_hash": content_hash,
            "created": "2025-01-02T03:04:05+00:00",
        },
        "errors": errors or [],
        "ceiling": ceiling,
    }
    (folder / "results.json").write_text(json.dumps(results))
    if bench is not None:
        for i, sample in enumerate(bench):
            target = bench.tracks(sample)
            frames = bench.read_video(sample).astype(np.int16) + rng.integers(-20, 20, size=(1, 1, 1, 3))
            if videos:
                write_video(
                    folder / "videos" / f"{sample.id}.mp4", frames.clip(0, 255).astype(np.uint8), fps=8.0
                )
            if tracks:
                (folder / "tracks").mkdir(exist_ok=True)
                pred = np.roll(target.masks, shift=i % 3, axis=-1)
                write_objects(
                    folder / "tracks" / f"{sample.id}.json",
                    pred,
                    target.object_ids,
                    [None] * target.num_objects,
                )
    return folder


def ceiling(mask_iou: float, box_iou: float, objmc: float, groups: tuple[str, ...] = (), key: str = "c" * 16) -> dict:
    """A results.json `ceiling` record (IoU and ObjMC only), the same values in every group."""
    block = metrics(None, None, mask_iou, box_iou, None, objmc=objmc,
                    reasons=dict.fromkeys(("fid", "fvd", "denoise_seconds"), "tracking scores only"))
    return {"segmenter": "mobilesam", "segmenter_key": key, "overall": block, "groups": dict.fromkeys(groups, block)}
