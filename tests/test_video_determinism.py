"""write_video gives the same bytes for the same frames (benchmark content hashes and run comparisons rely on it).

Regression: x264's AVX-512 kernels made repeated encodes of one small clip differ (flashbench/video.py caps the
instruction sets at AVX2 on x86-64); small, fast-moving content showed it most often.
"""

from __future__ import annotations

from harness_bench import square_scene

from flashbench.video import read_video, write_video


def test_the_same_frames_give_the_same_bytes(tmp_path):
    video, _ = square_scene(2, frames=6, size=32, shift=4)
    encodes = set()
    for i in range(12):
        write_video(tmp_path / f"{i}.mp4", video, 8.0)
        read_video(tmp_path / f"{i}.mp4")  # interleaved decodes, as a run's generate/evaluate does
        encodes.add((tmp_path / f"{i}.mp4").read_bytes())
    assert len(encodes) == 1
