"""Reading SAM-family state dicts with one-line errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from flashbench.errors import WeightsError


def read_state_dict(checkpoint: Path, fix: str) -> dict[str, torch.Tensor]:
    """A plain tensor state dict (``{"model": ...}`` wrappers unwrapped); WeightsError ending with `fix`."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise WeightsError(f"cannot read checkpoint {checkpoint} ({' '.join(str(e).split())[:150]}); {fix}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{checkpoint} holds a {type(state).__name__}, not a state dict; {fix}")
    return state


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], checkpoint: Path, fix: str) -> None:
    """`model.load_state_dict(state, strict=True)`; WeightsError naming the first mismatch."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:200]
        raise WeightsError(f"{checkpoint} does not match {type(model).__name__} ({first}); {fix}") from None
