"""Mask / box IoU: parity with pycocotools and torchvision, the absent-object convention, summarize."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from pycocotools import mask as mask_utils

from flashbench.data.objects import boxes_from_masks, encode_rle
from flashbench.errors import FlashBenchError
from flashbench.metrics.iou import box_iou, mask_iou, summarize


def _random_masks(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
    masks = rng.random(shape) < p
    masks[..., 0, 0] = True  # never empty: pycocotools scores empty unions differently
    return masks


def test_mask_iou_matches_pycocotools():
    rng = np.random.default_rng(0)
    pred = _random_masks(rng, (3, 4, 17, 23), 0.3)
    target = _random_masks(rng, (3, 4, 17, 23), 0.5)
    ours = mask_iou(pred, target)
    assert ours.shape == (3, 4) and ours.dtype == np.float64
    for t in range(3):
        for k in range(4):
            dt = mask_utils.encode(np.asfortranarray(pred[t, k].astype(np.uint8)))
            gt = mask_utils.encode(np.asfortranarray(target[t, k].astype(np.uint8)))
            ref = mask_utils.iou([dt], [gt], [0])[0, 0]
            assert ours[t, k] == pytest.approx(ref, abs=1e-12)


def test_mask_iou_convention_case_by_case():
    h, w = 8, 8
    empty = np.zeros((h, w), bool)
    small = empty.copy()
    small[0:2, 0:2] = True  # 4 pixels
    big = empty.copy()
    big[0:2, 0:4] = True  # 8 pixels, contains `small`
    far = empty.copy()
    far[6:8, 6:8] = True
    pred = np.stack([empty, empty, small, small, small, small])[None]
    target = np.stack([empty, small, empty, small, big, far])[None]
    np.testing.assert_array_equal(mask_iou(pred, target)[0], [1.0, 0.0, 0.0, 1.0, 0.5, 0.0])


def test_mask_iou_start_marks_earlier_frames_unscored():
    rng = np.random.default_rng(1)
    pred = _random_masks(rng, (4, 3, 6, 6), 0.5)
    target = _random_masks(rng, (4, 3, 6, 6), 0.5)
    full = mask_iou(pred, target)
    iou = mask_iou(pred, target, start=np.array([0, 2, 4]))
    assert np.isnan(iou[:2, 1]).all() and np.isnan(iou[:, 2]).all()
    np.testing.assert_array_equal(iou[:, 0], full[:, 0])
    np.testing.assert_array_equal(iou[2:, 1], full[2:, 1])
    with pytest.raises(FlashBenchError, match="start"):
        mask_iou(pred, target, start=np.array([0, 1]))
    with pytest.raises(FlashBenchError, match="start"):
        mask_iou(pred, target, start=np.array([0, -1, 5]))


def test_mask_iou_accepts_rle_lists():
    rng = np.random.default_rng(2)
    pred = _random_masks(rng, (2, 3, 9, 11), 0.4)
    target = _random_masks(rng, (2, 3, 9, 11), 0.4)
    pred[1, 2] = False  # an empty RLE too
    as_rle = [[encode_rle(m) for m in frame] for frame in pred]
    np.testing.assert_array_equal(mask_iou(as_rle, target), mask_iou(pred, target))


def test_mask_iou_shape_mismatch_names_both_shapes():
    with pytest.raises(FlashBenchError, match=r"\(2, 1, 4, 4\).*\(3, 1, 4, 4\)"):
        mask_iou(np.zeros((2, 1, 4, 4), bool), np.zeros((3, 1, 4, 4), bool))
    with pytest.raises(FlashBenchError, match="0/1"):
        mask_iou(np.full((1, 1, 2, 2), 0.5), np.zeros((1, 1, 2, 2), bool))


def _random_boxes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    xy0 = rng.uniform(0, 50, shape + (2,))
    wh = rng.uniform(1, 40, shape + (2,))
    return np.concatenate([xy0, xy0 + wh], axis=-1)


def test_box_iou_matches_torchvision_and_pycocotools():
    rng = np.random.default_rng(3)
    pred = _random_boxes(rng, (5, 3))
    target = _random_boxes(rng, (5, 3))
    target[0] = pred[0] + 2.0  # guarantee some overlap
    ours = box_iou(pred, target)
    tv = torchvision.ops.box_iou(torch.from_numpy(pred.reshape(-1, 4)), torch.from_numpy(target.reshape(-1, 4)))
    np.testing.assert_allclose(ours.ravel(), tv.diagonal().numpy(), rtol=1e-12, atol=1e-12)
    xywh = lambda b: np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1).reshape(-1, 4)  # noqa: E731
    coco = mask_utils.iou(xywh(pred), xywh(target), [0] * 15).diagonal()
    np.testing.assert_allclose(ours.ravel(), coco, rtol=1e-9, atol=1e-12)
    assert (ours[0] > 0).all()


def test_box_iou_convention_and_mask_boxes():
    masks = np.zeros((1, 4, 10, 10), bool)
    masks[0, 1, 2:4, 2:4] = True
    masks[0, 2, 5, 5] = True  # a one-pixel object has a 1x1 box
    pred_masks = masks.copy()
    pred_masks[0, 0, 0, 0] = True  # target absent, prediction present
    pred_masks[0, 2] = False  # target present, prediction absent; object 3 absent from both
    got = box_iou(boxes_from_masks(pred_masks), boxes_from_masks(masks))
    np.testing.assert_array_equal(got[0], [0.0, 1.0, 0.0, 1.0])
    both_absent = np.full((1, 1, 4), np.nan)
    assert box_iou(both_absent, both_absent)[0, 0] == 1.0
    with pytest.raises(FlashBenchError, match="partly NaN"):
        box_iou(np.array([[[0, 0, np.nan, 1]]]), np.array([[[0, 0, 1, 1]]]))
    with pytest.raises(FlashBenchError, match=r"\(1, 1, 4\).*\(1, 2, 4\)"):
        box_iou(np.array([[[0, 0, 1, 1]]]), np.array([[[0, 0, 1, 1], [0, 0, 2, 2]]]))


def test_summarize_means_over_frames_then_objects():
    per_frame = np.array(
        [
            [1.0, np.nan, np.nan],
            [0.5, 0.2, np.nan],
            [0.0, 0.4, np.nan],
        ]
    )
    s = summarize(per_frame)
    per_object, mean = s  # unpacks as a pair
    np.testing.assert_allclose(per_object[:2], [np.mean([1.0, 0.5, 0.0]), np.mean([0.2, 0.4])])
    assert math.isnan(per_object[2])
    assert mean == pytest.approx(np.mean(per_object[:2]))
    assert s.scored and s.num_scored == 2
    none = summarize(np.full((3, 2), np.nan))
    assert math.isnan(none.mean) and not none.scored and none.num_scored == 0
    with pytest.raises(FlashBenchError, match=r"\[0, 1\]"):
        summarize(np.array([[1.5]]))
