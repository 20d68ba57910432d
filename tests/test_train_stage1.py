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
        "stage": "stage1_adapter", "out": str(out), "steps": 30, "batch_size": 1, "lr": 1e-3, "checkpoint_every": 100,
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
