"""`flashmotion train --resume`: continues the run with its own config (conflicting settings and finished runs are
refused), says where it resumes, never unpickles code from a checkpoint; stage 1 needs a real teacher unless
asked otherwise."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_hardening_checkpoints import Plant

from flashbench.data.synthetic import build_synthetic
from flashmotion.cli import main as flashmotion_main
from flashmotion.errors import CheckpointError, ModelConfigError
from flashmotion.train import checkpoint_safety
from flashmotion.train.config import load_config
from flashmotion.train.loop import train


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    bench = build_synthetic(root / "bench", videos_per_group=1, frames=9, size=(32, 32), groups=("1",)).root
    config = root / "s1.yaml"
    config.write_text(f"stage: stage1_adapter\nrandom_teacher: true\nsteps: 2\nbatch_size: 1\ncheckpoint_every: 1\n"
                      f"data: {{bench: {bench}}}\nmethod: {{adapter_options: {{channels: 8}}}}\n")
    out = root / "run"
    train(load_config(config, [f"out={out}"]))
    return config, out


def _copy(finished, tmp_path):
    config, out = finished
    run = tmp_path / "run"
    shutil.copytree(out, run)
    return config, run


def test_a_finished_run_is_not_resumed(finished, tmp_path, capsys):
    config, run = _copy(finished, tmp_path)
    before = (run / "config.json").read_text()
    assert flashmotion_main(["train", "--config", str(config), "--resume", f"out={run}", "steps=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is finished (done.json): nothing to resume" in err
    assert (run / "config.json").read_text() == before and len((run / "log.csv").read_text().splitlines()) == 3


def test_resume_refuses_settings_other_than_the_runs_own(finished, tmp_path):
    config, run = _copy(finished, tmp_path)
    (run / "done.json").unlink()
    before = (run / "config.json").read_text()
    with pytest.raises(CheckpointError, match=r"these differ: lr: 0.0001 in the run, 0.5 now; method.adapter_options"
                                              r".channels: 8 in the run, 16 now"):
        train(load_config(config, [f"out={run}", "lr=0.5", "method.adapter_options.channels=16"]), resume=True)
    assert (run / "config.json").read_text() == before


def test_resume_says_where_it_resumes_and_may_train_longer(finished, tmp_path, capsys):
    config, run = _copy(finished, tmp_path)
    (run / "done.json").unlink()
    train(load_config(config, [f"out={run}", "steps=3"]), resume=True)
    out = capsys.readouterr().out
    assert "note: the run was configured for 2 steps; resuming toward steps=3" in out
    assert "resuming from step 2 of 3" in out
    assert len((run / "log.csv").read_text().splitlines()) == 4 and json.loads((run / "done.json").read_text())["steps"] == 3
    (run / "done.json").unlink()
    with pytest.raises(CheckpointError, match="is at step 3, past steps=2"):
        train(load_config(config, [f"out={run}"]), resume=True)


def test_resume_never_runs_a_planted_pickle(finished, tmp_path, capsys):
    config, run = _copy(finished, tmp_path)
    (run / "done.json").unlink()
    latest = run / "checkpoints" / "step-00000002"
    marker = tmp_path / "pwned"
    torch.save({"step": Plant(marker)}, latest / "state.pt")
    meta = json.loads((latest / "meta.json").read_text())
    meta["files"] = checkpoint_safety.manifest(latest)  # the attacker rewrote the manifest too
    (latest / "meta.json").write_text(json.dumps(meta))
    assert flashmotion_main(["train", "--config", str(config), f"out={run}", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "state.pt is not a plain tensor/number file" in err
    assert not marker.exists()


def test_stage1_without_a_teacher_needs_random_teacher(finished, tmp_path):
    config, _ = finished
    with pytest.raises(ModelConfigError, match="stage1_adapter needs a teacher: pass init.teacher=DIR"):
        train(load_config(config, [f"out={tmp_path / 'r'}", "random_teacher=false"]))
    assert not (tmp_path / "r").exists()
