"""`flashmotion pipeline`: every stage of a preset in order, each in `<out>/<stage>`, skipping finished stages
(`done.json`) and resuming interrupted ones from their latest checkpoint.

Order: stage0_vae -> stage0_dit (self-contained presets, tiny and toy, only: the 5B preset starts from Wan2.2's weights) -> stage1_adapter ->
stage2_dmd -> stage3_hybrid -> the optional runs of `OPTIONAL_RUNS` whose config exists (the ControlNet variants of
stages 1 and 3, the LCM baseline) -> ablations (every `ablation_*.yaml` of the config folder, by name). Each run
reads `<configs>/<name>.yaml`, gets `data.bench` and `out` from the pipeline and its input checkpoints (`init`)
from the exports of the earlier stages (and, when its config caches latents, `data.cache=<out>/cache`):
    encoders  <- stage0_vae/export            (tiny)
    teacher   <- stage0_dit/export            (tiny; the 5B teacher is model_path)
    adapter   <- stage1_adapter/export
    generator <- stage2_dmd/export
A config pins an input to another run with `init: {adapter: "@stage1_adapter_controlnet"}` (= that run's export)
and drops a default with `init: {adapter: null}`; both win over the defaults above.
Stages 2, 3, the ablations and LCM are the METHODS helper's registry entries, called by name.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from flashmotion.errors import ModelConfigError
from flashmotion.models.presets import get_preset
from flashmotion.train.config import load_config, read_yaml
from flashmotion.train.loop import is_finished, train

TINY_STAGES = ("stage0_vae", "stage0_dit", "stage1_adapter", "stage2_dmd", "stage3_hybrid")
MODEL_STAGES = ("stage1_adapter", "stage2_dmd", "stage3_hybrid")
OPTIONAL_RUNS = ("stage1_adapter_controlnet", "stage3_hybrid_controlnet", "lcm")
PRODUCES = {"stage0_vae": "encoders", "stage0_dit": "teacher", "stage1_adapter": "adapter", "stage2_dmd": "generator"}


def plan(preset: str, configs: Path, until: str | None = None) -> list[tuple[str, Path]]:
    """(run name, config file) in pipeline order, up to and including `until` (a stage or ablation name; None:
    everything); a missing stage config is a one-line error."""
    stages = TINY_STAGES if get_preset(preset).self_contained else MODEL_STAGES
    if until is not None and until in stages:
        stages = stages[: stages.index(until) + 1]
    runs = []
    for stage in stages:
        path = configs / f"{stage}.yaml"
        if not path.is_file():
            raise ModelConfigError(f"{path} is missing; the pipeline needs one config per stage in {configs}")
        runs.append((stage, path))
    if until is None or until not in stages:
        runs += [(name, configs / f"{name}.yaml") for name in OPTIONAL_RUNS if (configs / f"{name}.yaml").is_file()]
        runs += [(p.stem, p) for p in sorted(configs.glob("ablation_*.yaml"))]
    names = [name for name, _ in runs]
    if until is not None and until not in names:
        raise ModelConfigError(f"--until {until!r} is not a stage of this pipeline; choose one of {names}")
    return runs[: names.index(until) + 1] if until is not None else runs


def run_pipeline(
    preset: str,
    bench: Path,
    out: Path,
    configs: Path | None = None,
    model_path: str | None = None,
    until: str | None = None,
    val_bench: Path | None = None,
) -> list[Path]:
    """Run the pipeline (up to `until`); returns the finished stage folders. `val_bench`: the held-out benchmark
    of the runs whose config validates (`validate_every`); such a run without one is a one-line error."""
    configs = Path(configs) if configs is not None else Path("configs") / preset
    out = Path(out)
    runs = plan(preset, configs, until)
    finished = []
    init: dict[str, str] = {}
    for name, path in tqdm(runs, desc="pipeline", unit="stage"):
        stage_out = out / name
        data = read_yaml(path)
        if data.get("preset", preset) != preset:
            raise ModelConfigError(f"{path} is for preset {data.get('preset')!r}, not {preset!r}")
        overrides = [f"out={stage_out}", f"data.bench={bench}", f"preset={preset}"]
        if model_path is not None:
            overrides.append(f"model_path={model_path}")
        if val_bench is not None:
            overrides.append(f"data.val_bench={val_bench}")
        inputs = resolve_inputs(init, data.get("init") or {}, out, name)
        overrides += [f"init.{key}={value}" for key, value in inputs.items()]
        if (data.get("data") or {}).get("cache") is not None:
            overrides.append(f"data.cache={out / 'cache'}")  # one latent cache per pipeline, shared by its stages
        config = load_config(path, overrides)
        if is_finished(stage_out):
            tqdm.write(f"{name}: finished earlier ({stage_out}), skipped")
        else:
            tqdm.write(f"{name}: training {config.steps} steps -> {stage_out}")
            train(config, resume=True, config_path=str(path))
        finished.append(stage_out)
        if name in PRODUCES:
            init[PRODUCES[name]] = str(stage_out / "export")
    return finished


def resolve_inputs(defaults: dict[str, str], declared: dict, out: Path, name: str) -> dict[str, str]:
    """The input checkpoints of run `name`: the pipeline's defaults, with the config's `init` entries that name
    another run ("@run" -> `<out>/run/export`) pinned and those set to null dropped (e.g. a ControlNet stage 1
    must not start from the ResNet SlowAdapter)."""
    pinned = {key: value for key, value in defaults.items() if not (key in declared and declared[key] is None)}
    for key, value in declared.items():
        if isinstance(value, str) and value.startswith("@"):
            export = out / value[1:] / "export"
            if not (export / "flashmotion.json").is_file():
                raise ModelConfigError(f"{name}: init.{key} = {value} has no export at {export}; run that stage first")
            pinned[key] = str(export)
    return pinned
