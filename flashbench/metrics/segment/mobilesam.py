"""MobileSAM: segment_anything's `Sam` with the TinyViT image encoder (MobileSAM's `build_sam_vit_t`)."""

from __future__ import annotations

from pathlib import Path

from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from flashbench.errors import WeightsError
from flashbench.metrics.segment.checkpoint import load_strict, read_state_dict
from flashbench.metrics.segment.tiny_vit import TinyViT
from flashbench.metrics.segment.tracker import SamTracker

IMAGE_SIZE = 1024  # MobileSAM's training size
PROMPT_EMBED_DIM = 256


def build_mobilesam(image_size: int = IMAGE_SIZE) -> Sam:
    """The MobileSAM network with random weights (MobileSAM's `build_sam_vit_t` hyper-parameters), its encoder
    reading `image_size`^2 inputs (a multiple of 64; the weights do not depend on it)."""
    if image_size % 64 or image_size < 64:
        raise WeightsError(f"MobileSAM image size must be a positive multiple of 64, got {image_size}")
    embedding_size = image_size // 16
    return Sam(
        image_encoder=TinyViT(
            img_size=image_size,
            embed_dims=(64, 128, 160, 320),
            depths=(2, 2, 6, 2),
            num_heads=(2, 4, 5, 10),
            window_sizes=(7, 7, 14, 7),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(image_size, image_size),
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


def load_mobilesam(
    device: str = "cpu", checkpoint: Path | None = None, progress: bool = True, image_size: int | None = None
) -> SamTracker:
    """MobileSAM tracker; checkpoint defaults to the cached file of `flashbench weights fetch mobilesam`.

    image_size: encoder input side (multiple of 64); None chooses it from each video's size
    (`encoder.auto_image_size`). A model is built per size, all from the same weights.
    """
    from flashbench.weights import resolve, sha256_file

    path = resolve("mobilesam") if checkpoint is None else Path(checkpoint)
    if not path.is_file():
        raise WeightsError(f"MobileSAM checkpoint not found: {path}; run `flashbench weights fetch mobilesam`")
    fix = "pass the official mobile_sam.pt (`flashbench weights fetch mobilesam`)"
    state = read_state_dict(path, fix)
    load_strict(build_mobilesam(), state, path, fix)  # a wrong file fails here, not on the first video

    def build(size: int) -> Sam:
        model = build_mobilesam(size)
        load_strict(model, state, path, fix)
        return model.to(device)

    return SamTracker(build, name="mobilesam", checkpoint=path, checkpoint_sha256=sha256_file(path),
                      image_size=image_size, progress=progress)
