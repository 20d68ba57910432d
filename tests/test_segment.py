"""Segmenters: MobileSAM strict loading, prompts from masks, input checks, and tracking synthetic videos.

The tracking test segments two procedural scenes after an H.264 round trip and checks the mean mask IoU
against the ground truth (>= 0.9), and that a wrong video (the first frame frozen while the objects move)
scores clearly lower. Needs the MobileSAM weights (`flashbench weights fetch mobilesam`); skipped otherwise.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from flashbench.data.objects import boxes_from_masks
from flashbench.data.synthetic import generate_scene
from flashbench.errors import FlashBenchError, VideoError, WeightsError
from flashbench.metrics.iou import box_iou, mask_iou, summarize
from flashbench.metrics.segment import load_segmenter
from flashbench.metrics.segment.base import check_track_inputs
from flashbench.metrics.segment.checkpoint import load_strict, read_state_dict
from flashbench.metrics.segment.mobilesam import build_mobilesam
from flashbench.metrics.segment.prompts import mask_logits, mask_prompts, negative_points
from flashbench.metrics.segment.tiny_vit import Attention
from flashbench.video import read_video, write_video


def _mobilesam_weights():
    from flashbench.weights import resolve

    try:
        return resolve("mobilesam")
    except WeightsError as e:
        pytest.skip(str(e))


def test_mobilesam_checkpoint_loads_strictly():
    path = _mobilesam_weights()
    state = read_state_dict(path, "fix")
    model = build_mobilesam()
    assert set(model.state_dict()) == set(state)  # every tensor of the official file has a home, and vice versa
    load_strict(model, state, path, "fix")
    for key in ("image_encoder.layers.2.blocks.5.attn.attention_biases", "mask_decoder.iou_prediction_head.layers.2.weight"):
        torch.testing.assert_close(model.state_dict()[key], state[key], rtol=0, atol=0)
    broken = dict(state)
    broken.pop("image_encoder.neck.0.weight")
    with pytest.raises(WeightsError, match="neck.0.weight"):
        load_strict(build_mobilesam(), broken, path, "fix")


def test_tiny_vit_attention_matches_explicit_formula():
    # the port's one change to MobileSAM's maths: scaled_dot_product_attention with the bias as attn_mask
    torch.manual_seed(0)
    attn = Attention(dim=20, key_dim=4, num_heads=5, attn_ratio=1, resolution=(3, 3)).eval()
    torch.nn.init.normal_(attn.attention_biases)
    x = torch.randn(2, 9, 20)
    with torch.no_grad():
        qkv = attn.qkv(attn.norm(x)).view(2, 9, 5, -1)
        q, k, v = (t.permute(0, 2, 1, 3) for t in qkv.split([4, 4, 4], dim=3))
        logits = q @ k.transpose(-2, -1) * 4**-0.5 + attn.attention_biases[:, attn.attention_bias_idxs]
        expected = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(2, 9, 20))
        torch.testing.assert_close(attn(x), expected)
    # the bias is shared by pairs of cells with the same (|dy|, |dx|): 9 offsets in a 3x3 window
    assert attn.attention_biases.shape == (5, 9)
    assert attn.attention_bias_idxs[0, 4] == attn.attention_bias_idxs[4, 8]  # (0,0)->(1,1) and (1,1)->(2,2)


def test_mask_prompts_box_and_interior_points():
    masks = np.zeros((2, 40, 50), bool)
    yy, xx = np.mgrid[0:40, 0:50]
    masks[0] = (yy - 20) ** 2 + (xx - 15) ** 2 <= 36  # disk centred on pixel (20, 15), radius 6
    masks[1, 5:15, 30:50] = True  # rectangle touching the right border
    boxes, points = mask_prompts(masks, num_points=3, box_margin=0.1)
    assert points.shape == (2, 3, 2) and boxes.shape == (2, 4)
    np.testing.assert_allclose(points[0, 0], [15.5, 20.5])  # the centre of the disk is the most interior pixel
    for k in range(2):
        ix, iy = np.floor(points[k]).astype(int).T
        assert masks[k, iy, ix].all()  # every point is inside its mask
        assert len({tuple(p) for p in points[k]}) == 3  # and they are distinct
    tight = boxes_from_masks(masks)
    np.testing.assert_allclose(boxes[0], tight[0] + [-2, -2, 2, 2])  # 13 px wide: margin max(1.3, 2) = 2
    np.testing.assert_allclose(boxes[1], [28.0, 3.0, 50.0, 17.0])  # widened by 2 px, clipped at the border


def test_mask_prompts_constant_velocity():
    masks = np.zeros((1, 30, 60), bool)
    masks[0, 10:20, 20:30] = True  # a 10x10 square that was 5 px further left one frame earlier
    boxes, points = mask_prompts(masks, num_points=1, box_margin=0.0, prev_boxes=np.array([[15.0, 10, 25, 20]]))
    np.testing.assert_allclose(boxes[0], [18.0, 8.0, 37.0, 22.0])  # reaches the predicted [25, 35), plus 2 px
    still, _ = mask_prompts(masks, num_points=1, box_margin=0.0, prev_boxes=np.full((1, 4), np.nan))
    np.testing.assert_allclose(still[0], [18.0, 8.0, 32.0, 22.0])  # unknown velocity: the box itself, plus 2 px
    centre = mask_prompts(masks, num_points=1, box_margin=0.0)[1]
    np.testing.assert_allclose(points - centre, [[[5.0, 0.0]]])  # the point moves on with the object


def test_check_track_inputs_errors():
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    masks = np.zeros((2, 8, 8), bool)
    masks[:, 2:4, 2:4] = True
    f, m, p = check_track_inputs(frames, masks, np.array([0, 3]))
    assert p.dtype == np.int64
    with pytest.raises(VideoError, match="8x8.*6x8"):
        check_track_inputs(frames, masks[:, :6], np.array([0, 0]))
    with pytest.raises(VideoError, match="frame 4 but the video has 4 frames"):
        check_track_inputs(frames, masks, np.array([0, 4]))
    empty = masks.copy()
    empty[1] = False
    with pytest.raises(FlashBenchError, match="object 1 has an empty prompt mask"):
        check_track_inputs(frames, empty, np.array([0, 1]))
    with pytest.raises(VideoError, match="uint8"):
        check_track_inputs(frames.astype(np.float32), masks, np.array([0, 0]))


def test_load_segmenter_errors(tmp_path):
    with pytest.raises(FlashBenchError, match="unknown segmenter 'nope'"):
        load_segmenter("nope")
    with pytest.raises(WeightsError, match="--segmenter-checkpoint"):
        load_segmenter("sam")
    with pytest.raises(WeightsError, match="not found"):
        load_segmenter("mobilesam", checkpoint=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_segmenter("mobilesam", checkpoint=junk)
    fake_sam = tmp_path / "sam.pt"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(100, 3, 16, 16)}, fake_sam)
    with pytest.raises(WeightsError, match="width 100"):
        load_segmenter("sam", checkpoint=fake_sam)
    if importlib.util.find_spec("sam2") is None:
        with pytest.raises(FlashBenchError, match="pip install sam2"):
            load_segmenter("sam2", checkpoint=fake_sam)
    if importlib.util.find_spec("efficient_track_anything") is None:
        with pytest.raises(FlashBenchError, match="yformer/EfficientTAM"):
            load_segmenter("efficienttam", checkpoint=fake_sam)


# (seed, objects): scene 0 has an object that leaves the frame part-way
SCENES = ((0, 3), (5, 2))
FRAMES, SIZE, FPS = 9, (128, 128), 6.0  # low fps: objects move several pixels per frame


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Per scene: ground truth, prompt frames, and MobileSAM tracks of the real and a frozen video."""
    _mobilesam_weights()
    segmenter = load_segmenter("mobilesam", progress=False)
    results = []
    for seed, n in SCENES:
        scene = generate_scene(n, FRAMES, SIZE, seed=seed)
        path = tmp_path_factory.mktemp("videos") / f"scene{seed}.mp4"
        write_video(path, scene.frames, FPS)
        video = read_video(path)
        first = scene.masks.any(axis=(2, 3)).argmax(axis=0)
        prompts = scene.masks[first, np.arange(n)]
        real = segmenter.track(video, prompts, first)
        frozen = segmenter.track(np.repeat(video[:1], FRAMES, axis=0), prompts, first)
        results.append((scene.masks, first, real, frozen))
    return results, segmenter.timings


