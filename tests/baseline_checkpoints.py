"""Tiny random-init checkpoints in the trainer's export format (flashmotion.checkpoint.save_checkpoint), for the
baseline tests: what `flashmotion pipeline --preset tiny` writes to <out>/<stage>/export, without training."""

from __future__ import annotations

from pathlib import Path

import torch

from flashmotion.checkpoint import save_checkpoint
from flashmotion.models.adapters import build_adapter
from flashmotion.models.backbone import WanBackbone


def _randomise(adapter, seed: int):
    """Random output projections (a fresh adapter's are zero, which would leave the backbone unchanged)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for proj in adapter.out_proj:
            torch.nn.init.normal_(proj.weight, std=0.05)
    return adapter.eval()


def tiny_checkpoints(root: Path) -> dict[str, Path]:
    """stage1: slow backbone + ResNet SlowAdapter (all components); stage2: another transformer (the
    "FastGenerator") saved alone with an unrelated adapter, as a 5B stage-2 export would be; combined: the
    FastGenerator + SlowAdapter with every component (the "SlowAdapter directly" ablation's export);
    controlnet: a ControlNet adapter only, no backbone parts."""
    slow = WanBackbone.build("tiny", seed=0)
    slow_adapter = _randomise(build_adapter("resnet", slow.transformer, channels=8), 5)
    fast = WanBackbone.build("tiny", seed=0)
    fast.transformer = WanBackbone.build("tiny", seed=1).transformer  # other weights, same architecture
    other_adapter = _randomise(build_adapter("resnet", fast.transformer, channels=8), 9)
    return {
        "stage1": save_checkpoint(root / "stage1", slow_adapter, slow, metadata={"stage": "stage1_adapter"}),
        "stage2": save_checkpoint(root / "stage2", other_adapter, fast, components=("transformer",),
                                  metadata={"stage": "stage2_dmd"}),
        "combined": save_checkpoint(root / "combined", slow_adapter, fast),
        "controlnet": save_checkpoint(root / "controlnet", build_adapter("controlnet", slow.transformer, num_blocks=1),
                                      slow, components=()),
    }
