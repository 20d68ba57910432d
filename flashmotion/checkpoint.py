"""FlashMotion checkpoints: adapter weights in safetensors, a JSON config beside them, optionally backbone parts.

Layout of a checkpoint folder:
    flashmotion.json        {"format_version", "preset", "adapter": {"kind", "options"}, "backbone_components",
                             "metadata"}; written last, so its presence means the folder is complete
    adapter.safetensors     the adapter's state dict
    backbone/<component>/   diffusers/transformers save_pretrained folders of the saved backbone components:
                            all four for a tiny model; e.g. only `transformer` for a distilled 5B generator
                            (the rest then comes from `model_path`, a local Wan2.2-TI2V-5B-Diffusers folder)
    card.json               sha256 of every file (flashmotion.checkpoint_cards), written after flashmotion.json;
                            `flashmotion publish` rewrites it with the training run's provenance

`read_config`, which every loader calls, checks the card first. A folder without one (made elsewhere, or its card
deleted) is refused unless `allow_uncarded(folder)` was called for it (generators: `trust_uncarded=true`, which
the run's generator args record).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from flashmotion.errors import CheckpointError
from flashmotion.models.adapters import build_adapter
from flashmotion.models.backbone import SUBFOLDERS, WanBackbone, load_component

CONFIG_NAME = "flashmotion.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
BACKBONE_DIR = "backbone"
FORMAT_VERSION = 1
_uncarded_allowed: set[str] = set()


def allow_uncarded(directory: str | Path) -> None:
    """Let this process load checkpoint `directory` although it has no card.json (the user's explicit choice)."""
    _uncarded_allowed.add(str(Path(directory).resolve()))


@dataclass
class Checkpoint:
    backbone: WanBackbone
    adapter: nn.Module
    config: dict[str, Any]


def save_checkpoint(
    directory: str | Path,
    adapter: nn.Module,
    backbone: WanBackbone,
    components: Sequence[str] = SUBFOLDERS,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `adapter` and the backbone `components` (none: adapter only) to `directory`; returns it."""
    from flashmotion.checkpoint_cards import CARD_NAME, write_card

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_NAME).unlink(missing_ok=True)
    (root / CARD_NAME).unlink(missing_ok=True)
    save_model(adapter, str(root / ADAPTER_WEIGHTS))
    if components:
        backbone.save_pretrained(root / BACKBONE_DIR, components)
    config = {
        "format_version": FORMAT_VERSION,
        "preset": backbone.preset,
        "adapter": {"kind": adapter.kind, "options": adapter.options},
        "backbone_components": list(components),
        "metadata": metadata or {},
    }
    (root / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_card(root)
    return root


def read_config(directory: str | Path) -> dict[str, Any]:
    """flashmotion.json of a checkpoint, after its card's sha256 check (see the module docstring)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a FlashMotion checkpoint (no {CONFIG_NAME}); save one with save_checkpoint")
    from flashmotion.checkpoint_cards import CARD_NAME, verify_card

    if verify_card(directory) is None and str(Path(directory).resolve()) not in _uncarded_allowed:
        raise CheckpointError(
            f"{directory} has no {CARD_NAME}, so its files cannot be checked; re-export it or `flashmotion publish` "
            "it, or pass trust_uncarded=true to load it as it is (the run records that)"
        )
    try:
        config = json.loads(path.read_text())
    except ValueError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); re-export the checkpoint") from None
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        found = config.get("format_version") if isinstance(config, dict) else None
        raise CheckpointError(f"{path}: format_version {found} is not {FORMAT_VERSION}")
    return config


def load_checkpoint(
    directory: str | Path,
    model_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """Backbone (saved components over `model_path`'s) and adapter of a checkpoint, in eval mode on `device`."""
    root = Path(directory)
    config = read_config(root)
    saved = list(config["backbone_components"])
    if set(saved) >= set(SUBFOLDERS):
        backbone = WanBackbone.from_pretrained(root / BACKBONE_DIR, config["preset"], dtype=dtype)
    elif model_path is not None:
        backbone = WanBackbone.from_pretrained(model_path, config["preset"], dtype=dtype)
        for name in saved:
            setattr(backbone, name, load_component(root / BACKBONE_DIR, name, dtype))
    else:
        raise CheckpointError(
            f"{root} holds only {saved or 'no'} backbone components; pass model_path=DIR (a local "
            "Wan2.2-TI2V-5B-Diffusers folder) for the rest"
        )
    backbone = backbone.to(device).eval()
    adapter = load_adapter(root, backbone.transformer, device)
    return Checkpoint(backbone, adapter.eval(), config)


def load_adapter(
    directory: str | Path, transformer: nn.Module, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> nn.Module:
    """The adapter saved in checkpoint `directory`, built for `transformer` (its device; `dtype`, default the
    transformer's)."""
    root = Path(directory)
    adapter_cfg = read_config(root)["adapter"]
    adapter = build_adapter(adapter_cfg["kind"], transformer, dtype, **adapter_cfg["options"])
    weights = root / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"missing {weights}; the checkpoint is incomplete, save it again")
    mismatch = f"{weights} does not match a {adapter_cfg['kind']} adapter for this backbone"
    try:
        missing, unexpected = load_model(adapter, str(weights), strict=False, device=str(device))
    except RuntimeError as e:  # shape mismatch
        raise CheckpointError(f"{mismatch} ({str(e).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise CheckpointError(f"{mismatch} (missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
    return adapter
