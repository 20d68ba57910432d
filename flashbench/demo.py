"""`flashbench demo`: the FlashMotion story at toy scale on CPU: every generator of the paper's table on a
synthetic FlashBench-mini, real metrics, one report.

OUT/bench (synthetic benchmark, all six object-count groups, validated) -> OUT/runs/<row> for every row of
`demo_rows` (generated, evaluated) -> OUT/index.html (leaderboard with steps / NFE / denoising seconds, per-group
tables, the ablation table against FlashMotion (ResNet), plots, gallery). The trained rows load the tiny
checkpoints shipped in data/checkpoints (sha256-checked against their cards), or with `from_scratch` the exports
of a fresh `flashmotion pipeline --preset tiny` run under OUT/pipeline. Every stage is resumable, so a rerun
reuses finished work; a benchmark folder built with other settings is refused rather than mixed.

The benchmark is built at the size the tiny checkpoints were trained at (48x48, 17 frames) from a seed the
training benchmark does not use, so every trained row is scored on held-out scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flashbench import weights
from flashbench.data.benchmark import Benchmark
from flashbench.data.groups import parse_groups
from flashbench.errors import BenchmarkError, FlashBenchError

REFERENCE_GENERATORS = ("ground-truth", "static", "copy-paste")
DEMO_WEIGHTS = ("inception-fid", "i3d-kinetics400", "mobilesam")
CHECKPOINTS = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
TEACHER_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tiny" / "wan_adapter.yaml"  # its CFG scale
TRAIN_SEED = 1  # the training benchmark of `from_scratch` (and of the shipped checkpoints' cards)
BENCH_SEED = 7  # the demo benchmark: held out from training


@dataclass(frozen=True)
class DemoSettings:
    videos_per_group: int = 4
    frames: int = 17
    size: tuple[int, int] = (48, 48)
    groups: str = "1,2,3,4,5,6+"
    condition: str = "box"  # stage 1 ends on box maps and stage 3 trains on them


def quick_settings() -> DemoSettings:
    """`--quick`: groups 1 and 2, 2 videos each (the fewest that give per-group FID/FVD), every
    row."""
    return DemoSettings(videos_per_group=2, groups="1,2")


def demo_rows(checkpoints: Path) -> dict[str, str]:
    """Leaderboard row -> generator spec. FlashMotion rows first, then the paper's baselines, the ablations (the
    "SlowAdapter directly" ablation has the same weights as DMD (ResNet) and is its row), the references.
    Checkpoint paths inside the working directory are written relative to it, so the specs recorded in a run
    (and the committed reports/demo) are the same in every clone."""
    ck = lambda run: _portable(checkpoints / run)  # noqa: E731
    return {
        "FlashMotion (ResNet)": f"flashmotion checkpoint={ck('stage3_hybrid')}",
        "FlashMotion (ControlNet)": f"flashmotion checkpoint={ck('stage3_hybrid_controlnet')}",
        "Wan+ResNet (50 steps)": f"wan-resnet config={_portable(TEACHER_CONFIG)} checkpoint={ck('stage1_adapter')}",
        "DMD (ResNet)": f"dmd-resnet checkpoint={ck('ablation_slow_adapter')}",
        "LCM (ResNet)": f"lcm-resnet checkpoint={ck('lcm')}",
        "w/o diffusion": f"flashmotion checkpoint={ck('ablation_no_diffusion')}",
        "w/o GAN": f"flashmotion checkpoint={ck('ablation_no_gan')}",
        "w/o dynamic lambda": f"flashmotion checkpoint={ck('ablation_constant_lambda')}",
        **{name: name for name in REFERENCE_GENERATORS},
    }


ABLATION_BASE = "FlashMotion (ResNet)"


def _benchmark(root: Path, settings: DemoSettings, seed: int) -> Benchmark:
    from flashbench.data.synthetic import GENERATOR_VERSION, build_synthetic
    from flashbench.data.validate import validate_benchmark

    groups = parse_groups(settings.groups)
    wanted = {"videos_per_group": settings.videos_per_group, "frames": settings.frames, "size": list(settings.size),
              "groups": list(groups), "seed": seed, "generator_version": GENERATOR_VERSION}
    if (root / "meta.json").is_file():
        bench = Benchmark.load(root)
        have = {k: bench.meta.build.get(k) for k in wanted}
        if have != wanted:
            raise BenchmarkError(f"{root} holds a benchmark built with {have}, not {wanted}; "
                                 "pass another --out or delete that folder")
    else:
        bench = build_synthetic(root, videos_per_group=settings.videos_per_group, frames=settings.frames,
                                size=settings.size, groups=groups, seed=seed, overwrite=root.exists())
    report = validate_benchmark(root, progress=False)
    if report.problems:
        raise BenchmarkError(f"benchmark {root} failed validation: {report.problems[0]}")
    print(report.format(), flush=True)
    return bench


def _train_from_scratch(out: Path, settings: DemoSettings) -> Path:
    """`flashmotion pipeline --preset tiny` on a fresh training benchmark; returns the folder of its exports
    (laid out as data/checkpoints: one folder per run)."""
    from flashmotion.checkpoint_cards import publish
    from flashmotion.train.pipeline import run_pipeline

    train_bench = _benchmark(out / "train_bench", DemoSettings(videos_per_group=16, frames=settings.frames,
                                                               size=settings.size), TRAIN_SEED)
    pipeline = out / "pipeline"
    run_pipeline("tiny", train_bench.root, pipeline, configs=Path(__file__).resolve().parent.parent / "configs" / "tiny")
    return publish(pipeline, out / "checkpoints")


def run_demo(
    out: Path = Path("reports/demo"),
    settings: DemoSettings = DemoSettings(),
    device: str = "cpu",
    checkpoints: Path | None = None,
    from_scratch: bool = False,
    rows: dict[str, str] | None = None,
) -> Path:
    """Build, (train,) generate, evaluate and report; returns the path of OUT/index.html. `rows` (leaderboard
    row -> generator spec) replaces `demo_rows(checkpoints)`."""
    from flashbench.evaluation import EvalSettings, evaluate
    from flashbench.report.writer import write_report
    from flashbench.runner import generate

    if settings.frames < 16:
        raise FlashBenchError(f"demo needs --frames >= 16 (one 16-frame FVD clip), got {settings.frames}")
    if settings.videos_per_group < 2:
        raise FlashBenchError("demo needs --videos-per-group >= 2 for per-group FID/FVD")
    out = Path(out)
    for name in DEMO_WEIGHTS:  # cache-first: downloads only on a fresh machine
        weights.fetch(name)
    if from_scratch:
        checkpoints = _train_from_scratch(out, settings)
    checkpoints = Path(checkpoints) if checkpoints is not None else CHECKPOINTS
    rows = demo_rows(checkpoints) if rows is None else rows
    _check_checkpoints(rows, checkpoints)
    bench = _benchmark(out / "bench", settings, BENCH_SEED)
    eval_settings = EvalSettings(device=device)
    runs = {}
    for i, (name, spec) in enumerate(rows.items(), 1):
        print(f"demo [{i}/{len(rows)}] {name}: {spec}", flush=True)
        run = out / "runs" / _folder(name)
        summary = generate(bench, run, spec, condition=settings.condition, name=name, device=device)
        if summary.failed_total:
            raise FlashBenchError(f"demo: {name}: {summary.message()}")
        evaluate(bench, run, eval_settings)
        runs[name] = run
    return write_report(list(runs.values()), out, base=runs.get(ABLATION_BASE))


def _portable(path: Path) -> Path:
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(path)


def _folder(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def _check_checkpoints(rows: dict[str, str], checkpoints: Path) -> None:
    from flashmotion.checkpoint_cards import verify_card

    for spec in rows.values():
        if "checkpoint=" in spec:
            folder = Path(spec.split("checkpoint=", 1)[1])
            if not (folder / "flashmotion.json").is_file():
                raise FlashBenchError(f"demo: checkpoint {folder} is missing; run `flashbench demo --from-scratch` "
                                      f"or `flashmotion publish --pipeline RUNS --out {checkpoints}`")
            verify_card(folder)
