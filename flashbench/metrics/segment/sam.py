"""Original SAM (ViT-B/L/H image encoder) with the same tracker as MobileSAM."""

from __future__ import annotations

from pathlib import Path

import torch
from segment_anything import sam_model_registry

from flashbench.errors import WeightsError
from flashbench.metrics.segment.checkpoint import load_strict, read_state_dict
from flashbench.metrics.segment.tracker import SamTracker

# image-encoder width -> segment_anything registry key
_VARIANTS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_FIX = "pass an official SAM checkpoint (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth or sam_vit_h_4b8939.pth)"


def sam_variant(state: dict[str, torch.Tensor], checkpoint: Path) -> str:
    """'vit_b' | 'vit_l' | 'vit_h', read from the width of the checkpoint's patch embedding."""
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if not isinstance(weight, torch.Tensor):
        raise WeightsError(f"{checkpoint} has no SAM ViT image encoder (image_encoder.patch_embed.proj); {_FIX}")
    width = int(weight.shape[0])
    if width not in _VARIANTS:
        raise WeightsError(f"{checkpoint} has an image encoder of width {width}, not SAM vit_b/l/h; {_FIX}")
    return _VARIANTS[width]


def load_sam(device: str = "cpu", checkpoint: Path | None = None, progress: bool = True) -> SamTracker:
    """SAM tracker; the variant (vit_b/l/h) is detected from the checkpoint."""
    if checkpoint is None or not Path(checkpoint).is_file():
        where = "no checkpoint given" if checkpoint is None else f"checkpoint not found: {checkpoint}"
        raise WeightsError(f"segmenter 'sam' needs weights ({where}); {_FIX} with --segmenter-checkpoint PATH")
    from flashbench.weights import sha256_file

    checkpoint = Path(checkpoint)
    state = read_state_dict(checkpoint, _FIX)
    variant = sam_variant(state, checkpoint)
    model = sam_model_registry[variant]()
    load_strict(model, state, checkpoint, _FIX)
    return SamTracker(
        model.to(device), name=f"sam-{variant}", checkpoint=checkpoint, checkpoint_sha256=sha256_file(checkpoint),
        progress=progress,
    )
