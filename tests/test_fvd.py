"""FVD: I3D port against the published all-zero vs all-one reference; clips, padding, restricted unpickler;
StyleGAN-V's TorchScript detector format (through a stand-in built from our own I3D)."""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from flashbench import weights
from flashbench.errors import VideoError, WeightsError
from flashbench.metrics import fvd, i3d
from flashbench.video import write_video

# 8 all-zero vs 8 all-one videos, 30 frames at 64x64 in [0, 1], each fed whole to I3D: TensorFlow's FVD gives
# 151.39 (StyleGAN-V's TorchScript port 151.26; a PyTorch port with TF SAME padding 151.3925).
REFERENCE_FVD = 151.3925


@pytest.fixture(scope="module")
def whole_video_features() -> fvd.I3DFeatures:
    weights.fetch(i3d.WEIGHTS_NAME)
    return fvd.I3DFeatures(clip_len=None, batch_size=2)


def test_zero_vs_one_videos_match_reference(whole_video_features: fvd.I3DFeatures) -> None:
    videos = torch.stack([torch.zeros(30, 64, 64, 3), torch.ones(30, 64, 64, 3)])  # float in [0, 1]
    feats = whole_video_features.clip_features(videos)
    assert feats.shape == (2, 400) and feats.dtype == np.float64
    # The 8 videos of a set are identical, so their features are too: run each distinct video once.
    zeros, ones = np.repeat(feats[:1], 8, axis=0), np.repeat(feats[1:], 8, axis=0)
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fvd.fvd_from_features(zeros, ones)
    assert abs(value - REFERENCE_FVD) < 0.01
    # uint8 frames (0 and 255) are the same input as floats 0 and 1.
    uint8 = (videos.numpy() * 255).astype(np.uint8)
    np.testing.assert_allclose(whole_video_features.video_features(uint8[1]), feats[1:], atol=1e-4)


def test_zero_vs_one_mp4s_match_reference(whole_video_features: fvd.I3DFeatures, tmp_path: Path) -> None:
    """The same reference through H.264 mp4 files (decoding may shift values by a level): within 1.5."""
    feats = []
    for value in (0, 255):
        write_video(tmp_path / f"{value}.mp4", np.full((30, 64, 64, 3), value, np.uint8), fps=24)
        feats.append(whole_video_features.video_features(tmp_path / f"{value}.mp4"))
    assert feats[0].shape == (1, 400)
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fvd.fvd_from_features(np.repeat(feats[0], 8, axis=0), np.repeat(feats[1], 8, axis=0))
    assert abs(value - 151.39) < 1.5


def test_short_video_is_a_one_line_error(whole_video_features: fvd.I3DFeatures) -> None:
    with pytest.raises(VideoError, match="needs at least 9"):
        whole_video_features.video_features(np.zeros((8, 32, 32, 3), np.uint8))
    clips16 = fvd.I3DFeatures(clip_len=16)
    with pytest.raises(VideoError, match="shorter than one FVD clip \\(16 frames\\)"):
        clips16.video_features(np.zeros((15, 32, 32, 3), np.uint8))
    with pytest.raises(VideoError, match="clip_len must be >= 9"):
        fvd.I3DFeatures(clip_len=4)


@pytest.mark.parametrize(("n", "length", "stride"), [(40, 16, 16), (40, 16, 8), (50, 10, 20), (15, 16, 16)])
def test_clips_follow_clip_starts(n: int, length: int, stride: int) -> None:
    frames = [np.full((2, 2, 3), t, np.uint8) for t in range(n)]
    clips = list(fvd.iter_clips(iter(frames), length, stride))
    starts = fvd.clip_starts(n, length, stride)
    assert [int(c[0, 0, 0, 0]) for c in clips] == starts
    assert all(
        np.array_equal(c[:, 0, 0, 0], np.arange(s, s + length)) for c, s in zip(clips, starts, strict=True)
    )
    assert fvd.clip_starts(40, 16, 16) == [0, 16]


