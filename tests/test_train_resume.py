"""Exact resume: SIGKILL a training process after a checkpoint, `--resume` it, and get the uninterrupted run's
loss CSV byte for byte and the same exported weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flashbench.data.synthetic import build_synthetic

REPO = Path(__file__).resolve().parents[1]
STEPS, EVERY = 16, 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    bench = build_synthetic(root / "bench", videos_per_group=2, frames=9, size=(32, 32), groups=("1", "2")).root
    config = root / "stage1.yaml"
    config.write_text(
        f"stage: stage1_adapter\nrandom_teacher: true\nsteps: {STEPS}\nbatch_size: 2\nlr: 1.0e-3\ncheckpoint_every: {EVERY}\n"
        f"keep_checkpoints: 2\nema: 0.9\ndata: {{bench: {bench}, frames: 9, size: [32, 32], random_crop: true}}\n"
        "method: {adapter: resnet, adapter_options: {channels: 8}, mask_fraction: 0.5}\n"
    )
    return root, config


def _command(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flashmotion.cli", "train", "--config", str(config), f"out={out}", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(setup):
    root, config = setup
    reference = root / "reference"
    subprocess.run(_command(config, reference), cwd=REPO, env=_env(), check=True, capture_output=True)

    killed = root / "killed"
    proc = subprocess.Popen(_command(config, killed), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed / "checkpoints" / f"step-{2 * EVERY:08d}" / "meta.json"
    deadline = time.time() + 120
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed; make STEPS larger"
    lines = (killed / "log.csv").read_text().splitlines()
    assert 2 * EVERY <= len(lines) - 1 < STEPS  # killed mid-run, after the step-8 checkpoint
    assert not (killed / "done.json").exists()

    refused = subprocess.run(_command(config, killed), cwd=REPO, env=_env(), capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    subprocess.run(_command(config, killed, "--resume"), cwd=REPO, env=_env(), check=True, capture_output=True)
    assert (killed / "log.csv").read_text() == (reference / "log.csv").read_text()
    a = load_file(str(reference / "export" / "adapter.safetensors"))
    b = load_file(str(killed / "export" / "adapter.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    kept = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert kept == [f"step-{STEPS - EVERY:08d}", f"step-{STEPS:08d}"]
