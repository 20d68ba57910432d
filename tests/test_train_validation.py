"""Held-out validation during training (flashmotion.train.validation): the columns each stage logs, that a short
stage-1 run lowers its held-out loss, the plot, the config checks, and native-scale crops."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from flashbench.data.synthetic import build_synthetic
from flashmotion.errors import ModelConfigError
from flashmotion.train.config import DataConfig, load_config
from flashmotion.train.data import ClipDataset
from flashmotion.train.loop import train


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A tiny fixed scene set: two 2-object flat scenes, 9 frames of 32x32."""
    root = tmp_path_factory.mktemp("bench")
    return build_synthetic(root, videos_per_group=2, frames=9, size=(32, 32), groups=("2",), style="flat").root


def _rows(out):
    with (out / "log.csv").open() as f:
        return list(csv.DictReader(f))


def _config(stage, bench, out, steps, **extra):
    base = {
        "stage": stage, "out": str(out), "steps": steps, "batch_size": 2, "checkpoint_every": 1000,
        "validate_every": steps // 2, "validate_clips": 2,
        "data": {"bench": str(bench), "val_bench": str(bench), "frames": 9, "size": [32, 32], "random_crop": False},
        **extra,
    }  # fmt: skip
    return load_config(base=base)


def test_stage1_validation_logs_own_and_swapped_trajectory_losses(bench, tmp_path):
    out = tmp_path / "s1"
    method = {"adapter": "resnet", "adapter_options": {"channels": 8}, "mask_fraction": 0.0, "prompt_dropout": 0.0}
    train(_config("stage1_adapter", bench, out, 40, lr=3e-3, random_teacher=True, method=method))
    rows = _rows(out)
    checked = [r for r in rows if r["val/loss"]]
    assert [int(r["step"]) for r in checked] == [20, 40]
    # Both columns are logged; own < swapped is NOT asserted: with a random-init teacher and 40 steps the two
    # differ by ~1e-5 (measured; either sign), so the adapter-uses-its-condition test still needs a trained teacher.
    assert float(checked[-1]["val/loss_swapped"]) > 0
    assert float(checked[-1]["val/loss"]) < 0.99 * float(checked[0]["val/loss"])  # held-out loss falls (measured 1.114 -> 1.092)
    assert all(r["val/loss"] == "" for r in rows if r not in checked)
    assert (out / "loss.png").stat().st_size > 0


def test_stage0_validations_log_psnr_and_x0_errors_against_static(bench, tmp_path):
    vae = tmp_path / "vae"
    train(_config("stage0_vae", bench, vae, 20, lr=1e-3, method={"init_latent_scale": 10.0}))
    psnr = [float(r["val/psnr"]) for r in _rows(vae) if r["val/psnr"]]
    assert len(psnr) == 2 and psnr[1] > psnr[0] > 5.0
    dit = tmp_path / "dit"
    train(_config("stage0_dit", bench, dit, 4, init={"encoders": str(vae / "export")},
                  method={"export_adapter_options": {"channels": 8}}))  # fmt: skip
    checked = [r for r in _rows(dit) if r["val/x0_err_static"]]
    assert len(checked) == 2
    assert checked[0]["val/x0_err_static"] == checked[1]["val/x0_err_static"]  # the reference does not train
    for sigma in ("0.5", "0.8", "0.97"):
        assert float(checked[-1][f"val/x0_err@{sigma}"]) > 0


def test_validation_settings_are_checked(bench, tmp_path):
    with pytest.raises(ModelConfigError, match="val_bench"):
        config = _config("stage0_vae", bench, tmp_path / "noval", 2)
        config.data.val_bench = None
        train(config)
    with pytest.raises(ModelConfigError, match="multiple of log_every"):
        load_config(base={"stage": "stage1_adapter", "validate_every": 10, "log_every": 4, "data": {"val_bench": "x"}})
    with pytest.raises(ModelConfigError, match="no held-out validation"):
        train(_config("stage2_dmd", bench, tmp_path / "dmd", 2))


def test_native_crop_takes_a_window_at_the_benchmarks_own_scale(bench):
    config = DataConfig(bench=str(bench), frames=9, size=[16, 16], random_crop=True, native_crop=True)
    dataset = ClipDataset(config, seed=3)
    full = dataset.bench.read_video(dataset.bench.samples[0])
    clip = dataset[(0, 0)]
    assert clip.video.shape == (9, 16, 16, 3)
    windows = {(y, x) for y in range(17) for x in range(17) if np.array_equal(full[:, y : y + 16, x : x + 16], clip.video)}
    assert windows  # a window of the frames themselves, not a resized copy


def test_pipeline_passes_its_validation_benchmark(bench, tmp_path):
    from flashmotion.train.pipeline import run_pipeline

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "stage0_vae.yaml").write_text(
        "stage: stage0_vae\npreset: toy\nsteps: 1\nbatch_size: 1\nvalidate_every: 1\nvalidate_clips: 1\n"
        "data: {frames: 9, size: [16, 16], random_crop: true, native_crop: true}\n"
    )
    with pytest.raises(ModelConfigError, match="val_bench"):
        run_pipeline("toy", bench, tmp_path / "none", configs, until="stage0_vae")
    run_pipeline("toy", bench, tmp_path / "runs", configs, until="stage0_vae", val_bench=bench)
    rows = _rows(tmp_path / "runs" / "stage0_vae")
    assert float(rows[-1]["val/psnr"]) > 0
