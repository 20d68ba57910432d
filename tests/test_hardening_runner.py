"""A generator that ends its process (os._exit) becomes that sample's error record: at once with --isolate (a
persistent worker process, restarted when it dies), and on the next run without it (the sample in flight when
the process died is generated in a worker first), so no rerun dies on the same sample again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness_bench import make_bench

from flashbench.run_files import GENERATION, read_jsonl
from flashbench.runner import generate

REPO = Path(__file__).resolve().parents[1]
SPEC = "harness_bench:ExitsHard"


@pytest.fixture
def bench(tmp_path):
    return make_bench(tmp_path / "bench")


def _records(run: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_jsonl(run / GENERATION)}


def test_isolate_records_a_sample_that_ends_its_process(bench, tmp_path):
    run = tmp_path / "run"
    summary = generate(bench, run, SPEC, isolate=True, progress=False)
    records = _records(run)
    assert records["sq-1"]["status"] == "error" and "process died (exit code 3)" in records["sq-1"]["error"]
    assert records["sq-0"]["status"] == records["sq-2"]["status"] == "ok"  # sq-2 by a fresh worker
    assert (summary.generated, summary.failed) == (2, 1)
    again = generate(bench, run, SPEC, isolate=True, retry_errors=True, progress=False)  # retried, recorded again
    assert (again.generated, again.failed, again.skipped) == (0, 1, 2)


def test_a_default_run_that_died_on_a_sample_records_it_on_the_next_run(bench, tmp_path, capsys):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [sys.executable, "-m", "flashbench.cli", "generate", "--bench", str(bench.root), "--generator", SPEC,
           "--out", str(run)]
    died = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert died.returncode == 3 and set(_records(run)) == {"sq-0"}  # in-process: the run ended with no record
    summary = generate(bench, run, SPEC, progress=False)  # the rerun does not die on sq-1 again
    assert "the last run died while generating sq-1" in capsys.readouterr().err
    records = _records(run)
    assert records["sq-1"]["status"] == "error" and "process died (exit code 3)" in records["sq-1"]["error"]
    assert records["sq-2"]["status"] == "ok" and (summary.generated, summary.failed) == (1, 1)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".in-flight")]


@pytest.mark.parametrize("line, match", [
    ('{"status": "ok"}', "record 2 has no sample id"),
    ('["sq-1"]', "record 2 has no sample id"),
    ('{"id": "sq-1", "status": "weird"}', "record 2 (sq-1) has status 'weird', not one of ok, error"),
])
def test_bad_generation_records_are_one_line_errors_never_done(bench, tmp_path, capsys, line, match):
    from flashbench.cli import main

    run = tmp_path / "run"
    generate(bench, run, "static", limit=1, progress=False)
    with open(run / GENERATION, "a") as f:
        f.write(line + "\n")
    argv = ["generate", "--bench", str(bench.root), "--generator", "static", "--out", str(run)]
    assert main(argv) == 2  # limit widened to all samples: the bad record is never taken as sq-1 done
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "fix or delete that line" in err
    assert not (run / "videos/sq-1.mp4").exists()
    assert main(["evaluate", "--bench", str(bench.root), "--run", str(run)]) == 2
    assert match in capsys.readouterr().err