def test_tf_same_padding() -> None:
    # TF: out = ceil(n / s); pad = max((out - 1) * s + k - n, 0), the odd pixel after.
    assert i3d.same_padding((16, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 2, 3]
    assert i3d.same_padding((9, 56, 56), (3, 3, 3), (2, 2, 2)) == [0, 1, 0, 1, 1, 1]
    assert i3d.same_padding((4, 28, 28), (1, 1, 1), (1, 1, 1)) == [0, 0, 0, 0, 0, 0]


def test_restricted_unpickler_refuses_other_globals(tmp_path: Path) -> None:
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": {"x": print}}))
    with pytest.raises(WeightsError, match="builtins.print"):
        i3d.load_flax_checkpoint(evil)
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"params": {"a": np.ones((2, 3), np.float32)}}))
    assert np.array_equal(i3d.load_flax_checkpoint(ok)["params/a"], np.ones((2, 3)))


class _StyleGANVStandIn(torch.nn.Module):
    """StyleGAN-V's i3d_torchscript.pt calling convention around our traced I3D: rescale=True expects [0, 255]
    inputs, return_features=False gives softmax probabilities (so wrong keywords change the output)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1
        logits = self.net(x)
        return logits if return_features else torch.softmax(logits, dim=1)


@pytest.fixture(scope="module")
def stylegan_v_torchscript(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TorchScript file with StyleGAN-V's forward signature whose logits are our I3D's (16 frames, 224)."""
    native = i3d.load_i3d(weights.fetch(i3d.WEIGHTS_NAME))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter(
            "ignore"
        )  # tracer warnings (shape-dependent padding) and jit deprecation notices
        traced = torch.jit.trace(native, torch.zeros(1, 3, 16, 224, 224), check_trace=False)
        script = torch.jit.script(_StyleGANVStandIn(traced))
    path = tmp_path_factory.mktemp("stylegan-v") / "i3d_torchscript.pt"
    script.save(str(path))
    return path


def test_torchscript_detector_matches_native(
    stylegan_v_torchscript: Path,
    whole_video_features: fvd.I3DFeatures,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FLASHBENCH_HOME", str(tmp_path / "home"))
    digest = hashlib.sha256(stylegan_v_torchscript.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match=f"FLASHBENCH_TRUSTED_SHA256={digest}"):  # only pinned files are used
        weights.fetch(i3d.WEIGHTS_NAME, source=stylegan_v_torchscript)
    monkeypatch.setenv("FLASHBENCH_TRUSTED_SHA256", digest)  # the user pins it
    path = weights.fetch(i3d.WEIGHTS_NAME, source=stylegan_v_torchscript)
    assert path == tmp_path / "home" / "weights" / i3d.WEIGHTS_NAME / "i3d_torchscript.pt"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "i3d_torchscript.pt for 'i3d-kinetics400' is not pinned" in err[0]

    scripted = fvd.I3DFeatures(clip_len=16)  # resolves the cached TorchScript file
    video = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    feats = scripted.video_features(video)
    native = whole_video_features.video_features(video)  # one 16-frame clip through our I3D
    assert feats.shape == native.shape == (1, 400)
    np.testing.assert_allclose(feats, native, atol=1e-4, rtol=0)

    prov = scripted.provenance()
    assert prov["weights"] == "i3d_torchscript.pt" and prov["weights_sha256"] == digest
    assert prov["weights_format"] == "torchscript" and prov["weights_pinned"] is False
    assert "return_features=True" in prov["model"]
    assert whole_video_features.provenance()["weights_format"] == "flax-pickle"
    assert whole_video_features.provenance()["weights_pinned"] is True
    assert weights.file_info(i3d.WEIGHTS_NAME, path).sha256 == digest


class _NotI3D(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_unrecognised_i3d_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHBENCH_HOME", str(tmp_path / "home"))
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        other = tmp_path / "other.pt"
        torch.jit.script(_NotI3D()).save(str(other))
    for src, reason in ((noise, "not a TorchScript archive"), (other, "forward lacks StyleGAN-V's I3D")):
        monkeypatch.setenv("FLASHBENCH_TRUSTED_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
        with pytest.raises(WeightsError, match="matches no known file of 'i3d-kinetics400'") as err:
            weights.fetch(i3d.WEIGHTS_NAME, source=src)
        assert reason in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "home" / "weights" / i3d.WEIGHTS_NAME).iterdir())
    with pytest.raises(WeightsError, match="other.pt is a TorchScript archive whose forward lacks"):
        i3d.load_i3d(other)
