"""Stage 1 (tiny): the SlowAdapter's loss goes down, only the adapter trains, the mask->box curriculum switches
at the configured step, and the export loads as a "wan-adapter" generator with the trained adapter."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from flashbench.data.synthetic import build_synthetic
from flashmotion.checkpoint import load_checkpoint
from flashmotion.models.build import random_transformer
from flashmotion.train.config import load_config
from flashmotion.train.loop import train


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return build_synthetic(tmp_path_factory.mktemp("bench"), videos_per_group=1, frames=9, size=(32, 32), groups=("2",)).root


def test_adapter_loss_goes_down_with_the_curriculum_and_a_frozen_backbone(bench, tmp_path):
    out = tmp_path / "s1"
    base = {
        "stage": "stage1_adapter", "random_teacher": True, "out": str(out), "steps": 30, "batch_size": 1, "lr": 3e-3, "checkpoint_every": 100,
        "data": {"bench": str(bench), "random_crop": False},
        "method": {"adapter": "resnet", "adapter_options": {"channels": 8}, "mask_fraction": 0.5, "prompt_dropout": 0.0},
    }
    train(load_config(base=base))
    with (out / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    loss = np.array([float(r["loss/flow_matching"]) for r in rows])
    assert loss[-10:].mean() < 0.85 * loss[:5].mean()
    assert [float(r["box_maps"]) for r in rows] == [0.0] * 15 + [1.0] * 15
    ckpt = load_checkpoint(out / "export")
    assert ckpt.adapter.kind == "resnet" and ckpt.config["metadata"]["stage"] == "stage1_adapter"
    assert any(p.abs().sum() > 0 for p in ckpt.adapter.out_proj.parameters())  # the zero projections moved
    teacher = random_transformer("tiny", seed=0)  # what the run started from (no init.teacher)
    for a, b in zip(ckpt.backbone.transformer.parameters(), teacher.parameters(), strict=True):
        assert torch.equal(a, b)


def test_curriculum_split_is_configurable():
    from flashmotion.train.stage1_adapter import AdapterConfig, AdapterTraining

    method = AdapterTraining(AdapterConfig(mask_fraction=0.46), None, None, total_steps=10000, components=())
    assert method.condition_kind(4599) == "mask" and method.condition_kind(4600) == "box"


def test_pipeline_runs_stage0_to_1_skips_finished_stages_and_exports_generators(tmp_path, capsys):
    """`flashmotion pipeline --until stage1_adapter` on 2-step configs; the second call only skips."""
    from flashbench.generators.registry import load_generator
    from flashmotion.cli import main
    from tests.test_flashmotion_generator import _request

    bench = build_synthetic(tmp_path / "bench", videos_per_group=1, frames=9, size=(32, 32), groups=("1",)).root
    configs = tmp_path / "configs"
    configs.mkdir()
    common = "preset: tiny\nsteps: 2\nbatch_size: 1\ncheckpoint_every: 1\ndata: {frames: 9, size: [32, 32], random_crop: false}\n"
    (configs / "stage0_vae.yaml").write_text("stage: stage0_vae\n" + common)
    (configs / "stage0_dit.yaml").write_text("stage: stage0_dit\n" + common + "method: {export_adapter_options: {channels: 8}}\n")
    (configs / "stage1_adapter.yaml").write_text("stage: stage1_adapter\n" + common + "method: {adapter_options: {channels: 8}}\n")
    out = tmp_path / "runs"
    argv = ["pipeline", "--preset", "tiny", "--bench", str(bench), "--out", str(out), "--configs", str(configs), "--until", "stage1_adapter"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "3 stages finished" in first
    stage1 = json_config(out / "stage1_adapter")
    assert stage1["init"] == {"encoders": str(out / "stage0_vae" / "export"), "teacher": str(out / "stage0_dit" / "export")}
    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier") == 3
    generator = load_generator(f"wan-adapter checkpoint={out / 'stage1_adapter' / 'export'} steps=2")
    assert generator.generate(_request()).frames.shape == (9, 32, 32, 3)
    # The stage-1 export carries the stage-0 teacher's transformer and the stage-0a VAE.
    teacher = load_checkpoint(out / "stage0_dit" / "export").backbone
    slow = load_checkpoint(out / "stage1_adapter" / "export").backbone
    for a, b in zip(teacher.parameters(), slow.parameters(), strict=True):
        assert torch.equal(a, b)


def json_config(run):
    import json

    return json.loads((run / "config.json").read_text())["config"]
