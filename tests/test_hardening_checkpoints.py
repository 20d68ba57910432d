"""Training checkpoints never run code from their files: weights_only pickles after a sha256 manifest check, and
torch.distributed.checkpoint read with a restricted metadata unpickler and weights_only items."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flashmotion.errors import CheckpointError
from flashmotion.train import checkpoint_safety, checkpointing


class Plant:
    """Unpickling this writes `marker`: what an attacker's state.pt would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def _roles(seed: int):
    torch.manual_seed(seed)
    module = nn.Linear(4, 3)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 / (i + 1))
    ema = {"m": [p.detach().clone() for p in module.parameters()]}
    return module, checkpointing.TrainState({"m": opt}, {"m": sched}, ema)


def _save(out: Path):
    module, state = _roles(0)
    for _ in range(3):
        module(torch.randn(5, 4)).square().sum().backward()
        state.optimizers["m"].step()
        state.schedulers["m"].step()
        state.ema["m"][0].mul_(0.5)
    random.seed(3)
    np.random.seed(4)
    np.random.normal()  # leaves a cached gauss in numpy's state
    torch.manual_seed(5)
    directory = checkpointing.save(out, 3, {"m": module}, state, {"k": 1}, {"seed": 0}, rank=0, world_size=1, keep=2)
    draws = (random.random(), float(np.random.normal()), float(torch.rand(())))
    return directory, module, state, draws


def _rewrite_manifest(directory: Path) -> None:
    meta = json.loads((directory / "meta.json").read_text())
    meta["files"] = checkpoint_safety.manifest(directory)
    (directory / "meta.json").write_text(json.dumps(meta))


def test_checkpoint_round_trip_restores_weights_optimizer_schedule_ema_and_rngs(tmp_path):
    directory, module, state, draws = _save(tmp_path)
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["format"] == checkpointing.FORMAT and set(meta["files"]) == {"modules/m.safetensors", "rng-rank0.pt", "state.pt"}
    fresh, fresh_state = _roles(1)
    assert not torch.equal(fresh.weight, module.weight)
    assert checkpointing.load(directory, {"m": fresh}, fresh_state, rank=0, world_size=1)["method_state"] == {"k": 1}
    assert torch.equal(fresh.weight, module.weight) and torch.equal(fresh_state.ema["m"][0], state.ema["m"][0])
    a, b = state.optimizers["m"].state_dict(), fresh_state.optimizers["m"].state_dict()
    assert all(torch.equal(a["state"][0][k], b["state"][0][k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    assert fresh_state.schedulers["m"].state_dict() == state.schedulers["m"].state_dict()
    assert (random.random(), float(np.random.normal()), float(torch.rand(()))) == draws


@pytest.mark.parametrize("name", ["state.pt", "rng-rank0.pt"])
@pytest.mark.parametrize("manifest_too", [False, True])
def test_planted_pickle_in_a_checkpoint_never_runs(tmp_path, name, manifest_too):
    directory, *_ = _save(tmp_path / "run")
    marker = tmp_path / "pwned"
    torch.save({"step": Plant(marker), "optimizers": {}}, directory / name)
    if manifest_too:  # the attacker rewrote the manifest as well: weights_only refuses the global
        _rewrite_manifest(directory)
    module, state = _roles(1)
    match = "not a plain tensor/number file" if manifest_too else f"{name} does not match its sha256"
    with pytest.raises(CheckpointError, match=match):
        checkpointing.load(directory, {"m": module}, state, rank=0, world_size=1)
    assert not marker.exists()


def test_checkpoint_with_changed_missing_or_extra_files_is_refused(tmp_path):
    directory, *_ = _save(tmp_path)
    module, state = _roles(1)
    (directory / "extra.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="extra.bin is not listed"):
        checkpointing.load(directory, {"m": module}, state, rank=0, world_size=1)
    (directory / "extra.bin").unlink()
    weights = directory / "modules/m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="m.safetensors does not match its sha256"):
        checkpointing.load(directory, {"m": module}, state, rank=0, world_size=1)
    weights.unlink()
    with pytest.raises(CheckpointError, match="m.safetensors listed in meta.json is missing"):
        checkpointing.load(directory, {"m": module}, state, rank=0, world_size=1)
    meta = json.loads((directory / "meta.json").read_text())
    del meta["format"], meta["files"]  # what checkpoints before the manifest looked like
    (directory / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a format-2 checkpoint"):
        checkpointing.load(directory, {"m": module}, state, rank=0, world_size=1)


def _dcp_payload(seed: int):
    from torch.distributed.checkpoint.state_dict import get_state_dict

    module, state = _roles(seed)
    module(torch.randn(2, 4)).sum().backward()
    state.optimizers["m"].step()
    model_sd, optim_sd = get_state_dict(module, [state.optimizers["m"]])
    return module, {"module/m": model_sd, "optim/m": optim_sd}


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_dcp_is_read_with_a_restricted_metadata_unpickler_and_weights_only_items(tmp_path):
    import pickle

    import torch.distributed.checkpoint as dcp

    _, payload = _dcp_payload(0)
    dcp.save(payload, checkpoint_id=str(tmp_path / "dcp"))
    _, target = _dcp_payload(1)
    checkpoint_safety.load_dcp(target, tmp_path / "dcp")
    assert torch.equal(target["module/m"]["weight"], payload["module/m"]["weight"])
    assert target["optim/m"]["param_groups"][0]["lr"] == payload["optim/m"]["param_groups"][0]["lr"]

    marker = tmp_path / "pwned"
    dcp.save({"x": torch.zeros(2), "item": Plant(marker)}, checkpoint_id=str(tmp_path / "items"))
    with pytest.raises(CheckpointError, match="item is not plain data"):
        checkpoint_safety.load_dcp({"x": torch.ones(2), "item": None}, tmp_path / "items")
    (tmp_path / "dcp/.metadata").write_bytes(pickle.dumps(Plant(marker)))
    with pytest.raises(CheckpointError, match="refusing to load global"):
        checkpoint_safety.load_dcp(target, tmp_path / "dcp")
    assert not marker.exists()
