"""How a run folder should store generated frames: bit-exact RGB round trip, disk cost and speed per codec.

On one realistic clip (DAVIS soapbox frames, resized to the 5B's 704x1280 and ping-ponged to 121 frames; or
`--synthetic` scenes), each candidate writes the clip and reads it back as RGB, as evaluate does. Printed per
candidate: the largest RGB error of the round trip (0 = lossless), bytes per frame, encode and decode seconds per
frame, and the decode time as a ratio of the old lossy store's (x264 yuv420p crf 12) measured in the same run.
The RGB candidates: libx264rgb qp 0 (H.264 High 4:4:4 Predictive, the store `flashbench.video.write_video`
uses for runs), FFV1 on bgr0; yuv444p and yuv420p qp 0 show what a YUV store loses. Not a test.

    python benchmarks/lossless_storage.py [--frames 121 --height 704 --width 1280 --davis DIR | --synthetic]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from flashbench.video import read_video, resize_frames

ROOT = Path(__file__).resolve().parent.parent
DAVIS = ROOT.parent / "shared" / "data" / "davis-dev" / "single" / "JPEGImages" / "480p" / "soapbox"
# name: (container, codec, stored pixel format, options)
CANDIDATES = {
    "x264 yuv420p crf 12 (old store)": ("mp4", "libx264", "yuv420p", {"crf": "12"}),
    "x264 yuv420p qp 0 (benchmark store)": ("mp4", "libx264", "yuv420p", {"qp": "0"}),
    "x264 yuv444p qp 0": ("mp4", "libx264", "yuv444p", {"qp": "0"}),
    "libx264rgb qp 0 medium": ("mp4", "libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}),
    "libx264rgb qp 0 veryfast": ("mp4", "libx264rgb", "rgb24", {"qp": "0", "preset": "veryfast"}),
    "FFV1 bgr0 level 3": ("mp4", "ffv1", "bgr0", {"level": "3"}),
}


def davis_clip(folder: Path, frames: int, size: tuple[int, int]) -> np.ndarray:
    """The sequence's JPEG frames, ping-ponged to `frames`, resized to `size`."""
    paths = sorted(folder.glob("*.jpg"))
    order = list(range(len(paths))) + list(range(len(paths) - 2, 0, -1))
    picks = [order[i % len(order)] for i in range(frames)]
    loaded = {i: np.asarray(Image.open(paths[i]).convert("RGB")) for i in set(picks)}
    return np.concatenate([resize_frames(loaded[i][None], size) for i in picks])


def synthetic_clip(frames: int, size: tuple[int, int]) -> np.ndarray:
    from flashbench.data.synthetic import generate_scene

    return generate_scene(3, frames, size, seed=0).video


def encode(path: Path, frames: np.ndarray, container: str, codec: str, pix_fmt: str, options: dict) -> float:
    start = time.perf_counter()
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(24))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.codec_context.thread_count = 1  # as write_video: the same bytes on every run
        stream.options = options
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=pix_fmt)))
        out.mux(stream.encode())
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--height", type=int, default=704)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--davis", type=Path, default=DAVIS, help="a folder of JPEG frames")
    ap.add_argument("--synthetic", action="store_true", help="a synthetic scene instead of DAVIS frames")
    ap.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    args = ap.parse_args()
    size = (args.height, args.width)
    clip = synthetic_clip(args.frames, size) if args.synthetic else davis_clip(args.davis, args.frames, size)
    t = len(clip)
    print(f"clip: {t} frames of {size[0]}x{size[1]} ({'synthetic' if args.synthetic else args.davis}); "
          f"raw RGB {clip[0].nbytes / 1e6:.2f} MB/frame")
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name, (container, codec, pix_fmt, options) in CANDIDATES.items():
            if args.only and name not in args.only:
                continue
            path = Path(tmp) / f"clip.{'mkv' if container == 'matroska' else 'mp4'}"
            enc_s = encode(path, clip, container, codec, pix_fmt, options)
            start = time.perf_counter()
            back = read_video(path)
            dec_s = time.perf_counter() - start
            err = int(np.abs(back.astype(np.int16) - clip).max())
            reference = dec_s if reference is None else reference
            rows.append((name, err, path.stat().st_size / t, enc_s / t, dec_s / t, dec_s / reference))
            path.unlink()
    print(f"{'store':<38} {'max RGB err':>11} {'MB/frame':>9} {'x raw':>6} {'enc s/fr':>9} {'dec s/fr':>9} "
          f"{'dec x old':>9}")
    for name, err, per_frame, enc_f, dec_f, ratio in rows:
        print(f"{name:<38} {err:>11} {per_frame / 1e6:>9.3f} {per_frame / clip[0].nbytes:>6.3f} {enc_f:>9.3f} "
              f"{dec_f:>9.4f} {ratio:>9.2f}")


if __name__ == "__main__":
    main()
