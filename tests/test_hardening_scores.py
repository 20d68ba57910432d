"""Wrong scores are never accepted silently: tampered benchmarks, weights and checkpoints are refused, stale or
out-of-range results are refused, and mixed-coverage leaderboards are flagged."""

from __future__ import annotations

import os

import pytest
from harness_bench import make_bench

from flashbench.data.benchmark import Benchmark
from flashbench.data.verify import files_stamp, verify_benchmark
from flashbench.errors import BenchmarkError


def test_same_size_edit_with_mtime_put_back_is_not_passed_by_the_stamp(tmp_path):
    bench = make_bench(tmp_path / "bench")
    assert verify_benchmark(bench) == "full" and verify_benchmark(bench) == "stamp"
    path = bench.root / "samples/sq-1/objects.json"
    st = path.stat()
    text = path.read_text()
    at = text.index('"boxes":[[') + len('"boxes":[[')
    edited = text[:at] + ("9" if text[at] != "9" else "8") + text[at + 1 :]  # one box coordinate, same size
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(BenchmarkError, match="no longer matches its meta.json"):
        verify_benchmark(Benchmark.load(bench.root))
    path.write_text(text)  # put back: the full check passes again and leaves a new stamp
    before = files_stamp(bench.root)
    assert verify_benchmark(Benchmark.load(bench.root)) == "full" and files_stamp(bench.root) == before
