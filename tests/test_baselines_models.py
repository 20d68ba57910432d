"""The paper's model baselines on the tiny preset: "Wan+ResNet" (wan-resnet) and "DMD (ResNet)" (dmd-resnet).

Checkpoints: random-init tiny models in the trainer's export format (tests/baseline_checkpoints.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from baseline_checkpoints import tiny_checkpoints

from baselines.dmd import DMDResNet
from baselines.multistep import WanResNet
from flashbench.data.objects import boxes_from_masks
from flashbench.generators.base import GenerationRequest, check_output
from flashbench.generators.registry import load_generator
from flashmotion.errors import CheckpointError, ModelConfigError
from flashmotion.generator import FlashMotion, WanAdapter

T, H, W = 9, 32, 32
REPO = Path(__file__).resolve().parents[1]


def _request() -> GenerationRequest:
    masks = np.zeros((T, 1, H, W), dtype=bool)
    for i in range(T):
        masks[i, 0, 6:16, 2 + 2 * i : 12 + 2 * i] = True
    frame = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return GenerationRequest("s0", frame, "a ball", masks, boxes_from_masks(masks), "mask", T, 8.0, H, W, seed=3)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return tiny_checkpoints(tmp_path_factory.mktemp("ckpts"))


def test_dmd_resnet_runs_the_fast_transformer_with_the_slow_adapter(checkpoints):
    c = checkpoints
    request = _request()
    dmd = DMDResNet(generator_checkpoint=str(c["stage2"]), adapter_checkpoint=str(c["stage1"]))
    video = dmd.generate(request)
    frames = check_output(video, request)
    assert video.nfe == 4 and dmd.steps == 4 and video.denoise_seconds > 0
    assert video.extra["generator_checkpoint"] == str(c["stage2"])
    view = Path(dmd.settings.checkpoint)  # the combined view: links, no copies
    assert (view / "adapter.safetensors").resolve() == (c["stage1"] / "adapter.safetensors").resolve()
    assert (view / "backbone" / "transformer").resolve() == (c["stage2"] / "backbone" / "transformer").resolve()
    # the same weights saved as one checkpoint give the same video, through FlashMotion and dmd-resnet alike
    assert np.array_equal(FlashMotion(checkpoint=str(c["combined"])).generate(request).frames, frames)
    assert np.array_equal(DMDResNet(checkpoint=str(c["combined"])).generate(request).frames, frames)
    # ... and differ from the slow transformer (stage-1 weights) and from the stage-2 export's own adapter
    assert not np.array_equal(FlashMotion(checkpoint=str(c["stage1"])).generate(request).frames, frames)
    own = FlashMotion(checkpoint=str(c["stage2"]), model_path=str(c["stage1"] / "backbone")).generate(request)
    assert not np.array_equal(own.frames, frames)


def test_dmd_resnet_refuses_incomplete_or_mismatched_checkpoints(checkpoints):
    c = checkpoints
    with pytest.raises(ModelConfigError, match="generator_checkpoint=DIR"):
        DMDResNet(adapter_checkpoint=str(c["stage1"]))
    with pytest.raises(ModelConfigError, match="not both"):
        DMDResNet(checkpoint=str(c["combined"]), generator_checkpoint=str(c["stage2"]))
    with pytest.raises(CheckpointError, match="not a stage-2 FastGenerator"):
        DMDResNet(generator_checkpoint=str(c["controlnet"]), adapter_checkpoint=str(c["stage1"]))
    with pytest.raises(ModelConfigError, match="needs a resnet adapter"):
        DMDResNet(generator_checkpoint=str(c["stage2"]), adapter_checkpoint=str(c["controlnet"]))
    with pytest.raises(ModelConfigError, match="preset"):
        DMDResNet(generator_checkpoint=str(c["stage2"]), adapter_checkpoint=str(c["stage1"]), preset="wan2.2-ti2v-5b")


def test_wan_resnet_is_the_fifty_step_cfg_teacher_with_a_required_resnet_checkpoint(checkpoints):
    c = checkpoints
    paper = WanResNet(checkpoint=str(c["stage1"]))
    assert (paper.steps, paper.sampler.nfe, paper.sampler.guidance, paper.sampler.solver) == (50, 100, 5.0, "unipc")
    request = _request()
    short = WanResNet(checkpoint=str(c["stage1"]), steps=2).generate(request)  # 2 CFG steps keep the test short
    assert short.nfe == 4 and check_output(short, request).shape == (T, H, W, 3)
    same = WanAdapter(checkpoint=str(c["stage1"]), steps=2).generate(request)
    assert np.array_equal(short.frames, same.frames)
    with pytest.raises(ModelConfigError, match="needs checkpoint=DIR"):
        WanResNet()
    with pytest.raises(ModelConfigError, match="needs a resnet adapter"):  # checked before loading any weights
        WanResNet(checkpoint=str(c["controlnet"]), model_path=str(c["stage1"] / "backbone"))


def test_baselines_load_through_flashbench_specs(checkpoints):
    c = checkpoints
    dmd = load_generator(f"baselines.dmd:DMDResNet generator_checkpoint={c['stage2']} "
                         f"adapter_checkpoint={c['stage1']} steps=2")
    assert dmd.name == "dmd-resnet" and dmd.steps == 2
    wan = load_generator(f"baselines.multistep:WanResNet checkpoint={c['stage1']} "
                         f"config={REPO / 'configs/tiny/wan_adapter.yaml'}")
    assert wan.name == "wan-resnet" and wan.sampler.nfe == 100
