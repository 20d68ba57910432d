"""ObjMC (flashbench.metrics.objmc) on a hand-computed case: per frame, per object, per sample, per group."""

from __future__ import annotations

import numpy as np
import pytest

from flashbench.aggregate import metrics_block, tracking_block
from flashbench.data.benchmark import BenchmarkWriter
from flashbench.errors import FlashBenchError
from flashbench.evaluation import score_sample
from flashbench.metrics.objmc import box_centres, mask_centroids, objmc

T, H, W = 5, 48, 64  # diagonal 80 px


def _hand_case() -> tuple[np.ndarray, np.ndarray]:
    """Object 0 (prompted on frame 0): target a 2x2 square at x, y = 10.5, 10.5 except on frame 3 (absent).
    Tracked: exact on 0, moved by (3, 4) = 5 px on 1, lost on 2, present on 3 (target absent: not scored),
    moved by (6, 0) on 4. Object 1 (enters on frame 2): target pixels (x, y) (30, 20), (32, 20), (31, 23),
    centroid (31, 21); tracked: one pixel at (35, 24) on 2 (5 px off), exact on 3, lost on 4, and anything on
    the unscored frames 0 and 1."""
    target = np.zeros((T, 2, H, W), bool)
    pred = np.zeros_like(target)
    for t in (0, 1, 2, 4):
        target[t, 0, 10:12, 10:12] = True
    pred[0, 0, 10:12, 10:12] = True
    pred[1, 0, 14:16, 13:15] = True
    pred[3, 0, 0:2, 0:2] = True
    pred[4, 0, 10:12, 16:18] = True
    for t in (2, 3, 4):
        for x, y in ((30, 20), (32, 20), (31, 23)):
            target[t, 1, y, x] = True
    pred[:2, 1, 0:5, 0:5] = True
    pred[2, 1, 24, 35] = True
    pred[3, 1] = target[3, 1]
    return pred, target


def test_objmc_by_hand():
    pred, target = _hand_case()
    centres = mask_centroids(target)
    assert centres[0, 0].tolist() == [10.5, 10.5] and centres[2, 1].tolist() == [31.0, 21.0]
    assert np.isnan(centres[3, 0]).all()
    per_frame = objmc(mask_centroids(pred), centres, (H, W), start=np.array([0, 2]))
    expected = np.array([[0.0, np.nan], [5 / 80, np.nan], [1.0, 5 / 80], [np.nan, 0.0], [6 / 80, 1.0]])
    np.testing.assert_allclose(per_frame, expected, atol=1e-12)
    # a filled box's mask centroid is its box centre (xyxy, exclusive end)
    assert box_centres(np.array([[[10.0, 10.0, 12.0, 12.0]]])).tolist() == [[[10.5, 10.5]]]
    with pytest.raises(FlashBenchError, match=r"\(T, N, 2\)"):
        objmc(centres, centres[..., :1], (H, W))


def test_objmc_per_object_sample_and_group(tmp_path):
    pred, target = _hand_case()
    frames = np.zeros((T, H, W, 3), np.uint8)
    writer = BenchmarkWriter(tmp_path / "bench", name="objmc", groups=("1", "2"))
    writer.add("hand", frames, target, 8.0, "p", "test")
    writer.add("one", frames, target[:, :1], 8.0, "p", "test")
    bench = writer.close()

    class Fixed:
        def __init__(self, masks):
            self.masks = masks

        def track(self, frames, prompts, start):
            return self.masks

    hand = score_sample(bench.get("hand"), bench, frames, Fixed(pred), tmp_path / "hand.json")
    obj0, obj1 = (0 + 5 / 80 + 1 + 6 / 80) / 4, (5 / 80 + 0 + 1) / 3  # scored frames only
    assert [o["objmc_norm"] for o in hand["objects"]] == pytest.approx([obj0, obj1], abs=1e-12)
    assert [o["objmc"] for o in hand["objects"]] == pytest.approx([(0 + 5 + 80 + 6) / 4, (5 + 0 + 80) / 3])  # px
    assert hand["objmc_norm"] == pytest.approx((obj0 + obj1) / 2) and hand["objmc"] == pytest.approx(40 * (obj0 + obj1))
    one = score_sample(bench.get("one"), bench, frames, Fixed(pred[:, :1]), tmp_path / "one.json")
    assert one["objmc"] == pytest.approx(80 * obj0)
    # group / overall: the mean over samples (pixels), and the normalised one in percent of the diagonal
    records = [{"id": "hand", **hand}, {"id": "one", **one}]
    generation = dict.fromkeys(("hand", "one"), {"denoise_seconds": 1.0, "nfe": 0})
    feats = {i: {"fid": np.zeros((1, 2)), "fvd": np.zeros((1, 2))} for i in ("hand", "one")}
    block = metrics_block(records, generation, feats, feats, n_boot=100, seed=0)
    assert block.objmc == pytest.approx((hand["objmc"] + one["objmc"]) / 2)
    assert block.objmc_norm == pytest.approx(50 * (hand["objmc_norm"] + one["objmc_norm"]))
    lo, hi = block.ci95["objmc"]
    assert lo <= block.objmc <= hi and lo < hi
    ceiling = tracking_block(records, n_boot=0, seed=0)
    assert ceiling.objmc == block.objmc and ceiling.mask_iou == block.mask_iou and ceiling.fid is None
    assert ceiling.reason("fid") == "tracking scores only (tracker ceiling)"
