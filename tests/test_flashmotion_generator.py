"""FlashMotion generators end to end on the tiny preset, checkpoint round trip and the `flashmotion sample` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flashbench.data.benchmark import BenchmarkWriter
from flashbench.data.objects import boxes_from_masks
from flashbench.errors import GenerationError
from flashbench.generators.base import GenerationRequest, check_output
from flashbench.generators.registry import load_generator
from flashbench.video import read_video
from flashmotion.checkpoint import CONFIG_NAME, load_checkpoint, save_checkpoint
from flashmotion.cli import main
from flashmotion.errors import CheckpointError, ModelConfigError
from flashmotion.generator import FlashMotion, WanAdapter
from flashmotion.models.adapters import build_adapter
from flashmotion.models.backbone import WanBackbone, dit_forward

T, H, W = 9, 32, 32
REPO = Path(__file__).resolve().parents[1]


def _moving_masks(t: int, h: int, w: int) -> np.ndarray:
    masks = np.zeros((t, 2, h, w), dtype=bool)
    for i in range(t):
        masks[i, 0, 4:12, 2 + i : 10 + i] = True
        masks[i, 1, 18:28, 20 - i : 28 - i] = True
    return masks


def _request(t: int = T, h: int = H, w: int = W, condition: str = "box") -> GenerationRequest:
    masks = _moving_masks(t, h, w)
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return GenerationRequest("s0", frame, "a red ball", masks, boxes_from_masks(masks), condition, t, 8.0, h, w, seed=7)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny backbone with a non-trivial ResNet adapter (random output projections), saved as a checkpoint."""
    backbone = WanBackbone.build("tiny", seed=0)
    adapter = build_adapter("resnet", backbone.transformer, channels=8)
    torch.manual_seed(5)
    for proj in adapter.out_proj:
        torch.nn.init.normal_(proj.weight, std=0.05)
    directory = save_checkpoint(tmp_path_factory.mktemp("ckpt"), adapter.eval(), backbone, metadata={"stage": "test"})
    return backbone, adapter, directory


def test_four_step_flashmotion_end_to_end():
    video = FlashMotion(adapter="resnet").generate(_request())
    frames = check_output(video, _request())
    assert frames.shape == (T, H, W, 3) and frames.dtype == np.uint8
    assert video.nfe == 4 and video.denoise_seconds > 0


def test_fifty_step_cfg_wan_adapter_end_to_end():
    video = WanAdapter(adapter="controlnet").generate(_request(condition="mask"))
    assert check_output(video, _request()).shape == (T, H, W, 3)
    assert video.nfe == 100 and video.extra["sampler"]["kind"] == "multistep"


def test_unaligned_request_size_is_generated_larger_and_cut_back():
    request = _request(t=7, h=30, w=40)
    video = FlashMotion(steps=2).generate(request)
    assert check_output(video, request).shape == (7, 30, 40, 3)
    assert video.extra["model_size"] == [9, 32, 48] and video.nfe == 2


def test_same_seed_same_video_and_bad_inputs_fail_in_one_line():
    generator = FlashMotion(steps=1)
    a, b = generator.generate(_request()), generator.generate(_request())
    assert np.array_equal(a.frames, b.frames)
    bad = _request()
    bad.masks = bad.masks[:5]
    with pytest.raises(GenerationError, match="masks"):
        generator.generate(bad)
    with pytest.raises(ModelConfigError, match="unknown generator arguments"):
        FlashMotion(stepz=4)


