"""FlashMotion errors: FlashBenchError subclasses, so the CLIs print them as one line and exit 2."""

from __future__ import annotations

from flashbench.errors import FlashBenchError


class ModelConfigError(FlashBenchError):
    """A preset, adapter or sampler setting is unknown or inconsistent (e.g. a size the VAE cannot encode)."""


class CheckpointError(FlashBenchError):
    """A FlashMotion checkpoint folder is missing files or does not match the backbone it is loaded into."""