def test_tracking_real_video_matches_ground_truth(tracked):
    results, timings = tracked
    for masks, first, real, _ in results:
        assert real.shape == masks.shape and real.dtype == bool
        for k, f in enumerate(first):
            assert not real[:f, k].any()  # nothing before the prompt frame
        iou = summarize(mask_iou(real, masks, start=first))
        print(f"real video: mask IoU per object {np.round(iou.per_object, 3)}, mean {iou.mean:.3f}")
        assert iou.scored and iou.mean >= 0.9, iou
        assert (iou.per_object >= 0.7).all(), iou
        boxes = summarize(box_iou(boxes_from_masks(real), boxes_from_masks(masks), start=first))
        print(f"real video: box IoU per object {np.round(boxes.per_object, 3)}, mean {boxes.mean:.3f}")
        assert boxes.mean >= 0.8, boxes
    print(f"MobileSAM CPU per frame: {timings}")


def test_tracking_frozen_video_scores_lower(tracked):
    results, _ = tracked
    for masks, first, real, frozen in results:
        real_iou = summarize(mask_iou(real, masks, start=first)).mean
        frozen_iou = summarize(mask_iou(frozen, masks, start=first)).mean
        print(f"mask IoU: real video {real_iou:.3f}, frozen first frame {frozen_iou:.3f}")
        assert frozen_iou <= real_iou - 0.25, (real_iou, frozen_iou)


def test_negative_points_on_other_objects_inside_the_box():
    own = np.zeros((40, 60), bool)
    own[10:30, 5:25] = True
    near, far = np.zeros_like(own), np.zeros_like(own)
    near[12:20, 22:34] = True  # overlaps own's right edge, its centre inside the box [0, 40)
    far[5:15, 48:58] = True  # outside the box
    points = negative_points(own, np.array([0.0, 0.0, 40.0, 40.0]), [near, far, np.zeros_like(own)])
    assert points.shape == (1, 2)
    x, y = np.floor(points[0]).astype(int)
    assert near[y, x] and not own[y, x]  # on the part of the neighbour that is not this object


def test_mask_logits_follow_the_model_input_layout():
    mask = np.zeros((60, 120), bool)
    mask[:, :60] = True  # left half of a 2:1 frame
    logits = mask_logits(mask, input_hw=(128, 256), image_size=256, low_res=64)
    assert logits.shape == (1, 64, 64)
    assert (logits[0, :32, :32] > 0).all() and (logits[0, :32, 33:] < 0).all()  # the object, the rest
    assert (logits[0, 33:] < 0).all()  # the padding below the frame
