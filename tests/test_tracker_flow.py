"""Optical flow (segment/flow.py) against known motion: a textured frame shifted by a known offset, and a mask
carried along the flow lands where the same shift puts it."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from flashbench.metrics.segment.flow import BackwardFlow, warp


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.normal(0, 1, (h, w, 3)), sigma=(3, 3, 0))
    return (128 + 60 * img / img.std()).clip(0, 255).astype(np.uint8)


def test_flow_recovers_a_known_shift_and_carries_the_mask():
    h, w, dx, dy = 120, 160, 6, -4
    big = _texture(h + 40, w + 40)
    prev = big[20 : 20 + h, 20 : 20 + w]
    cur = big[20 - dy : 20 - dy + h, 20 - dx : 20 - dx + w]  # content moved by (+dx, +dy)
    flow = BackwardFlow(side=160)
    assert flow.next(prev) is None
    back = flow.next(cur)
    assert back.shape == (h, w, 2)
    inner = back[20:-20, 20:-20]
    assert np.allclose(np.median(inner.reshape(-1, 2), axis=0), (-dx, -dy), atol=0.5)

    mask = np.zeros((h, w), bool)
    mask[40:80, 50:100] = True
    expected = np.roll(mask, (dy, dx), axis=(0, 1))
    carried = warp(mask, back)
    assert (carried & expected).sum() / (carried | expected).sum() > 0.9
    assert (warp(mask, np.zeros((h, w, 2), np.float32)) == mask).all()  # zero flow: unchanged


def test_flow_on_a_downscaled_frame_is_in_full_resolution_pixels():
    h, w, dx = 120, 320, 8
    big = _texture(h, w + 40, seed=1)
    prev, cur = big[:, 20 : 20 + w], big[:, 20 - dx : 20 - dx + w]
    flow = BackwardFlow(side=160)  # computed at half size
    flow.next(prev)
    back = flow.next(cur)
    assert back.shape == (h, w, 2)
    assert abs(np.median(back[20:-20, 40:-40, 0]) + dx) < 1.0
