"""Trajectory condition maps: pixel colours at known positions."""

from __future__ import annotations

import numpy as np
import pytest

from flashbench.data.trajectories import object_colors, render_condition


def two_squares(t: int = 5, h: int = 64, w: int = 64) -> np.ndarray:
    """Object 0: square rows 10..29, cols 10+i..29+i; object 1: rows 20..39, cols 20..39 (overlaps object 0)."""
    masks = np.zeros((t, 2, h, w), bool)
    for i in range(t):
        masks[i, 0, 10:30, 10 + i : 30 + i] = True
        masks[i, 1, 20:40, 20:40] = True
    return masks


def test_object_colors_distinct_and_stable():
    c = object_colors(12)
    assert c.shape == (12, 3) and c.dtype == np.uint8
    d = np.linalg.norm(c[:, None].astype(float) - c[None].astype(float), axis=-1)
    assert d[~np.eye(12, dtype=bool)].min() > 60
    assert (c.max(axis=1) >= 128).all()  # clear of a near-black background
    assert np.array_equal(object_colors(3), c[:3])


def test_mask_map():
    masks = two_squares()
    colors = object_colors(2)
    out = render_condition(masks, "mask")
    assert out.shape == (5, 64, 64, 3) and out.dtype == np.uint8
    for i in range(5):
        assert (out[i, 12, 12 + i] == colors[0]).all()
        assert (out[i, 25, 25] == colors[1]).all()  # overlap: later object on top
        assert (out[i, 35, 35] == colors[1]).all()
        assert (out[i, 50, 50] == 0).all() and (out[i, 5, 5] == 0).all()
    painted = out.any(-1)
    assert np.array_equal(painted, masks.any(1))


def test_box_map_first_frame_masks_then_outlines():
    masks = two_squares()
    colors = object_colors(2)
    out = render_condition(masks, "box")
    assert np.array_equal(out[0], render_condition(masks[:1], "mask")[0])
    for i in range(1, 5):
        # Object 0's box is x in [10+i, 30+i), y in [10, 30); 1-pixel outline at 64x64.
        assert (out[i, 10, 15 + i] == colors[0]).all()  # top edge
        assert (out[i, 29, 15 + i] == colors[0]).all()  # bottom edge
        assert (out[i, 15, 10 + i] == colors[0]).all()  # left edge
        assert (out[i, 15, 29 + i] == colors[0]).all()  # right edge
        assert (out[i, 15, 15 + i] == 0).all()  # inside the box: black
        assert (out[i, 39, 30] == colors[1]).all() and (out[i, 32, 32] == 0).all()  # object 1: box [20, 40)
        assert (out[i, 50, 50] == 0).all()


def test_outline_thickness_scales_with_size():
    masks = np.zeros((2, 1, 400, 400), bool)
    masks[:, 0, 100:300, 100:300] = True
    out = render_condition(masks, "box")
    col = out[1, :, 200].any(-1)
    assert col[100:104].all() and not col[104:296].any() and col[296:300].all()  # 400 // 100 = 4 pixels


def test_sparse_box_map():
    masks = two_squares(t=10)
    out = render_condition(masks, "sparse_box", sparse_every=4)
    assert np.array_equal(out[0], render_condition(masks, "mask")[0])
    dense = render_condition(masks, "box")
    for i in range(1, 10):
        if i % 4 == 0:
            assert np.array_equal(out[i], dense[i]) and out[i].any()
        else:
            assert not out[i].any()


def test_given_boxes_and_absent_objects():
    masks = two_squares(t=3)
    masks[2, 1] = False
    boxes = np.full((3, 2, 4), np.nan, np.float32)
    boxes[1:, 0] = [0, 0, 8, 8]
    out = render_condition(masks, "box", boxes=boxes)
    assert (out[1, 0, 4] == object_colors(2)[0]).all() and not out[1, 20:].any()
    auto = render_condition(masks, "box")
    assert not (auto[2] == object_colors(2)[1]).all(-1).any()  # absent object: no outline


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        render_condition(two_squares(), "points")
    with pytest.raises(ValueError, match="T, N, H, W"):
        render_condition(np.zeros((4, 4), bool), "mask")
    with pytest.raises(ValueError, match="boxes"):
        render_condition(two_squares(), "box", boxes=np.zeros((1, 2, 4)))
