"""Checkpoint cards: publish copies a pipeline's exports with provenance and sha256s; loading checks them."""

from __future__ import annotations

import hashlib
import json

import pytest

from flashmotion.checkpoint import allow_uncarded, read_config
from flashmotion.checkpoint_cards import CARD_NAME, publish, verify_card
from flashmotion.cli import main as flashmotion_main
from flashmotion.errors import CheckpointError


def _fake_run(pipeline, name, stage="stage1_adapter", steps=7):
    export = pipeline / name / "export"
    (export / "backbone" / "vae").mkdir(parents=True)
    (export / "adapter.safetensors").write_bytes(b"weights of " + name.encode())
    (export / "backbone" / "vae" / "config.json").write_text("{}")
    (export / "flashmotion.json").write_text(json.dumps({"format_version": 1, "preset": "tiny", "backbone_components": [],
                                                          "adapter": {"kind": "resnet", "options": {}}, "metadata": {}}))
    done = {"stage": stage, "steps": steps, "git_commit": "abc123", "git_dirty": False, "command": "pipeline",
            "created": "2026-12-01", "packages": {"torch": "x"}, "bench_content_hash": "f" * 64,
            "config": {"preset": "tiny", "seed": 3, "steps": steps}}
    (pipeline / name / "done.json").write_text(json.dumps(done))


def test_publish_writes_cards_with_provenance_and_digests(tmp_path):
    pipeline, out = tmp_path / "pipeline", tmp_path / "checkpoints"
    _fake_run(pipeline, "stage1_adapter")
    _fake_run(pipeline, "stage3_hybrid", stage="stage3_hybrid", steps=9)
    (pipeline / "cache").mkdir()  # not a run: ignored
    assert publish(pipeline, out) == out
    assert sorted(p.name for p in out.iterdir()) == ["stage1_adapter", "stage3_hybrid"]
    card = json.loads((out / "stage3_hybrid" / CARD_NAME).read_text())
    assert (card["run"], card["stage"], card["steps"], card["seed"]) == ("stage3_hybrid", "stage3_hybrid", 9, 3)
    assert card["git_commit"] == "abc123" and card["bench_content_hash"] == "f" * 64
    weights = (out / "stage3_hybrid" / "adapter.safetensors").read_bytes()
    assert card["files"]["adapter.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert set(card["files"]) == {"adapter.safetensors", "flashmotion.json", "backbone/vae/config.json"}
    assert verify_card(out / "stage3_hybrid")["run"] == "stage3_hybrid"


def test_loading_a_damaged_or_padded_checkpoint_fails_naming_the_file(tmp_path):
    pipeline, out = tmp_path / "pipeline", tmp_path / "checkpoints"
    _fake_run(pipeline, "stage1_adapter")
    publish(pipeline, out)
    folder = out / "stage1_adapter"
    assert read_config(folder)["preset"] == "tiny"
    (folder / "adapter.safetensors").write_bytes(b"weights of something else")
    with pytest.raises(CheckpointError, match="adapter.safetensors does not match the sha256"):
        read_config(folder)
    publish(pipeline, out)  # re-publishing restores it
    (folder / "backbone" / "stray.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="stray.bin is not listed"):
        verify_card(folder)
    (folder / "backbone" / "stray.bin").unlink()
    (folder / "backbone" / "vae" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json listed in card.json is missing"):
        verify_card(folder)


def test_a_checkpoint_without_card_loads_only_when_trusted(tmp_path):
    _fake_run(tmp_path, "run")
    folder = tmp_path / "run" / "export"
    assert verify_card(folder) is None
    with pytest.raises(CheckpointError, match="has no card.json.*trust_uncarded=true"):
        read_config(folder)
    allow_uncarded(folder)
    assert read_config(folder)["preset"] == "tiny"


def test_publish_cli_and_its_one_line_errors(tmp_path, capsys):
    assert flashmotion_main(["publish", "--pipeline", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "run `flashmotion pipeline` first" in capsys.readouterr().err
    _fake_run(tmp_path / "p", "stage2_dmd")
    (tmp_path / "p" / "stage2_dmd" / "done.json").unlink()
    assert flashmotion_main(["publish", "--pipeline", str(tmp_path / "p"), "--out", str(tmp_path / "out")]) == 2
    assert "no done.json" in capsys.readouterr().err
