"""`flashbench demo`: the whole pipeline on a small synthetic benchmark, on CPU, in a few minutes.

OUT/bench (synthetic benchmark, validated) -> OUT/runs/{ground-truth,static,copy-paste} (generated, evaluated)
-> OUT/index.html (report). Every stage is resumable, so a rerun reuses finished work; a benchmark folder built
with other settings is refused rather than mixed.
"""

from __future__ import annotations

from pathlib import Path

from flashbench import weights
from flashbench.data.benchmark import Benchmark
from flashbench.data.groups import parse_groups
from flashbench.errors import BenchmarkError, FlashBenchError

REFERENCE_GENERATORS = ("ground-truth", "static", "copy-paste")
DEMO_WEIGHTS = ("inception-fid", "i3d-kinetics400", "mobilesam")


def _benchmark(root: Path, videos_per_group: int, frames: int, size: tuple[int, int], groups: tuple[str, ...],
               seed: int) -> Benchmark:
    from flashbench.data.synthetic import GENERATOR_VERSION, build_synthetic
    from flashbench.data.validate import validate_benchmark

    wanted = {"videos_per_group": videos_per_group, "frames": frames, "size": list(size), "groups": list(groups),
              "seed": seed, "generator_version": GENERATOR_VERSION}
    if (root / "meta.json").is_file():
        bench = Benchmark.load(root)
        have = {k: bench.meta.build.get(k) for k in wanted}
        if have != wanted:
            raise BenchmarkError(f"{root} holds a demo benchmark built with {have}, not {wanted}; "
                                 "pass another --out or delete that folder")
    else:
        bench = build_synthetic(root, videos_per_group=videos_per_group, frames=frames, size=size, groups=groups,
                                seed=seed, overwrite=root.exists())
    report = validate_benchmark(root, progress=False)
    if report.problems:
        raise BenchmarkError(f"demo benchmark {root} failed validation: {report.problems[0]}")
    print(report.format(), flush=True)
    return bench


def run_demo(
    out: Path = Path("reports/demo"),
    videos_per_group: int = 1,
    frames: int = 16,
    size: tuple[int, int] = (128, 128),
    groups: str = "1,2,3",
    device: str = "cpu",
    seed: int = 0,
) -> Path:
    """Build, generate, evaluate and report; returns the path of OUT/index.html."""
    from flashbench.evaluation import EvalSettings, evaluate
    from flashbench.report.writer import write_report
    from flashbench.runner import generate

    if frames < 16:
        raise FlashBenchError(f"demo needs --frames >= 16 (one 16-frame FVD clip), got {frames}")
    out = Path(out)
    for name in DEMO_WEIGHTS:  # cache-first: downloads only on a fresh machine
        weights.fetch(name)
    bench = _benchmark(out / "bench", videos_per_group, frames, size, parse_groups(groups), seed)
    settings = EvalSettings(device=device)
    runs = []
    for name in REFERENCE_GENERATORS:
        run = out / "runs" / name
        summary = generate(bench, run, name, device=device)
        if summary.failed_total:
            raise FlashBenchError(f"demo: {summary.message()}")
        evaluate(bench, run, settings)
        runs.append(run)
    return write_report(runs, out)
