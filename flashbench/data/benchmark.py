"""A benchmark on disk: manifest.jsonl + meta.json + samples/<id>/{video.mp4, first_frame.png, masks/, objects.json}.

`BenchmarkWriter` is the one way importers and the synthetic builder write a benchmark; `Benchmark.load`
reads it back and checks every sample's files against its manifest record.

A build never leaves a half-written benchmark at its `--out`: the writer fills a hidden sibling folder
`.<name>.building-<pid>` and renames it onto `--out` in `close()`; a failed build (`abort()`, or leaving its
`with` block on an exception) deletes that folder, so a retry into the same `--out` works. A folder left by a
killed build is removed by the next writer of the same `--out` once its process is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from flashbench.data.groups import DEFAULT_GROUPS, group_for_count
from flashbench.data.objects import read_objects, write_objects
from flashbench.data.sample import ObjectInfo, Sample, Tracks
from flashbench.errors import BenchmarkError, VideoError
from flashbench.video import decoded_digest, read_video, write_video
from flashbench.weights import sha256_file as _sha256_file

FORMAT_VERSION = "1"
MANIFEST = "manifest.jsonl"
META = "meta.json"


def davis_palette() -> list[int]:
    """The PASCAL VOC / DAVIS colour map (256 RGB triplets, flattened): index k = object k, 0 = background."""
    palette = []
    for k in range(256):
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def label_map(masks: np.ndarray, object_ids: tuple[int, ...]) -> np.ndarray:
    """(N, H, W) bool -> (H, W) uint8 palette indices; where objects overlap the later one (front) wins."""
    labels = np.zeros(masks.shape[-2:], dtype=np.uint8)
    for k, oid in enumerate(object_ids):
        labels[masks[k]] = oid
    return labels


@dataclass(frozen=True)
class BenchmarkMeta:
    name: str
    version: str
    groups: tuple[str, ...]
    build: dict
    content_hash: str
    created: str
    num_samples: int
    group_sizes: dict[str, int] = field(default_factory=dict)
    hash_version: int = 1  # meta.json files written before version 2 have no such key

    @classmethod
    def from_json(cls, record: dict) -> BenchmarkMeta:
        return cls(**{**record, "groups": tuple(record["groups"])})


HASH_VERSION = 2
SAMPLE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_sample_id(sample_id: str) -> None:
    """Sample ids name files and folders: letters, digits, '.', '_' and '-', starting with a letter or digit
    (so never '', '.', '..', absolute or with a separator)."""
    if not isinstance(sample_id, str) or not SAMPLE_ID_RE.fullmatch(sample_id) or ".." in sample_id:
        raise BenchmarkError(
            f"bad sample id {sample_id!r}: use letters, digits, '.', '_' and '-' only (no '..', no '/')"
        )


def inside(root: Path, relative: str, what: str) -> Path:
    """`root / relative`, refusing a path that is absolute or resolves outside `root` (e.g. through '..' or a
    symlink)."""
    root = Path(root)
    path = root / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(root.resolve()):
        raise BenchmarkError(f"{what} {relative!r} leaves {root}; paths in a benchmark must stay inside its folder")
    return path


def _file_digest(path: Path) -> str:
    """What a file means, not its bytes: decoded yuv420p planes of a video (the benchmark stores lossless H.264,
    whose planes are reproducible though its bytes are not), decoded pixels of a PNG, canonical JSON; bytes for
    anything else, and for a file that cannot be decoded (the hash then differs; `validate` says why)."""
    try:
        return _decoded_digest(path)
    except (VideoError, OSError, ValueError):
        return f"undecodable:{_sha256_file(path)}"


def _decoded_digest(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".mp4":
        digest, count, height, width = decoded_digest(path)
        return f"video:{count}x{height}x{width}:{digest}"
    if suffix == ".png":
        with Image.open(path) as image:
            pixels = np.asarray(image)
            mode = image.mode
        return f"png:{mode}:{pixels.shape}:{hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()}"
    if suffix == ".json":
        canonical = json.dumps(json.loads(path.read_text()), sort_keys=True, separators=(",", ":"))
        return f"json:{hashlib.sha256(canonical.encode()).hexdigest()}"
    return f"bytes:{_sha256_file(path)}"


def content_hash(root: Path, samples: list[Sample], version: int = HASH_VERSION) -> str:
    """sha256 over samples sorted by id: each manifest record (canonical JSON), then every file of its folder
    (relative path + digest). Version 2 digests what a file means (`_file_digest`), so the same build gives the
    same hash on any machine; version 1 (benchmarks built before it) digests file bytes."""
    if version not in (1, 2):
        raise BenchmarkError(f"unknown content hash version {version}; upgrade flashbench")
    digest = _file_digest if version == 2 else (lambda f: _sha256_file(f))
    h = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: s.id):
        h.update(json.dumps(sample.to_json(), sort_keys=True).encode())
        folder = root / "samples" / sample.id
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(digest(f).encode())
    return h.hexdigest()


class Benchmark:
    """A benchmark loaded from disk. Samples are in manifest order."""

    def __init__(self, root: Path, meta: BenchmarkMeta, samples: list[Sample]):
        self.root = Path(root)
        self.meta = meta
        self.samples = samples
        self._by_id = {s.id: s for s in samples}

    @classmethod
    def load(cls, root: Path) -> Benchmark:
        root = Path(root)
        for name in (MANIFEST, META):
            if not (root / name).is_file():
                raise BenchmarkError(f"{root} is not a benchmark ({name} missing); build one with `flashbench build`")
        try:
            meta = BenchmarkMeta.from_json(json.loads((root / META).read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise BenchmarkError(f"{root / META} is unreadable ({e}); rebuild the benchmark") from None
        samples: list[Sample] = []
        seen: set[str] = set()
        for number, line in enumerate((root / MANIFEST).read_text().splitlines(), 1):
            if not line.strip():
                continue
            where = f"{root / MANIFEST}:{number}"
            try:
                sample = Sample.from_json(json.loads(line))
            except (json.JSONDecodeError, TypeError, KeyError, ValueError) as e:
                raise BenchmarkError(f"{where} is not a valid sample record ({e}); fix that line or rebuild") from None
            try:
                check_sample_id(sample.id)
                for key, relative in sample.paths.items():
                    inside(root, relative, f"paths.{key}")
            except BenchmarkError as e:
                raise BenchmarkError(f"{where}: {e}") from None
            if sample.id in seen:
                raise BenchmarkError(f"{where}: duplicate sample id {sample.id!r}; rebuild the benchmark")
            seen.add(sample.id)
            samples.append(sample)
        return cls(root, meta, samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def get(self, sample_id: str) -> Sample:
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise BenchmarkError(f"no sample {sample_id!r} in {self.root}") from None

    def by_group(self) -> dict[str, list[Sample]]:
        """Samples per group label, in the benchmark's group order (empty groups included)."""
        out: dict[str, list[Sample]] = {g: [] for g in self.meta.groups}
        for s in self.samples:
            out.setdefault(s.group, []).append(s)
        return out

    def path(self, sample: Sample, key: str) -> Path:
        return inside(self.root, sample.paths[key], f"{sample.id}: paths.{key}")

    def read_video(self, sample: Sample) -> np.ndarray:
        frames = read_video(self.path(sample, "video"))
        expected = (sample.num_frames, sample.height, sample.width, 3)
        if frames.shape != expected:
            raise BenchmarkError(f"{sample.id}: video is {frames.shape}, manifest says {expected}; rebuild the benchmark")
        return frames

    def first_frame(self, sample: Sample) -> np.ndarray:
        image = np.asarray(Image.open(self.path(sample, "first_frame")).convert("RGB"))
        if image.shape[:2] != (sample.height, sample.width):
            raise BenchmarkError(f"{sample.id}: first_frame.png is {image.shape[:2]}, expected {(sample.height, sample.width)}")
        return image

    def tracks(self, sample: Sample) -> Tracks:
        tracks = read_objects(self.path(sample, "objects"))
        expected = (sample.num_frames, sample.object_count, sample.height, sample.width)
        if tracks.masks.shape != expected:
            raise BenchmarkError(f"{sample.id}: objects.json masks are {tracks.masks.shape}, expected {expected}")
        return tracks

    def compute_content_hash(self) -> str:
        return content_hash(self.root, self.samples, self.meta.hash_version)


