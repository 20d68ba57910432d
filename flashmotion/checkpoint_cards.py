"""Checkpoint cards: what made a shipped checkpoint, and a sha256 of every file it holds.

`flashmotion.checkpoint.save_checkpoint` writes a plain card (the files' sha256 only) into every checkpoint it
saves, so a checkpoint without a card was made elsewhere or had its card deleted.

`publish(pipeline, out)` copies the export of every finished run of a `flashmotion pipeline` folder to
`out/<run>/` and writes `out/<run>/card.json`:
    {"card_version", "run", "preset", "stage", "steps", "seed", "config" (the resolved training config),
     "bench_content_hash" (the training benchmark), "git_commit", "git_dirty", "command", "created", "packages",
     "files": {relative path: sha256}}
taken from the run's done.json (the trainer's provenance record). `verify_card(folder)` recomputes the digests
and raises CheckpointError naming the first file that differs, is missing or is not listed; the loaders
(`flashmotion.checkpoint.read_config`) call it for every folder that has a card, again only when a file's size or
mtime changed (one process loads a checkpoint several times).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flashbench.atomic import write_text
from flashbench.weights import sha256_file as _sha256
from flashmotion.errors import CheckpointError

CARD_NAME = "card.json"
CARD_VERSION = 1
_verified: dict[str, tuple] = {}


def _file_names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != CARD_NAME)


def _files(folder: Path) -> dict[str, str]:
    return {name: _sha256(folder / name) for name in _file_names(folder)}


def write_card(folder: Path, run: str | None = None, done: dict | None = None) -> Path:
    """Write `folder/card.json` for the checkpoint in `folder`: the sha256 of its files and, for the export of a
    training run whose done.json is `done`, that run's provenance."""
    card: dict = {"card_version": CARD_VERSION}
    if done is not None:
        config = done["config"]
        card.update({
            "run": run,
            "preset": config["preset"],
            "stage": done["stage"],
            "steps": done["steps"],
            "seed": config["seed"],
            "config": config,
            "bench_content_hash": done.get("bench_content_hash"),
            **{key: done.get(key) for key in ("git_commit", "git_dirty", "command", "created", "packages")},
        })
    card["files"] = _files(folder)
    path = folder / CARD_NAME
    write_text(path, json.dumps(card, indent=2, sort_keys=False) + "\n")
    return path


def verify_card(folder: str | Path) -> dict | None:
    """The card of `folder` after checking every file's sha256; None when the folder has no card."""
    folder = Path(folder)
    path = folder / CARD_NAME
    if not path.is_file():
        return None
    state = tuple((p.as_posix(), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file())
    card = json.loads(path.read_text())
    if _verified.get(str(folder.resolve())) == state:
        return card
    listed = card.get("files") or {}
    for rel, digest in listed.items():
        file = folder / rel
        if not file.is_file():
            raise CheckpointError(f"{folder}: {rel} listed in {CARD_NAME} is missing; restore the checkpoint (git checkout / re-publish)")
        if _sha256(file) != digest:
            raise CheckpointError(f"{folder}: {rel} does not match the sha256 in {CARD_NAME}; the file is damaged or was "
                                  "changed after publishing: restore it or re-publish")
    extra = sorted(set(_file_names(folder)) - set(listed))
    if extra:
        raise CheckpointError(f"{folder}: {extra[0]} is not listed in {CARD_NAME}; remove it or re-publish")
    _verified[str(folder.resolve())] = state
    return card


def publish(pipeline: str | Path, out: str | Path) -> Path:
    """Copy every finished run's export of `pipeline` to `out/<run>` with its card; returns `out`."""
    pipeline, out = Path(pipeline), Path(out)
    runs = sorted(p.parent.parent.name for p in pipeline.glob("*/export/flashmotion.json"))
    if not runs:
        raise CheckpointError(f"{pipeline} has no finished run exports (<run>/export/flashmotion.json); run `flashmotion pipeline` first")
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:
        done_path = pipeline / run / "done.json"
        if not done_path.is_file():
            raise CheckpointError(f"{pipeline / run} has an export but no done.json; finish that run first")
        target = out / run
        staging = out / f".{run}.publishing"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(pipeline / run / "export", staging)
        write_card(staging, run, json.loads(done_path.read_text()))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return out
