"""The Wan2.2-TI2V-5B configs of stages 2, 3 (and ablations) and LCM build every role on the meta device with the
real shapes, through the stages' own factories; parameter counts against the paper's.

The factories call `build_role`, which needs the 5B weights; here it is replaced by a meta-device builder with
the same signature (transformer from the preset config; the stage-1 adapter from the 5B stage-1 config), so the
factories' wiring (which roles, what trains, what is shared) runs unchanged at full size without memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import WanTransformer3DModel

import baselines.lcm as lcm
import flashmotion.train.stage2_dmd as stage2
import flashmotion.train.stage3_hybrid as stage3
from flashmotion.models.adapters import ControlNetAdapter, ResNetAdapter, build_adapter
from flashmotion.models.backbone import build_on_meta, num_params
from flashmotion.models.build import RoleModel
from flashmotion.models.presets import get_preset
from flashmotion.train.config import load_config, method_config, read_yaml
from flashmotion.train.registry import get_stage

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "wan2.2-ti2v-5b"
WAN_5B = 4_999_787_712  # WanTransformer3DModel with the published Wan2.2-TI2V-5B config
META = torch.device("meta")


def _stage1_adapter() -> tuple[str, dict]:
    method = read_yaml(CONFIGS / "stage1_adapter.yaml")["method"]
    return method["adapter"], method.get("adapter_options", {})


def meta_transformer(preset: str = "wan2.2-ti2v-5b") -> WanTransformer3DModel:
    with torch.device("meta"):
        return WanTransformer3DModel.from_config(get_preset(preset).transformer)


def meta_build_role(preset, model_path=None, checkpoint=None, adapter=None, adapter_options=None, trainable=("adapter",),
                    seed=0, dtype=torch.float32, device="cpu", adapter_checkpoint=None) -> RoleModel:
    transformer = meta_transformer(preset).to(dtype)
    module = None
    if adapter_checkpoint is not None:  # a stage-1 export: the adapter the 5B stage-1 config trains
        kind, options = _stage1_adapter()
        module = build_adapter(kind, transformer, **options)
    elif adapter is not None:
        module = build_adapter(adapter, transformer, **(adapter_options or {}))
    parts = trainable if module is not None else tuple(p for p in trainable if p != "adapter")
    return RoleModel(transformer, module, trainable=parts)


def _build(monkeypatch, name: str):
    for module in (stage2, stage3, lcm):
        monkeypatch.setattr(module, "build_role", meta_build_role)
    config = load_config(CONFIGS / name, ["model_path=/models/Wan2.2-TI2V-5B-Diffusers", "init.generator=G", "init.adapter=A", "init.teacher=T"])
    with torch.device("meta"):
        return get_stage(config.stage).factory(config, method_config(config), None, META), config


def _trainable(method) -> int:
    return sum(num_params_of(params) for params in method.param_groups().values())


def num_params_of(params) -> int:
    return sum(p.numel() for p in params)


def test_stage2_roles(monkeypatch):
    method, _ = _build(monkeypatch, "stage2_dmd.yaml")
    assert num_params(method.generator) == num_params(method.fake_score) == num_params(method.real_score) == WAN_5B
    assert method.generator.transformer is not method.fake_score.transformer is not method.real_score.transformer
    assert _trainable(method) == 2 * WAN_5B and not any(p.requires_grad for p in method.real_score.parameters())
    assert all(p.is_meta for p in method.generator.parameters())
    assert method.export_components == ("transformer",)  # the rest comes from model_path


@pytest.mark.parametrize("name", ["stage3_hybrid.yaml", "ablation_no_diffusion.yaml", "ablation_constant_lambda.yaml",
                                  "ablation_slow_adapter.yaml", "ablation_no_gan.yaml"])
def test_stage3_roles(monkeypatch, name):
    method, config = _build(monkeypatch, name)
    kind, options = _stage1_adapter()
    adapter = num_params(method.generator.adapter)
    with torch.device("meta"):
        assert adapter == num_params(build_adapter(kind, meta_transformer(), **options))
    assert num_params(method.generator.transformer) == WAN_5B
    head = num_params(method.discriminator) if method.discriminator is not None else 0
    assert _trainable(method) == adapter + head  # the adapter and the discriminator's query head only
    if config.method["gan_loss"]:
        assert head == 226_624_513
        assert method.discriminator.backbone is not method.generator.transformer  # the teacher's, by reference
        assert num_params(method.discriminator.backbone) == WAN_5B
        assert not any(p.requires_grad for p in method.discriminator.backbone.parameters())
    else:
        assert method.discriminator is None and set(method.param_groups()) == {"adapter"}


def test_lcm_roles(monkeypatch):
    method, _ = _build(monkeypatch, "lcm.yaml")
    adapter = num_params(method.teacher.adapter)
    for role in (method.teacher, method.student, method.target):
        assert num_params(role) == WAN_5B + adapter
    assert _trainable(method) == WAN_5B  # the student's transformer; the SlowAdapter stays frozen


def test_adapter_totals_against_the_paper():
    transformer, _ = build_on_meta("wan2.2-ti2v-5b")  # the backbone module's own meta builder
    assert num_params(transformer) == WAN_5B
    with torch.device("meta"):
        resnet48 = num_params(ResNetAdapter.for_transformer(transformer, channels=48))
        controlnet = num_params(ControlNetAdapter.for_transformer(transformer))
    # ResNet adapter of width 48: 5.0214B with the backbone, the paper's ~5.02B (width 64: 5.030B, 256: 5.201B).
    assert round((WAN_5B + resnet48) / 1e9, 2) == 5.02
    # ControlNet (all 30 blocks): ours 10.193B. The paper's 10.28B is a full copy of the transformer plus 30
    # zero-initialised D x D linears; ours shares the backbone's time/text embedder and has no output head, so
    # the difference is exactly those modules (90.1M).
    shared = sum(num_params(m) for m in (transformer.condition_embedder, transformer.proj_out, transformer.norm_out))
    shared += transformer.scale_shift_table.numel()
    paper_style = controlnet + shared
    assert round((WAN_5B + controlnet) / 1e9, 3) == 10.193
    assert round((WAN_5B + paper_style) / 1e9, 2) == 10.28
    assert paper_style == WAN_5B + 30 * (3072 * 3072 + 3072)
