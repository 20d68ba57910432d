"""Training configs (one-line errors, dotted overrides), the loop's optimizer contract and the train CLI."""

from __future__ import annotations

import pytest
import torch

from flashmotion.cli import main
from flashmotion.errors import ModelConfigError
from flashmotion.train.config import TrainConfig, apply_overrides, load_config
from flashmotion.train.loop import Optimization, lr_lambda, slot_generator
from flashmotion.train.registry import get_stage

BASE = {"stage": "stage0_dit", "steps": 3, "data": {"bench": "/nowhere"}}


def test_overrides_set_dotted_keys_with_yaml_values():
    data = apply_overrides(BASE, ["steps=7", "data.size=[16, 48]", "method.prompt_dropout=0.2", "ema=null", "init.teacher=/x"])
    config = load_config(base=data)
    assert config.steps == 7 and config.data.size == [16, 48] and config.ema is None
    assert config.method == {"prompt_dropout": 0.2} and config.init == {"teacher": "/x"}
    assert config.lr == 1e-4 and isinstance(load_config(base={**BASE, "lr": 1}).lr, float)


def test_dotless_exponents_are_floats_in_overrides_and_files(tmp_path):
    # PyYAML (YAML 1.1) reads "2e-4" as a string, so `lr=2e-4` used to fail with "lr must be float"
    path = tmp_path / "c.yaml"
    path.write_text("stage: stage0_dit\nsteps: 3\nlr: 3e-4\ndata: {bench: /nowhere}\n")
    assert load_config(path).lr == 3e-4
    assert load_config(path, ["lr=2e-4", "weight_decay=1E-2"]).lr == 2e-4
    assert load_config(path, ["weight_decay=1E-2"]).weight_decay == 0.01
    assert load_config(path, ["init.teacher=1e4x"]).init == {"teacher": "1e4x"}  # not a number: stays a string


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stepz=3"], "unknown config key.*stepz"),
        (["data.frame=9"], "unknown config key.*data.frame"),
        (["method.prompt_drop=0.1"], "unknown config key.*method.prompt_drop"),
        (["steps=many"], "steps must be int"),
        (["data.frames=8"], "4k\\+1"),
        (["mixed_precision=fp16"], "mixed_precision"),
        (["method.prompt_dropout=2"], "prompt_dropout"),
        (["stage=stage9"], "unknown stage"),
        (["steps"], "key=value"),
    ],
)
def test_config_errors_are_one_line(overrides, message):
    with pytest.raises(ModelConfigError, match=message) as info:
        load_config(base=BASE, overrides=overrides)
    assert "\n" not in str(info.value)


def test_missing_stage_key_and_missing_file(tmp_path):
    with pytest.raises(ModelConfigError, match="missing required key.*stage"):
        load_config(base={"steps": 1})
    with pytest.raises(ModelConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_every_shipped_stage_config_validates():
    from pathlib import Path

    paths = sorted(Path(__file__).resolve().parents[1].glob("configs/*/stage[01]_*.yaml"))
    assert len(paths) >= 5
    for path in paths:
        config = load_config(path)
        assert get_stage(config.stage).name == config.stage
        assert path.stem == config.stage or path.stem.startswith(config.stage + "_")  # a variant, e.g. _controlnet


class _Toy:
    """A one-parameter method: loss = (w - 3)^2."""

    def __init__(self):
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.v = torch.nn.Parameter(torch.zeros(1))

    def param_groups(self):
        return {"w": [self.w], "v": [self.v]}


def _env():
    from flashmotion.train.distributed import DistEnv

    return DistEnv(0, 1, 0, torch.device("cpu"))


def test_optimize_steps_only_its_own_parameters_and_clips():
    toy = _Toy()
    config = TrainConfig(stage="stage0_dit", lr=0.1, grad_clip=0.5, betas=[0.0, 0.999])
    opt = Optimization(config, toy, _env(), set())
    opt.begin_micro(0)
    logs = opt.optimize("w", ((toy.w - 3) ** 2 + (toy.v - 3) ** 2).sum())
    assert logs["grad_norm/w"] == pytest.approx(6.0) and logs["lr/w"] == pytest.approx(0.1)
    assert toy.v.grad is None and toy.v.item() == 0.0  # backward(inputs=w): v untouched
    assert toy.w.item() == pytest.approx(0.1, rel=1e-3)  # Adam's first step moves by lr whatever the clipped norm


def test_accumulation_steps_once_per_step_and_forbids_two_updates_of_one_optimizer():
    toy = _Toy()
    opt = Optimization(TrainConfig(stage="stage0_dit", accumulation=2, lr=0.1), toy, _env(), set())
    opt.begin_micro(0)
    assert opt.optimize("w", (toy.w - 3).pow(2).sum()) == {}
    assert toy.w.item() == 0.0 and toy.w.grad.item() == pytest.approx(-3.0)  # half of -6, kept for micro 1
    with pytest.raises(ModelConfigError, match="accumulation=1"):
        opt.optimize("w", (toy.w - 3).pow(2).sum())
    opt.begin_micro(1)
    assert "grad_norm/w" in opt.optimize("w", (toy.w - 3).pow(2).sum())
    assert toy.w.item() != 0.0 and toy.w.grad is None


def test_ema_swap_and_schedules():
    toy = _Toy()
    opt = Optimization(TrainConfig(stage="stage0_dit", lr=0.1, ema=0.5), toy, _env(), set())
    opt.begin_micro(0)
    opt.optimize("w", (toy.w - 3).pow(2).sum())
    trained = toy.w.item()
    with opt.ema_weights():
        assert toy.w.item() == pytest.approx(0.5 * trained)
    assert toy.w.item() == trained
    warm = lr_lambda("cosine", 2, 10)
    assert [warm(0), warm(1), warm(2)] == [0.5, 1.0, 1.0] and warm(10) == pytest.approx(0.0)
    a, b = slot_generator(0, 5, 1), slot_generator(0, 5, 1)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    assert not torch.equal(torch.rand(3, generator=slot_generator(0, 5, 0)), torch.rand(3, generator=slot_generator(0, 5, 1)))


def test_train_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("stage: stage0_dit\nsteps: 2\nbogus: 1\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bogus" in err and "\n" not in err