class BenchmarkWriter:
    """Writes samples one by one into a temporary sibling folder, then meta.json with the content hash and the
    rename onto `root` on `close()` (see the module docstring). Use it as a context manager, or call
    `abort()` when the build fails."""

    def __init__(
        self,
        root: Path,
        name: str,
        groups: tuple[str, ...] = DEFAULT_GROUPS,
        build: dict | None = None,
        overwrite: bool = False,
    ):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise BenchmarkError(f"{self.root} is a file; give --out a folder path")
        if self.root.is_dir() and any(self.root.iterdir()) and not overwrite:
            raise BenchmarkError(f"{self.root} is not empty; choose another --out or pass --overwrite")
        _check_name_length(self.root)
        self.overwrite = overwrite
        _remove_stale_builds(self.root)
        self.staging = self.root.with_name(f".{self.root.name}.building-{os.getpid()}")
        shutil.rmtree(self.staging, ignore_errors=True)
        (self.staging / "samples").mkdir(parents=True)
        self.name, self.groups, self.build = name, tuple(groups), dict(build or {})
        self.samples: list[Sample] = []

    def __enter__(self) -> BenchmarkWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Delete everything written so far; `root` is left as it was before the build."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def add(
        self,
        sample_id: str,
        frames: np.ndarray,
        masks: np.ndarray,
        fps: float,
        prompt: str,
        source: str,
        categories: list[str | None] | None = None,
        annotations: list[str] | None = None,
    ) -> Sample | None:
        """Write one sample. frames (T,H,W,3) uint8; masks (T,N,H,W) bool; annotations: per object "mask" or
        "box" (`ObjectInfo.annotation`; default all "mask"). Returns None (nothing written) when the object
        count falls in no group."""
        t, h, w, _ = frames.shape
        if masks.ndim != 4 or masks.shape[0] != t or masks.shape[2:] != (h, w):
            raise BenchmarkError(f"{sample_id}: masks {masks.shape} do not match frames {frames.shape}")
        n = masks.shape[1]
        group = group_for_count(n, self.groups)
        if group is None:
            return None
        check_sample_id(sample_id)
        if any(s.id == sample_id for s in self.samples):
            raise BenchmarkError(f"duplicate sample id {sample_id!r}")
        visible = masks.any(axis=(2, 3))
        if not visible.any(axis=0).all():
            raise BenchmarkError(f"{sample_id}: an object is never visible; drop it before adding the sample")
        object_ids = tuple(range(1, n + 1))
        categories = list(categories) if categories is not None else [None] * n
        annotations = list(annotations) if annotations is not None else ["mask"] * n
        if len(annotations) != n:
            raise BenchmarkError(f"{sample_id}: {len(annotations)} annotation kinds for {n} objects")
        objects = tuple(
            ObjectInfo(
                id=object_ids[k],
                first_visible=int(np.flatnonzero(visible[:, k])[0]),
                last_visible=int(np.flatnonzero(visible[:, k])[-1]),
                category=categories[k],
                annotation=annotations[k],
            )
            for k in range(n)
        )
        rel = f"samples/{sample_id}"
        folder = self.staging / rel
        (folder / "masks").mkdir(parents=True)
        write_video(folder / "video.mp4", frames, fps, lossless=True)
        Image.fromarray(frames[0]).save(folder / "first_frame.png")
        palette = davis_palette()
        for i in range(t):
            png = Image.fromarray(label_map(masks[i], object_ids), mode="P")
            png.putpalette(palette)
            png.save(folder / "masks" / f"{i:05d}.png")
        write_objects(folder / "objects.json", masks, object_ids, categories)
        sample = Sample(
            id=sample_id,
            prompt=prompt,
            num_frames=t,
            fps=float(fps),
            height=h,
            width=w,
            object_count=n,
            group=group,
            objects=objects,
            paths={
                "video": f"{rel}/video.mp4",
                "first_frame": f"{rel}/first_frame.png",
                "masks": f"{rel}/masks",
                "objects": f"{rel}/objects.json",
            },
            source=source,
        )
        with open(self.staging / MANIFEST, "a") as f:
            f.write(json.dumps(sample.to_json()) + "\n")
        self.samples.append(sample)
        return sample

    def close(self) -> Benchmark:
        """Write meta.json and move the finished benchmark onto `root` (replacing an old one when overwriting)."""
        sizes = {g: 0 for g in self.groups}
        for s in self.samples:
            sizes[s.group] += 1
        meta = BenchmarkMeta(
            name=self.name,
            version=FORMAT_VERSION,
            groups=self.groups,
            build=self.build,
            content_hash=content_hash(self.staging, self.samples, HASH_VERSION),
            hash_version=HASH_VERSION,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            num_samples=len(self.samples),
            group_sizes=sizes,
        )
        (self.staging / MANIFEST).touch()
        (self.staging / META).write_text(json.dumps(asdict(meta), indent=2) + "\n")
        self._publish()
        return Benchmark(self.root, meta, list(self.samples))

    def _publish(self) -> None:
        """Rename the staging folder onto `root`; an old benchmark there is moved aside first, then deleted."""
        old = self.root.with_name(f".{self.root.name}.old-{os.getpid()}")
        if self.root.is_dir() and any(self.root.iterdir()):
            if not self.overwrite:  # something appeared at --out during the build
                self.abort()
                raise BenchmarkError(f"{self.root} is not empty; choose another --out or pass --overwrite")
            os.replace(self.root, old)
        elif self.root.is_dir():
            self.root.rmdir()
        os.replace(self.staging, self.root)
        shutil.rmtree(old, ignore_errors=True)


def _check_name_length(root: Path) -> None:
    """BenchmarkError unless the staging sibling `.<name>.building-<pid>` fits the filesystem's name limit."""
    existing = next((p for p in [root.parent, *root.parent.parents] if p.is_dir()), Path("/"))
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    extra = len(f"..building-{2**22}")  # the staging name around the folder's name (pids up to 2**22)
    size = len(os.fsencode(root.name))
    if size + extra > limit:
        raise BenchmarkError(f"--out name {root.name[:32]}... is {size} bytes; the build's staging folder needs "
                             f"{extra} more and names may have {limit}: use a name of at most {limit - extra} bytes")


def _remove_stale_builds(root: Path) -> None:
    """Delete `.<name>.building-<pid>` / `.<name>.old-<pid>` siblings of `root` whose process has ended."""
    if not root.parent.is_dir():
        return
    prefix = f".{root.name}."
    for path in root.parent.iterdir():
        if path.is_dir() and path.name.startswith(prefix):
            kind, _, pid = path.name[len(prefix) :].rpartition("-")
            if kind in ("building", "old") and pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
