"""Where `flashbench generate` calls the generator: in its own process, or in a persistent worker process.

`InProcess` (the default) builds the generator in the runner's process: no start-up cost, but a generator that
ends its process (`os._exit`, a segfault, the OOM killer) ends the run.

`Worker` (`--isolate`, and always with `--timeout`) starts one worker process (spawn) that builds the generator,
binds the benchmark and then generates sample after sample, so the model is built once, not per sample. A
worker that dies while generating is that sample's error record (`SampleFailed`, with its exit code) and a fresh
worker is started for the next sample; with a timeout, a worker still busy after `timeout` seconds is killed (so
a hung sample frees its memory and device) and `SampleTimeout` is raised. A generator that cannot be built is a
GeneratorSpecError up front, as in-process.

The runner also remembers the sample in flight (`InFlight`): when a default run's process died while generating
a sample, the next run generates that sample in a worker first, so a sample that kills its process is recorded
as an error instead of killing every rerun.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flashbench import atomic
from flashbench.generators.base import GeneratedVideo, GenerationRequest, bind_benchmark
from flashbench.generators.registry import GeneratorSpecError, load_generator


class SampleFailed(Exception):
    """The worker reported (or was) a failure of this sample; the message is the record's one-line error."""


class SampleTimeout(Exception):
    """The sample did not finish within the timeout; its worker was killed."""


def one_line(e: BaseException) -> str:
    """`Type: message` on one line (at most 500 characters), as generation records store errors."""
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text}"[:500]


class InProcess:
    """The generator built and called in this process."""

    def __init__(self, name: str, kwargs: dict[str, Any], bench) -> None:
        self.generator = load_generator(name, **kwargs)
        bind_benchmark(self.generator, bench)
        self.name = self.generator.name
        self.steps = getattr(self.generator, "steps", None)

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        return self.generator.generate(request)

    def close(self) -> None:
        pass


def _serve(conn, name: str, kwargs: dict[str, Any], bench_root: str) -> None:
    """The worker process: build the generator, report ("ready", info), then answer each request."""
    from flashbench.data.benchmark import Benchmark

    try:
        engine = InProcess(name, kwargs, Benchmark.load(Path(bench_root)))
    except BaseException as e:  # noqa: BLE001 - reported to the runner, which raises it up front
        conn.send(("error", str(e) if isinstance(e, GeneratorSpecError) else one_line(e)))
        return
    conn.send(("ready", {"name": engine.name, "steps": engine.steps}))
    while (request := conn.recv()) is not None:
        try:
            conn.send(("ok", engine.generate(request)))
        except BaseException as e:  # noqa: BLE001 - the sample's error record
            conn.send(("error", one_line(e)))


class Worker:
    """The generator in a persistent worker process; see the module docstring."""

    def __init__(self, name: str, kwargs: dict[str, Any], bench_root: Path, timeout: float | None = None) -> None:
        self.spec = (name, kwargs, str(bench_root))
        self.timeout = timeout
        self.process = None
        self.conn = None
        info = self._start()
        self.name, self.steps = info["name"], info["steps"]

    def _start(self) -> dict:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, *self.spec), name="flashbench-generator",
                                       daemon=True)
        self.process.start()
        child.close()
        kind, value = self._receive(lambda code: GeneratorSpecError(
            f"generator {self.spec[0]!r} ended its process (exit code {code}) while it was being built"))
        if kind != "ready":
            self._stop()
            raise GeneratorSpecError(value)
        return value

    def _receive(self, died: Callable[[int | None], Exception]) -> tuple[str, Any]:
        """The worker's next message; when the worker died instead, `died(exit code)` is raised."""
        try:
            return self.conn.recv()
        except (EOFError, ConnectionError):
            raise died(self._stop()) from None

    def _stop(self) -> int | None:
        """Kill the worker (if alive) and return its exit code."""
        if self.process is None:
            return None
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        code = self.process.exitcode
        self.conn.close()
        self.process = self.conn = None
        return code

    def generate(self, request: GenerationRequest) -> GeneratedVideo:
        if self.process is None:
            self._start()
        self.conn.send(request)
        if not self.conn.poll(self.timeout):
            self._stop()
            raise SampleTimeout(f"timed out after {self.timeout:g} s (--timeout); its worker process was killed "
                                "and a fresh one started")
        kind, value = self._receive(lambda code: SampleFailed(
            f"the generator's process died (exit code {code}) while generating this sample (os._exit, a crash or "
            "the OOM killer); fix it and rerun with --retry-errors"))
        if kind == "error":
            raise SampleFailed(value)
        return value

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            try:
                self.conn.send(None)
            except (OSError, ConnectionError):
                pass
            self.process.join(30)
        self._stop()


class InFlight:
    """A file in the run folder naming the sample being generated in-process; left behind when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def died_on(self) -> str | None:
        """The sample a previous process was generating when it died (None if it ended normally)."""
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None

    def start(self, sample_id: str) -> None:
        atomic.write_text(self.path, sample_id + "\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