def test_checkpoint_round_trip_gives_identical_outputs(trained):
    backbone, adapter, directory = trained
    loaded = load_checkpoint(directory)
    assert loaded.config["adapter"] == {"kind": "resnet", "options": {"channels": 8}}
    assert loaded.config["metadata"] == {"stage": "test"}
    gen = torch.Generator().manual_seed(0)
    shape = backbone.latent_shape(T, H, W)
    latents, trajectory = torch.randn(1, *shape, generator=gen), torch.randn(1, *shape, generator=gen)
    text, timestep = backbone.encode_prompt(["a ball"]), torch.tensor([600.0])
    with torch.no_grad():
        ours = dit_forward(backbone.transformer, latents, timestep, text, adapter, trajectory)
        theirs = dit_forward(loaded.backbone.transformer, latents, timestep, loaded.backbone.encode_prompt(["a ball"]),
                             loaded.adapter, trajectory)
        plain = dit_forward(backbone.transformer, latents, timestep, text)
    assert torch.equal(ours, theirs) and not torch.equal(ours, plain)
    video = torch.rand(1, 3, T, H, W) * 2 - 1
    assert torch.equal(loaded.backbone.encode_video(video), backbone.encode_video(video))
    from_ckpt = FlashMotion(checkpoint=str(directory)).generate(_request())
    assert from_ckpt.nfe == 4 and from_ckpt.frames.shape == (T, H, W, 3)


def test_partial_checkpoints_need_a_model_path(trained, tmp_path):
    backbone, adapter, directory = trained
    partial = save_checkpoint(tmp_path / "partial", adapter, backbone, components=("transformer",))
    with pytest.raises(CheckpointError, match="model_path"):
        load_checkpoint(partial)
    loaded = load_checkpoint(partial, model_path=directory / "backbone")
    assert torch.equal(loaded.backbone.transformer.proj_out.weight, backbone.transformer.proj_out.weight)
    with pytest.raises(CheckpointError, match=CONFIG_NAME):
        load_checkpoint(tmp_path)
    wrong = json.loads((partial / CONFIG_NAME).read_text())
    wrong["adapter"] = {"kind": "controlnet", "options": {}}
    (partial / CONFIG_NAME).write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(partial, model_path=directory / "backbone")


def test_cli_sample_writes_the_video(trained, tmp_path, capsys):
    _, _, directory = trained
    writer = BenchmarkWriter(tmp_path / "bench", name="tiny")
    frames = np.random.default_rng(1).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    writer.add("clip0", frames, _moving_masks(T, H, W), fps=8.0, prompt="two balls", source="test")
    writer.close()
    out = tmp_path / "video.mp4"
    code = main(["sample", "--preset", "tiny", "--checkpoint", str(directory), "--bench", str(tmp_path / "bench"),
                 "--sample", "clip0", "--steps", "4", "--out", str(out)])
    assert code == 0 and "NFE 4" in capsys.readouterr().out
    assert read_video(out).shape == (T, H, W, 3)
    code = main(["sample", "--checkpoint", str(directory), "--bench", str(tmp_path / "bench"), "--sample", "clip0",
                 "--steps", "10", "--out", str(out)])  # more than 8 steps: the multi-step CFG sampler
    assert code == 0 and "multistep 10 steps, NFE 20" in capsys.readouterr().out
    code = main(["sample", "--preset", "wan2.2-ti2v-5b", "--checkpoint", str(directory), "--bench",
                 str(tmp_path / "bench"), "--sample", "clip0", "--out", str(out)])
    assert code == 2 and "preset" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(p for name in ("flashmotion", "wan_adapter") for p in REPO.glob(f"configs/*/{name}.yaml")))
def test_shipped_configs_parse_into_generator_settings(path):
    generator = (WanAdapter if path.stem == "wan_adapter" else FlashMotion)(config=str(path))
    assert generator.settings.preset == path.parent.name
    expected = (50, 100) if path.stem == "wan_adapter" else (4, 4)
    assert (generator.sampler.steps, generator.sampler.nfe) == expected


def test_flashbench_spec_builds_the_generator_with_typed_args():
    generator = load_generator(f"flashmotion.generator:FlashMotion config={REPO / 'configs/tiny/flashmotion.yaml'} steps=2")
    assert generator.name == "flashmotion" and generator.sampler.steps == 2 and generator.settings.shift == 5.0


def test_bfloat16_keeps_diffusers_fp32_modules_and_generates():
    generator = FlashMotion(dtype="bfloat16", steps=1)
    video = generator.generate(_request())
    assert check_output(video, _request()).shape == (T, H, W, 3)
    transformer = generator.load()[1].transformer
    assert transformer.dtype == torch.bfloat16 and transformer.scale_shift_table.dtype == torch.float32
    assert transformer.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
