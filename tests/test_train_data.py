"""Training data: clip geometry, seeded crops, rendered trajectory maps, batch order, latent cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flashbench.data.trajectories import render_condition
from flashmotion.errors import ModelConfigError
from flashmotion.models.build import build_encoders
from flashmotion.train.config import DataConfig
from flashmotion.train.data import BatchEncoder, ClipDataset, batch_order, crop_window


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from flashbench.data.synthetic import build_synthetic

    return build_synthetic(tmp_path_factory.mktemp("bench"), videos_per_group=2, frames=14, size=(40, 56), groups=("1", "2")).root


def test_clips_have_4k_plus_1_frames_at_the_model_size_with_matching_maps(bench):
    data = ClipDataset(DataConfig(bench=str(bench), frames=9, size=[32, 32]), seed=3)
    clip = data[(0, 0)]
    assert clip.video.shape == (9, 32, 32, 3) and clip.video.dtype == np.uint8
    assert set(clip.trajectories) == {"mask", "box"}
    assert clip.trajectories["mask"].shape == (9, 32, 32, 3)
    # Frame 0 of both maps is the colour-coded masks; later box frames are outlines only (fewer lit pixels).
    assert np.array_equal(clip.trajectories["mask"][0], clip.trajectories["box"][0])
    lit = lambda m: int((m.sum(-1) > 0).sum())  # noqa: E731
    assert lit(clip.trajectories["box"][4]) <= lit(clip.trajectories["mask"][4]) + 4 * 32
    assert not clip.deterministic
    again, other_epoch = data[(0, 0)], data[(0, 1)]
    assert np.array_equal(again.video, clip.video)  # the item's randomness is keyed by (seed, epoch, index)
    assert not np.array_equal(other_epoch.video, clip.video)


def test_deterministic_clip_is_the_resized_first_frames(bench):
    from flashbench.data.benchmark import Benchmark
    from flashbench.video import resize_frames

    data = ClipDataset(DataConfig(bench=str(bench), frames=5, size=[40, 56], random_crop=False))
    clip = data[(1, 7)]
    video = Benchmark.load(bench).read_video(data.bench.samples[1])
    assert clip.deterministic and np.array_equal(clip.video, resize_frames(video[:5], (40, 56)))
    masks = data.bench.tracks(data.bench.samples[1]).masks[:5]
    assert np.array_equal(clip.trajectories["mask"], render_condition(masks, "mask"))


def test_crop_window_keeps_the_target_aspect():
    assert crop_window(40, 56, (32, 32), 1.0, None) == (0, 8, 40, 40)
    y0, x0, h, w = crop_window(40, 56, (32, 64), 0.5, np.random.default_rng(0))
    assert (h, w) == (14, 28) and 0 <= y0 <= 26 and 0 <= x0 <= 28


def test_batch_order_visits_every_sample_once_per_epoch():
    seen = [i for step in range(5) for i in batch_order(10, 2, step, seed=1)[0]]
    assert sorted(seen) == list(range(10))
    assert batch_order(10, 2, 5, seed=1)[1] == 1
    straddle, epoch = batch_order(5, 2, 2, seed=1)  # samples 4 of epoch 0 and 0 of epoch 1
    assert epoch == 0 and len(straddle) == 2
    assert batch_order(10, 2, 3, seed=1) == batch_order(10, 2, 3, seed=1)
    assert batch_order(10, 4, 0, seed=1) != batch_order(10, 4, 0, seed=2)


def test_config_rejects_bad_frames_and_missing_bench():
    with pytest.raises(ModelConfigError, match="4k\\+1"):
        DataConfig(frames=8)
    with pytest.raises(ModelConfigError, match="data.bench"):
        ClipDataset(DataConfig())


def test_latent_cache_is_reused_and_keyed_by_the_vae(bench, tmp_path):
    config = DataConfig(bench=str(bench), frames=5, size=[32, 32], cache=str(tmp_path / "cache"))
    data = ClipDataset(config)
    encoders = build_encoders("tiny", seed=0)
    encoder = BatchEncoder(encoders, config, "trajectory", data.bench, torch.device("cpu"))
    clips = [data[(0, 0)], data[(1, 0)]]
    first = encoder(clips, "box")
    files = sorted(encoder.cache_dir.glob("*.safetensors"))
    assert [f.stem for f in files] == sorted(c.id for c in clips)
    stamp = [f.stat().st_mtime_ns for f in files]
    second = encoder(clips, "box")  # served from the cache, files untouched
    assert [f.stat().st_mtime_ns for f in files] == stamp
    torch.testing.assert_close(second.latents, first.latents, rtol=0, atol=0)
    torch.testing.assert_close(second.cond.trajectory_latent, first.cond.trajectory_latent, rtol=0, atol=0)
    assert first.latents.shape == (2, 48, 2, 4, 4) and first.cond.image_latent.shape == (2, 48, 1, 4, 4)
    mask = encoder(clips, "mask").cond.trajectory_latent
    assert not torch.equal(mask, first.cond.trajectory_latent)
    other = BatchEncoder(build_encoders("tiny", seed=1), config, "trajectory", data.bench, torch.device("cpu"))
    assert other.cache_dir != encoder.cache_dir
