"""`flashmotion pipeline` planning: stage order, optional runs, inputs pinned to other runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashmotion.errors import ModelConfigError
from flashmotion.train.config import load_config
from flashmotion.train.pipeline import plan, resolve_inputs

TINY = Path(__file__).resolve().parent.parent / "configs" / "tiny"


def test_tiny_plan_runs_every_stage_variant_and_ablation_in_dependency_order():
    names = [name for name, _ in plan("tiny", TINY)]
    assert names[:5] == ["stage0_vae", "stage0_dit", "stage1_adapter", "stage2_dmd", "stage3_hybrid"]
    assert names[5:8] == ["stage1_adapter_controlnet", "stage3_hybrid_controlnet", "lcm"]
    assert sorted(names[8:]) == names[8:] and len(names[8:]) == 4 and all(n.startswith("ablation_") for n in names[8:])
    assert names.index("stage1_adapter_controlnet") < names.index("stage3_hybrid_controlnet")
    assert [name for name, _ in plan("tiny", TINY, until="stage1_adapter")][-1] == "stage1_adapter"
    assert [name for name, _ in plan("tiny", TINY, until="lcm")][-1] == "lcm"


def test_pinned_input_resolves_to_that_runs_export_and_refuses_a_missing_one(tmp_path):
    export = tmp_path / "stage1_adapter_controlnet" / "export"
    defaults = {"adapter": "/p/stage1_adapter/export", "teacher": "/p/stage0_dit/export"}
    with pytest.raises(ModelConfigError, match="run that stage first"):
        resolve_inputs(defaults, {"adapter": "@stage1_adapter_controlnet"}, tmp_path, "stage3_hybrid_controlnet")
    export.mkdir(parents=True)
    (export / "flashmotion.json").write_text("{}")
    pinned = resolve_inputs(defaults, {"adapter": "@stage1_adapter_controlnet"}, tmp_path, "x")
    assert pinned == {"adapter": str(export), "teacher": "/p/stage0_dit/export"}
    assert resolve_inputs(defaults, {"adapter": None}, tmp_path, "x") == {"teacher": "/p/stage0_dit/export"}


def test_a_pinned_input_outside_the_pipeline_is_a_one_line_error():
    with pytest.raises(ModelConfigError, match="names a pipeline run"):
        load_config(TINY / "stage3_hybrid_controlnet.yaml", ["data.bench=/b"])
    config = load_config(TINY / "stage3_hybrid_controlnet.yaml", ["init.adapter=/some/export"])
    assert config.init["adapter"] == "/some/export"
    assert "adapter" not in load_config(TINY / "stage1_adapter_controlnet.yaml").init  # null drops the input
