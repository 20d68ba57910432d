"""One `flashbench evaluate` spread over the processes of a torchrun job (one process per GPU of a node).

    torchrun --nproc-per-node 8 -m flashbench.cli -- evaluate --bench B --run R --device cuda

(the `--` keeps torchrun's own parser off `--run`, which it would take for an abbreviation of its --run-path.)

torchrun starts the processes and sets RANK, WORLD_SIZE and LOCAL_RANK. Rank r evaluates shard r/WORLD_SIZE
with flashbench.evaluation's sharding (every WORLD_SIZE-th generated sample and every WORLD_SIZE-th real
video's features) on cuda:LOCAL_RANK (NCCL), or on the CPU (gloo), and logs to RUN/samples.shard-r-of-W.jsonl.
After a barrier rank 0 folds the shard logs and aggregates through the single-process code path, whose
per-sample work is then all cache hits, so results.json and samples.jsonl are the bytes one process writes
(provenance apart). Only rank 0 rewrites shared files: it merges generation shard logs before the other ranks
read them (first barrier) and folds the samples logs after every rank has written its own (second barrier);
the other ranks exit after the second barrier.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from flashbench.data.benchmark import Benchmark
from flashbench.data.verify import Verify, verify_benchmark
from flashbench.errors import FlashBenchError
from flashbench.evaluation import EvalSettings, build_features, build_segmenter, check_run, evaluate
from flashbench.results import Results
from flashbench.runner import Shard

# A barrier waits for the slowest rank's whole shard; torch's default (10-30 min) is shorter than one shard of
# a 121-frame benchmark can take.
BARRIER_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local_rank: int

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)


def torchrun_launch(environ: Mapping[str, str] = os.environ) -> Launch | None:
    """The torchrun job this process belongs to (RANK, WORLD_SIZE, LOCAL_RANK); None outside torchrun or
    when the job has a single process."""
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        launch = Launch(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", "0")))
    except ValueError:
        raise FlashBenchError("RANK/WORLD_SIZE/LOCAL_RANK are not integers; launch with torchrun") from None
    if not 0 <= launch.rank < launch.world:
        raise FlashBenchError(f"RANK={launch.rank} is outside WORLD_SIZE={launch.world}; launch with torchrun")
    return launch if launch.world > 1 else None


def rank_device(device: str, local_rank: int) -> str:
    """`cuda` -> this rank's GPU (cuda:LOCAL_RANK); `cpu` stays; a numbered GPU would put every rank on it."""
    if device == "cuda":
        return f"cuda:{local_rank}"
    if device.startswith("cuda:"):
        raise FlashBenchError(f"--device {device} under torchrun puts every rank on one GPU; "
                              "pass --device cuda (each rank takes cuda:LOCAL_RANK)")
    return device


def evaluate_distributed(
    bench: Benchmark, run: Path, settings: EvalSettings, launch: Launch, progress: bool = True,
    verify: Verify | str = Verify.AUTO,
) -> Results | None:
    """Evaluate this rank's shard; rank 0 returns the results (see the module docstring), the others None."""
    import torch
    import torch.distributed as dist

    device = rank_device(settings.device, launch.local_rank)
    local = replace(settings, device=device)
    nccl = device.startswith("cuda")
    if nccl:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if nccl else "gloo", timeout=BARRIER_TIMEOUT)

    def barrier() -> None:
        dist.barrier(device_ids=[launch.local_rank]) if nccl else dist.barrier()

    try:
        if launch.rank == 0:
            check_run(bench, Path(run))  # merges generation shard logs while no other rank reads them
            verify_benchmark(bench, verify)  # once, before any rank reads the benchmark
        barrier()
        segmenter, features = build_segmenter(local), build_features(local)
        checked = Verify.OFF if Verify(verify) is Verify.OFF else Verify.AUTO  # rank 0's check left its stamp
        evaluate(bench, run, local, segmenter, features, progress=progress, shard=launch.shard, finalize=False,
                 verify=checked)
        barrier()
        if launch.rank != 0:
            return None
        # the settings as given (`cuda`, not `cuda:0`), so provenance reads as a one-process run's
        return evaluate(bench, run, settings, segmenter, features, progress=progress, verify=checked)
    finally:
        dist.destroy_process_group()
