"""Per-video FID (Inception pool3) and FVD (I3D logits) features, cached on disk and keyed by their settings.

Generated videos: RUN/features/<id>.npz. Real videos of a benchmark: $FLASHBENCH_HOME/features/<benchmark
content hash>/<id>.npz, shared by every run evaluated on that benchmark. Each npz holds "fid" (F, 2048) and
"fvd" (C, 400) float64 arrays, "fid_key"/"fvd_key": a hash of the settings (frame stride / clip length, weight
file sha256, extractor) they were computed with, and "source": the sha256 of the generated video file (empty
for real videos, whose folder is already keyed by the benchmark content); an entry whose keys differ is
recomputed, so a regenerated video or a changed setting never reuses stale features. Files are
written to a temp name and renamed, so an interrupted run never leaves a half-written cache entry.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flashbench import weights
from flashbench.atomic import atomic_path
from flashbench.errors import FlashBenchError

FID_WEIGHTS = "inception-fid"
FVD_WEIGHTS = "i3d-kinetics400"
# How a video becomes FVD rows. "clips": non-overlapping clips of clip_len frames (trailing frames that fill no
# clip unused), each clip one row, so a 121-frame video gives 7 rows of 16 frames. "whole-video": the whole video
# is one I3D clip and one row, as the TF FVD reference (Unterthiner et al.) and StyleGAN-V feed their videos.
FVD_PROTOCOLS = ("clips", "whole-video")
FVD_PROTOCOL_TEXT = {
    "clips": "I3D on non-overlapping {clip_len}-frame clips, one feature row per clip",
    "whole-video": "I3D on each whole video, one feature row per video (the TF / StyleGAN-V reference protocol)",
}


def real_cache_dir(content_hash: str) -> Path:
    """Where the real-video features of a benchmark with this content hash are cached."""
    return weights.home() / "features" / content_hash


@dataclass(frozen=True)
class FeatureSettings:
    """fid_stride: use every K-th frame for FID; fvd_protocol: one of FVD_PROTOCOLS; clip_len: frames per I3D
    clip for the "clips" protocol."""

    fid_stride: int = 1
    clip_len: int = 16
    device: str = "cpu"
    fvd_protocol: str = "clips"

    def __post_init__(self) -> None:
        from flashbench.metrics.fvd import MIN_CLIP_LEN

        if self.fid_stride < 1:
            raise FlashBenchError(f"--fid-stride must be >= 1, got {self.fid_stride}")
        if self.clip_len < MIN_CLIP_LEN:
            raise FlashBenchError(f"--clip-len must be >= {MIN_CLIP_LEN} (I3D's temporal downsampling), got {self.clip_len}")
        if self.fvd_protocol not in FVD_PROTOCOLS:
            raise FlashBenchError(f"unknown --fvd-protocol {self.fvd_protocol!r}: use one of {', '.join(FVD_PROTOCOLS)}")

    @property
    def whole_video(self) -> bool:
        return self.fvd_protocol == "whole-video"

    def describe(self) -> dict:
        """The `settings.fid` / `settings.fvd` blocks of results.json."""
        return {
            "fid": {"model": "pytorch-fid InceptionV3 pool3 (TF inception-2015-12-05)", "dims": 2048,
                    "stride": self.fid_stride, "resize": 299, "range": "[-1,1]", "weights": FID_WEIGHTS},
            "fvd": {"model": "I3D Kinetics-400 logits", "dims": 400, "protocol": self.fvd_protocol,
                    "protocol_text": FVD_PROTOCOL_TEXT[self.fvd_protocol].format(clip_len=self.clip_len),
                    "clip_len": "whole video" if self.whole_video else self.clip_len,
                    "clip_stride": None if self.whole_video else self.clip_len,
                    "resize": 224, "range": "[-1,1]", "weights": FVD_WEIGHTS},
        }

    def weight_hashes(self) -> dict[str, str]:
        """sha256 of the weight files in use (WeightsError naming the fetch command when missing)."""
        return {name: weights.file_info(name, weights.resolve(name)).sha256 for name in (FID_WEIGHTS, FVD_WEIGHTS)}

    def keys(self) -> dict[str, str]:
        """Cache key per feature kind: settings + weight file hash."""
        shas = self.weight_hashes()
        described = self.describe()
        out = {}
        for kind, name in (("fid", FID_WEIGHTS), ("fvd", FVD_WEIGHTS)):
            blob = json.dumps({**described[kind], "sha256": shas[name]}, sort_keys=True)
            out[kind] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return out


class FeatureExtractor:
    """Computes and caches features; the Inception and I3D networks are built only when a cache entry is missing.

    `fid_model` / `fvd_model` may be given (tests, custom devices); they need `video_features(frames_or_path)`.
    """

    def __init__(self, settings: FeatureSettings, fid_model=None, fvd_model=None):
        self.settings = settings
        self.keys = settings.keys()
        self._models = {"fid": fid_model, "fvd": fvd_model}

    def _model(self, kind: str):
        if self._models[kind] is None:
            if kind == "fid":
                from flashbench.metrics.fid import InceptionFeatures

                self._models[kind] = InceptionFeatures(device=self.settings.device)
            else:
                from flashbench.metrics.fvd import I3DFeatures

                clip_len = None if self.settings.whole_video else self.settings.clip_len
                self._models[kind] = I3DFeatures(device=self.settings.device, clip_len=clip_len)
        return self._models[kind]

    def _compute(self, kind: str, video) -> np.ndarray:
        if kind == "fid":
            feats = self._model(kind).video_features(video, stride=self.settings.fid_stride)
        else:
            feats = self._model(kind).video_features(video)
        return np.asarray(feats, dtype=np.float64)

    def _read(self, path: Path, source: str) -> dict[str, np.ndarray]:
        if not path.is_file():
            return {}
        try:
            with np.load(path) as data:
                if str(data["source"]) != source:
                    return {}
                return {k: data[k] for k in ("fid", "fvd") if str(data[f"{k}_key"]) == self.keys[k]}
        except KeyError:
            return {}  # an entry of another layout: recompute it
        except Exception as e:  # noqa: BLE001 - truncated/zero-byte/garbled npz (zipfile, EOF, OS, value errors)
            warnings.warn(f"feature cache {path} is unreadable ({type(e).__name__}: {e}); recomputing it",
                          stacklevel=2)
            return {}

    def get(self, path: Path, video: Callable[[], np.ndarray | Path], source: str = "") -> dict[str, np.ndarray]:
        """Cached features at `path`, computing (and saving) what is missing from `video()` (frames or a path).

        source: identifies the video content (e.g. its sha256); an entry saved for another source is recomputed.
        """
        found = self._read(path, source)
        missing = [k for k in ("fid", "fvd") if k not in found]
        if missing:
            frames = video()
            for kind in missing:
                found[kind] = self._compute(kind, frames)
            keys = {f"{k}_key": np.array(self.keys[k]) for k in ("fid", "fvd")}
            with atomic_path(path) as tmp:
                np.savez(tmp, fid=found["fid"], fvd=found["fvd"], source=np.array(source), **keys)
        return {k: found[k] for k in ("fid", "fvd")}
