"""MobileSAM: segment_anything's `Sam` with the TinyViT image encoder (MobileSAM's `build_sam_vit_t`)."""

from __future__ import annotations

from pathlib import Path

from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from flashbench.errors import WeightsError
from flashbench.metrics.segment.checkpoint import load_strict, read_state_dict
from flashbench.metrics.segment.tiny_vit import TinyViT
from flashbench.metrics.segment.tracker import SamTracker

IMAGE_SIZE = 1024
PROMPT_EMBED_DIM = 256


def build_mobilesam() -> Sam:
    """The MobileSAM network with random weights (MobileSAM's `build_sam_vit_t` hyper-parameters)."""
    embedding_size = IMAGE_SIZE // 16
    return Sam(
        image_encoder=TinyViT(
            img_size=IMAGE_SIZE,
            embed_dims=(64, 128, 160, 320),
            depths=(2, 2, 6, 2),
            num_heads=(2, 4, 5, 10),
            window_sizes=(7, 7, 14, 7),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=2048, num_heads=8),
            transformer_dim=PROMPT_EMBED_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def load_mobilesam(device: str = "cpu", checkpoint: Path | None = None, progress: bool = True) -> SamTracker:
    """MobileSAM tracker; checkpoint defaults to the cached file of `flashbench weights fetch mobilesam`."""
    from flashbench.weights import resolve, sha256_file

    path = resolve("mobilesam") if checkpoint is None else Path(checkpoint)
    if not path.is_file():
        raise WeightsError(f"MobileSAM checkpoint not found: {path}; run `flashbench weights fetch mobilesam`")
    fix = "pass the official mobile_sam.pt (`flashbench weights fetch mobilesam`)"
    model = build_mobilesam()
    load_strict(model, read_state_dict(path, fix), path, fix)
    sha = sha256_file(path)
    return SamTracker(model.to(device), name="mobilesam", checkpoint=path, checkpoint_sha256=sha, progress=progress)
