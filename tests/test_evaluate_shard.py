"""Sharded `flashbench evaluate` (--shard i/N, and torchrun with gloo on CPU) writes what one process writes.

The benchmark is the least that shards unevenly: groups 1, 2, 3 x one 9-frame video (shard 0 of 2 gets samples
0 and 2, shard 1 gets sample 1, so the merge has to restore benchmark order). The run is the `static` reference,
whose frames repeat, so MobileSAM encodes one frame per video and the three evaluations take seconds, not
minutes. Compared byte for byte: samples.jsonl, tracks/*.json, and results.json without its `provenance`
block; in provenance only `created` (wall-clock time), `timings` / `shard_timings` (seconds spent) and `command`
may differ, and do. Byte identity needs the same CPU thread count in every process (the torchrun test passes it).
Needs the cached weights (`flashbench weights fetch`); skipped with that hint when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness_bench import metric_components

from flashbench.distributed_eval import Launch, rank_device, torchrun_launch
from flashbench.errors import FlashBenchError
from flashbench.evaluation import EvalSettings, evaluate
from flashbench.runner import Shard, generate
from flashbench.weights import home

FRAMES, BOOT = 9, 50
SETTINGS = EvalSettings(clip_len=FRAMES, bootstrap=BOOT)
PROVENANCE_MAY_DIFFER = {"created", "timings", "shard_timings", "command"}  # when it ran, how long it took, argv
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def components():
    return metric_components(FRAMES)


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, components):
    """(bench, a generated-but-unevaluated copy of the run, the run evaluated by one process, root)."""
    from flashbench.data.synthetic import build_synthetic

    root = tmp_path_factory.mktemp("shard")
    bench = build_synthetic(root / "bench", videos_per_group=1, frames=FRAMES, size=(64, 64), groups="1,2,3")
    generate(bench, root / "generated", "static", progress=False)
    run = shutil.copytree(root / "generated", root / "one")
    segmenter, features = components
    evaluate(bench, run, SETTINGS, segmenter, features, real_cache=root / "real-one", progress=False)
    return bench, root / "generated", run, root


def _assert_same_as_one_process(run: Path, one: Path) -> None:
    assert sorted(p.name for p in run.iterdir() if "shard" in p.name) == []  # shard logs folded away
    assert (run / "samples.jsonl").read_bytes() == (one / "samples.jsonl").read_bytes()
    tracks = sorted(p.name for p in (one / "tracks").iterdir())
    assert tracks and sorted(p.name for p in (run / "tracks").iterdir()) == tracks
    for name in tracks:
        assert (run / "tracks" / name).read_bytes() == (one / "tracks" / name).read_bytes(), name
    mine, theirs = (json.loads((r / "results.json").read_text()) for r in (run, one))
    prov_mine, prov_theirs = mine.pop("provenance"), theirs.pop("provenance")
    assert json.dumps(mine, indent=2) == json.dumps(theirs, indent=2)
    assert mine["overall"]["fid"] is not None and mine["overall"]["ci95"]["mask_iou"] is not None
    differ = {k for k in prov_mine.keys() | prov_theirs.keys() if prov_mine.get(k) != prov_theirs.get(k)}
    assert differ <= PROVENANCE_MAY_DIFFER, differ


def test_two_shards_run_one_after_another_equal_one_process(unsharded, components, tmp_path):
    bench, generated, one, root = unsharded
    segmenter, features = components
    run = shutil.copytree(generated, tmp_path / "sharded")
    first = evaluate(bench, run, SETTINGS, segmenter, features, real_cache=tmp_path / "real", progress=False,
                     shard=Shard(0, 2))
    assert first is None and not (run / "results.json").exists()  # shard 1 has not run yet
    log = [json.loads(line)["id"] for line in (run / "samples.shard-0-of-2.jsonl").read_text().splitlines()]
    assert log == [bench.samples[0].id, bench.samples[2].id]
    assert sorted(p.stem for p in (tmp_path / "real").glob("*.npz")) == sorted(log)  # its share of real videos
    results = evaluate(bench, run, SETTINGS, segmenter, features, real_cache=tmp_path / "real", progress=False,
                       shard=Shard(1, 2))
    assert results.to_json() == json.loads((run / "results.json").read_text())
    # every shard's timings are kept; the aggregating pass itself only hit caches
    shards = results.provenance["shard_timings"]
    assert sorted(shards) == ["shard-0-of-2", "shard-1-of-2"] and all(t["segment_seconds"] > 0 for t in shards.values())
    assert results.provenance["timings"]["segment_seconds"] == 0.0
    assert results.provenance["torch_threads"] >= 1
    _assert_same_as_one_process(run, one)
    for sample in bench.samples:  # real features computed by different shards equal the one-process cache
        for kind in ("fid", "fvd"):
            a, b = (np.load(d / f"{sample.id}.npz")[kind] for d in (tmp_path / "real", root / "real-one"))
            assert np.array_equal(a, b)


def test_one_shard_then_an_unsharded_evaluate_equals_one_process(unsharded, components, tmp_path):
    bench, generated, one, _ = unsharded
    segmenter, features = components
    run = shutil.copytree(generated, tmp_path / "partly")
    kwargs = dict(segmenter=segmenter, features=features, real_cache=tmp_path / "real", progress=False)
    assert evaluate(bench, run, SETTINGS, shard=Shard(1, 2), **kwargs) is None
    evaluate(bench, run, SETTINGS, **kwargs)  # scores samples 0 and 2 after folding shard 1's sample 1
    _assert_same_as_one_process(run, one)


def test_torchrun_with_gloo_equals_one_process(unsharded, tmp_path):
    bench, generated, one, root = unsharded
    run = shutil.copytree(generated, tmp_path / "torchrun")
    flashbench_home = tmp_path / "home"  # fresh real-feature cache, the cached weights
    flashbench_home.mkdir()
    (flashbench_home / "weights").symlink_to(home() / "weights")
    import torch

    env = {**os.environ, "FLASHBENCH_HOME": str(flashbench_home), "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same threads as this process: same float sums
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "flashbench.cli", "--", "evaluate", "--bench", str(bench.root), "--run", str(run),
           "--clip-len", str(FRAMES), "--bootstrap", str(BOOT)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("results:") == 1  # rank 0 reports, rank 1 stays quiet
    assert "[shard 0/2]" in proc.stderr and "[shard 1/2]" in proc.stderr  # both ranks scored their share
    provenance = json.loads((run / "results.json").read_text())["provenance"]
    assert sorted(provenance["shard_timings"]) == ["shard-0-of-2", "shard-1-of-2"]
    assert provenance["torch_threads"] == torch.get_num_threads()
    _assert_same_as_one_process(run, one)


def test_torchrun_environment_and_devices():
    assert torchrun_launch({}) is None
    assert torchrun_launch({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process: nothing to spread
    launch = torchrun_launch({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert launch == Launch(3, 4, 1) and launch.shard == Shard(3, 4)
    with pytest.raises(FlashBenchError, match="outside WORLD_SIZE"):
        torchrun_launch({"RANK": "4", "WORLD_SIZE": "4"})
    assert rank_device("cuda", 5) == "cuda:5" and rank_device("cpu", 5) == "cpu"
    with pytest.raises(FlashBenchError, match="--device cuda"):
        rank_device("cuda:0", 1)


def test_shard_and_torchrun_together_are_refused(monkeypatch, tmp_path, capsys):
    from flashbench.cli import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["evaluate", "--bench", str(tmp_path), "--run", str(tmp_path), "--shard", "0/2"]) == 2
    assert "--shard and torchrun both split the samples" in capsys.readouterr().err
