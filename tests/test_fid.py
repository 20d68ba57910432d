"""FID features: converted pytorch-fid InceptionV3 equals the TorchScript's own pool3; streaming/frame paths agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flashbench import weights
from flashbench.errors import VideoError
from flashbench.metrics import fid
from flashbench.video import read_video, write_video


@pytest.fixture(scope="module")
def features() -> fid.InceptionFeatures:
    weights.fetch(fid.WEIGHTS_NAME)
    return fid.InceptionFeatures(batch_size=4)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(1, 8, 8, 3))
    video = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)  # blocky 64x64, survives H.264 well
    shifts = [np.roll(video[0], 4 * t, axis=1) for t in range(5)]
    return np.stack(shifts).astype(np.uint8)


def test_converted_model_matches_torchscript_pool3(features: fid.InceptionFeatures) -> None:
    script = torch.jit.load(str(weights.resolve(fid.WEIGHTS_NAME)), map_location="cpu").eval()
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model = features.model
    model.resize_input, model.normalize_input = False, False  # feed the same [-1, 1] 299x299 tensor to both
    try:
        with torch.no_grad():
            ours = model(x)[0].flatten(1)
            theirs = script(x)  # the TorchScript's forward ends at pool3: (B, 2048)
    finally:
        model.resize_input, model.normalize_input = True, True
    assert ours.shape == theirs.shape == (2, 2048)
    assert (ours - theirs).abs().max().item() < 1e-4
    assert theirs.abs().max().item() > 0.1  # not a trivially-zero comparison


def test_pytorch_fid_state_dict_format_is_detected(tmp_path: Path) -> None:
    converted = fid.load_state_dict(weights.resolve(fid.WEIGHTS_NAME))
    pth = tmp_path / "pt_inception.pth"
    torch.save(converted, pth)
    again = fid.load_state_dict(pth)
    assert again.keys() == converted.keys()
    assert all(torch.equal(again[k], converted[k]) for k in converted)
    assert len([k for k in converted if k.endswith(".conv.weight")]) == 94


def test_preprocessing_is_pytorch_fid(features: fid.InceptionFeatures, frames: np.ndarray) -> None:
    """Our uint8 path equals pytorch-fid's: [0, 1] tensor, bilinear 299 (align_corners=False), 2x - 1."""
    x = torch.from_numpy(frames[:2]).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    model = features.model
    model.resize_input, model.normalize_input = False, False
    try:
        with torch.no_grad():
            ref = model(x)[0].flatten(1).double().numpy()
    finally:
        model.resize_input, model.normalize_input = True, True
    np.testing.assert_allclose(features.batch_features(frames[:2]), ref, rtol=0, atol=1e-5)


def test_mp4_frame_folder_and_array_paths_agree(
    features: fid.InceptionFeatures, frames: np.ndarray, tmp_path: Path
) -> None:
    mp4 = tmp_path / "v.mp4"
    write_video(mp4, frames, fps=8)
    decoded = read_video(mp4)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(decoded):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    from_mp4 = features.video_features(mp4)
    assert from_mp4.shape == (5, 2048) and from_mp4.dtype == np.float64
    np.testing.assert_allclose(features.video_features(decoded), from_mp4, atol=1e-5)
    np.testing.assert_allclose(features.video_features(folder), from_mp4, atol=1e-5)
    np.testing.assert_allclose(features.video_features(mp4, stride=2), from_mp4[::2], atol=1e-5)


def test_bad_frames_raise_video_error(features: fid.InceptionFeatures, tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="uint8"):
        features.video_features(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(VideoError, match="stride"):
        features.video_features(np.zeros((2, 8, 8, 3), np.uint8), stride=0)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VideoError):
        features.video_features(bad)


def test_damaged_converted_weights_are_detected_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The derived safetensors lives in a temp $FLASHBENCH_HOME (a copy of the TorchScript), never the real cache."""
    import shutil

    from flashbench.cli import main

    real = weights.fetch(fid.WEIGHTS_NAME)
    monkeypatch.setenv("FLASHBENCH_HOME", str(tmp_path / "home"))
    source = weights.entry_dir(fid.WEIGHTS_NAME) / real.name
    source.parent.mkdir(parents=True)
    shutil.copyfile(real, source)
    assert weights.resolve(fid.WEIGHTS_NAME) == source
    built = {k: v.clone() for k, v in fid.load_state_dict(source).items()}  # safetensors maps the file
    derived = source.with_name(source.name + fid.CONVERTED_SUFFIX)
    assert derived.is_file() and weights.sha256_file(derived) == weights._derived_spec(fid.CONVERTED_SUFFIX).sha256
    assert capsys.readouterr().err == ""

    data = bytearray(derived.read_bytes())  # flip one bit deep inside the tensor data, and write a matching sidecar
    data[len(data) // 2] ^= 0x10
    derived.write_bytes(bytes(data))
    derived.with_name(derived.name + ".sha256").write_text(f"{weights.sha256_file(derived)}  {derived.name}\n")
    again = fid.load_state_dict(source)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match its pinned sha256" in err[0] and "rebuilding it" in err[0]
    assert again.keys() == built.keys() and all(torch.equal(again[k], built[k]) for k in built)

    derived.write_bytes(derived.read_bytes()[: len(data) // 3])  # truncated: `weights verify` finds and repairs it
    assert main(["weights", "verify", fid.WEIGHTS_NAME]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{fid.WEIGHTS_NAME}: ok {source}"
    assert out[1].startswith(f"{fid.WEIGHTS_NAME}: derived rebuilt {derived} (it does not match its pinned sha256")
    assert weights.derived_problem(weights._derived_spec(fid.CONVERTED_SUFFIX), derived, rehash=True) is None
