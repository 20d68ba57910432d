"""The MobileSAM tracker on synthetic scenes built here: occlusion, leaving and coming back, a small object.

Each scene is a textured disk moving over a smooth noise background; the ground truth is the visible part
of the disk. Needs the MobileSAM weights (`flashbench weights fetch mobilesam`); skipped otherwise. The
video is 128x128, so the encoder runs at the automatic 256x256 input size (cheap on CPU).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from flashbench.errors import WeightsError
from flashbench.metrics.iou import mask_iou

SIZE = 128


@pytest.fixture(scope="module")
def tracker():
    from flashbench.metrics.segment import load_segmenter
    from flashbench.weights import resolve

    try:
        resolve("mobilesam")
    except WeightsError as e:
        pytest.skip(str(e))
    return load_segmenter("mobilesam", progress=False)


def render(centres: np.ndarray, radius: float, occluder: tuple[slice, slice] | None = None, seed: int = 0):
    """(T, 2) xy disk centres -> (T, S, S, 3) uint8 frames and (T, 1, S, S) visible masks."""
    rng = np.random.default_rng(seed)
    background = ndimage.gaussian_filter(rng.normal(0, 1, (SIZE, SIZE, 3)), sigma=(6, 6, 0))
    background = (110 + 25 * background / background.std()).clip(0, 255)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    frames = np.empty((len(centres), SIZE, SIZE, 3), np.uint8)
    masks = np.zeros((len(centres), 1, SIZE, SIZE), bool)
    for t, (cx, cy) in enumerate(centres):
        frame = background.copy()
        disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        checker = ((np.floor((xx - cx) / 4) + np.floor((yy - cy) / 4)) % 2).astype(bool)
        frame[disk & checker] = (230, 40, 30)
        frame[disk & ~checker] = (250, 210, 40)
        if occluder is not None:
            frame[occluder] = (60, 90, 160)
            disk[occluder] = False
        frames[t], masks[t, 0] = frame, disk
    return frames, masks


def _track(tracker, frames, masks, start=None):
    first = masks.any(axis=(2, 3)).argmax(axis=0) if start is None else np.array([start])
    pred = tracker.track(frames, masks[first, np.arange(1)], first)
    return pred, mask_iou(pred, masks, first)[:, 0]



def test_recovers_after_full_occlusion(tracker):
    # moves right at 6 px/frame behind a 38 px bar: fully hidden in frames 7-10, fully out again from 14
    t = np.arange(18)
    centres = np.stack([14 + 6 * t, np.full(18, 64.0)], axis=1)
    frames, masks = render(centres, radius=10, occluder=(slice(None), slice(46, 84)))
    hidden = ~masks[:, 0].any(axis=(1, 2))
    assert hidden[7:11].all() and hidden.sum() == 4
    pred, iou = _track(tracker, frames, masks)
    print("IoU per frame", np.round(iou, 2), tracker.events)
    assert iou[:5].mean() >= 0.8  # tracked before the bar
    assert (pred[hidden, 0].sum(axis=(1, 2)) <= 0.1 * masks[0, 0].sum()).all()  # the bar is not taken for it
    assert iou[14:].mean() >= 0.8, iou  # found again once it is out
    assert [e["event"] for e in tracker.events if e["object"] == 0][:2] == ["lost", "found"]


def test_redetects_an_object_that_leaves_and_comes_back(tracker):
    # right at 8 px/frame, out of the frame for 6 frames, back leftwards at 8 px/frame
    x = np.concatenate([np.arange(90, 150, 8), np.full(3, 150.0), np.arange(150, 70, -8)]).astype(float)
    centres = np.stack([x, np.full(len(x), 50.0)], axis=1)
    frames, masks = render(centres, radius=11, seed=1)
    gone = ~masks[:, 0].any(axis=(1, 2))
    assert gone[6:14].any() and not gone[-5:].any()
    pred, iou = _track(tracker, frames, masks)
    print("IoU per frame", np.round(iou, 2), tracker.events)
    assert not pred[gone, 0].any()  # nothing claimed while it is outside
    assert iou[-4:].mean() >= 0.8, iou


def test_small_object_is_tracked_on_its_prompt_frame(tracker):
    # a 3 px radius disk (~28 px), prompted at frame 2: empty before, segmented on its prompt frame and after
    t = np.arange(6)
    centres = np.stack([40 + 2 * t, 70 + t], axis=1).astype(float)
    frames, masks = render(centres, radius=3, seed=2)
    pred, iou = _track(tracker, frames, masks, start=2)
    print("IoU per frame", np.round(iou, 2), tracker.events)
    assert not pred[:2].any()
    assert pred[2, 0].any() and iou[2] >= 0.5, iou
    assert np.nanmean(iou[2:]) >= 0.5, iou


def render_pair(offsets: np.ndarray, radius: float, seed: int = 3):
    """Two disks of the same texture side by side, moving right together; (T, S, S, 3) and (T, 2, S, S)."""
    a, ma = render(offsets, radius, seed=seed)
    b, mb = render(offsets + [2 * radius + 1, 0], radius, seed=seed)
    frames = np.where(mb[:, 0, ..., None], b, a)
    return frames, np.concatenate([ma & ~mb, mb], axis=1)


def test_touching_objects_never_share_a_pixel(tracker):
    # two identical checkered disks 1 px apart: SAM's box/point prompt for one also covers the other
    t = np.arange(10)
    frames, masks = render_pair(np.stack([30 + 4 * t, np.full(10, 64.0)], axis=1).astype(float), radius=12)
    from dataclasses import replace

    settings = tracker.settings
    try:
        tracker.settings = replace(settings, exclusive=False)
        loose = tracker.track(frames, masks[0], np.zeros(2, int))
        tracker.settings = replace(settings, exclusive=True)
        pred = tracker.track(frames, masks[0], np.zeros(2, int))
    finally:
        tracker.settings = settings
    shared = lambda p: (p[:, 0] & p[:, 1]).sum()  # noqa: E731
    print("shared pixels without / with the rule", shared(loose), shared(pred))
    assert shared(loose) > 0  # the scene does make the masks overlap
    assert shared(pred) == 0
    iou = mask_iou(pred, masks, np.zeros(2, int))
    assert np.nanmean(iou) >= 0.8, iou
