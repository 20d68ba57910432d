"""`flashbench weights|fid|fvd` end to end: folders of mp4s and of frame folders; last line is the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flashbench import weights
from flashbench.cli import main
from flashbench.video import read_video, write_video


def _last_value(out: str, label: str) -> float:
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"{label}: ")
    return float(last.split(": ", 1)[1])


def test_weights_list_shows_every_pin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name, entry in weights.REGISTRY.items():
        assert name in out
        assert all(wf.sha256 in out for wf in entry.files)


def test_weights_fetch_from_needs_one_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["weights", "fetch", "inception-fid", "mobilesam", "--from", str(tmp_path / "x")]) == 2
    assert "exactly one NAME" in capsys.readouterr().err


def _mp4s_and_png_dumps(root: Path, videos: list[np.ndarray]) -> tuple[Path, Path]:
    """Folder a/ of mp4s and folder b/ of frame folders holding the decoded frames of the same mp4s as PNG."""
    a, b = root / "a", root / "b"
    for i, frames in enumerate(videos):
        write_video(a / f"{i}.mp4", frames, fps=8)
        (b / f"clip{i}").mkdir(parents=True)
        for t, frame in enumerate(read_video(a / f"{i}.mp4")):
            Image.fromarray(frame).save(b / f"clip{i}" / f"{t:03d}.png")
    return a, b


def _record_calls(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[str]:
    calls: list[str] = []
    original = cls.video_features

    def recording(self, video, *args, **kwargs):
        calls.append(Path(video).relative_to(Path(video).parent.parent).as_posix())
        return original(self, video, *args, **kwargs)

    monkeypatch.setattr(cls, "video_features", recording)
    return calls


def test_fid_mp4s_vs_their_frame_folders(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same frames through both input kinds: FID ~ 0; every video of both folders is read once."""
    from flashbench.metrics.fid import InceptionFeatures

    weights.fetch("inception-fid")
    rng = np.random.default_rng(0)
    videos = [
        np.repeat(np.repeat(rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8), 8, 1), 8, 2) for _ in range(2)
    ]
    a, b = _mp4s_and_png_dumps(tmp_path, videos)
    calls = _record_calls(monkeypatch, InceptionFeatures)
    assert main(["fid", str(a), str(b), "--stride", "2", "--batch-size", "2"]) == 0  # frames 0 and 2
    assert abs(_last_value(capsys.readouterr().out, "FID")) < 1e-3
    assert calls == ["a/0.mp4", "a/1.mp4", "b/clip0", "b/clip1"]


def test_fvd_mp4s_vs_their_frame_folders(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """18 frames with --clip-len 9: two clips per video; same frames both ways: FVD ~ 0."""
    from flashbench.metrics.fvd import I3DFeatures

    weights.fetch("i3d-kinetics400")
    rng = np.random.default_rng(1)
    video = np.repeat(np.repeat(rng.integers(0, 256, (18, 4, 4, 3), dtype=np.uint8), 8, 1), 8, 2)
    a, b = _mp4s_and_png_dumps(tmp_path, [video])
    calls = _record_calls(monkeypatch, I3DFeatures)
    assert main(["fvd", str(a), str(b), "--clip-len", "9", "--batch-size", "2"]) == 0
    assert abs(_last_value(capsys.readouterr().out, "FVD")) < 1e-3
    assert calls == ["a/0.mp4", "b/clip0"]


def test_empty_folder_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["fvd", str(tmp_path / "empty"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no videos" in err and "\n" not in err
