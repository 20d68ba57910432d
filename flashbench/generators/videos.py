"""``videos``: score videos made elsewhere. `--generator "videos dir=DIR"` returns DIR/<sample id>.mp4.

The usual round trip: `flashbench export --bench B --format folder|magicmotion --out E` writes every sample's
inputs; the model runs wherever it runs and writes E/videos/<id>.mp4; then
`flashbench generate --bench B --generator "videos dir=E/videos" --out RUN` and `flashbench evaluate` score it.

What is scored is the file as it decodes: the decoded frames go into the run folder bit for bit (runs store
frames losslessly, flashbench.video.write_rgb_lossless), so a lossy mp4 is scored as its own decoded frames, never
as a re-encoded copy. A video whose frame count or size differs from the sample's is fitted to it (`fit_video`:
the decoded frames resampled) and the change is recorded as a warning in the GeneratedVideo's `extra`, which the
runner writes into the sample's generation record; with strict=true it is refused instead. A missing or unreadable file is an error for that sample (the runner logs it and it is
listed in results), never a silent skip.

nfe / denoise_seconds: what the external model spent is unknown here. An optional DIR/<id>.json sidecar
{"nfe": int, "denoise_seconds": float} supplies them per sample; else `nfe=` (default 0) and 0 seconds are
reported, and `extra["timing"]` says they were not measured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from flashbench.errors import GenerationError
from flashbench.generators.base import GeneratedVideo, GenerationRequest, check_timing


def fit_video(frames: np.ndarray, num_frames: int, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """(T', H', W', 3) frames fitted to (num_frames, *size) and a note per change made.

    Frame count: frame i is source frame uniform_indices(T', num_frames)[i], i.e. the video is assumed to span
    the sample's clip (first and last frames kept). Size: antialiased bilinear resize (aspect not preserved).
    """
    from flashbench.video import resize_frames, uniform_indices

    notes = []
    t, h, w = frames.shape[:3]
    if t != num_frames:
        frames = frames[uniform_indices(t, num_frames)]
        notes.append(f"{t} frames resampled uniformly to {num_frames}")
    if (h, w) != tuple(size):
        frames = resize_frames(frames, tuple(size))
        notes.append(f"{h}x{w} resized to {size[0]}x{size[1]}")
    return frames, notes


class Videos:
    """Reads DIR/<sample id>.mp4; see the module docstring."""

    name = "videos"
    steps = None

    def __init__(self, dir: str, strict: bool = False, nfe: int = 0) -> None:  # noqa: A002 (the spec says dir=)
        self.dir = Path(dir)
        if not self.dir.is_dir():
            raise GenerationError(f"videos dir={self.dir} is not a folder; point it at the folder holding <sample id>.mp4")
        if not isinstance(strict, bool):
            raise GenerationError(f"videos strict= must be true or false, got {strict!r}")
        self.strict = strict
        self.nfe = int(nfe)

    def _timing(self, sample_id: str) -> tuple[int, float, str]:
        path = self.dir / f"{sample_id}.json"
        if not path.is_file():
            return self.nfe, 0.0, "not measured (videos made elsewhere)"
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            record = e
        if not isinstance(record, dict):
            raise GenerationError(f"{sample_id}: bad timing sidecar {path} ({record}); write "
                                  '{"nfe": N, "denoise_seconds": S} or delete it')
        nfe, seconds = check_timing(record.get("nfe", self.nfe), record.get("denoise_seconds", 0.0),
                                    f"{sample_id}: timing sidecar {path}")
        return nfe, seconds, f"from {path.name}"

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        from flashbench.video import read_video

        path = self.dir / f"{request.sample_id}.mp4"
        if not path.is_file():
            raise GenerationError(f"{request.sample_id}: no video {path}; write the generated video there "
                                  "(flashbench export lists every expected output)")
        start = time.perf_counter()
        frames = read_video(path)
        expected = (request.num_frames, request.height, request.width)
        if self.strict and frames.shape[:3] != expected:
            raise GenerationError(f"{request.sample_id}: {path} is {frames.shape[:3]} (T, H, W), the sample is "
                                  f"{expected}; regenerate it, or drop strict=true to resample")
        frames, notes = fit_video(frames, request.num_frames, (request.height, request.width))
        nfe, seconds, timing = self._timing(request.sample_id)
        extra = {"source": str(path), "timing": timing, "read_seconds": time.perf_counter() - start}
        if notes:
            extra["warnings"] = [f"{path.name}: {note}" for note in notes]
        return GeneratedVideo(frames=frames, nfe=nfe, denoise_seconds=seconds, extra=extra)
