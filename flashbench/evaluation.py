"""`flashbench evaluate`: score a generated run against its benchmark (see RUN_SCHEMA).

Per sample: the segmenter tracks the generated video, prompted with each object's ground-truth mask at its
first visible frame; mask and box IoU against the target masks follow the convention of
flashbench.metrics.iou, ObjMC that of flashbench.metrics.objmc (RUN/tracks/<id>.json keeps the prediction,
RUN/samples.jsonl the scores). Per video: FID/FVD features (flashbench.eval_features caches them). The tracker
ceiling: the same scores of the real videos of the run's samples, tracked by the same segmenter (tracks cached
beside the real-video features, so once per benchmark video and segmenter setting). Then FID/FVD per group and
overall (the real set is the benchmark's real videos of that group / all of them), IoU and ObjMC means,
bootstrap CIs (flashbench.aggregate), and results.json with provenance and the ceiling.

Resumable: samples already in samples.jsonl and features already cached are reused when they were computed
from the same video file (sha256) with the same segmenter/feature settings; anything else is recomputed. Samples are always aggregated in benchmark order, so a resumed evaluation writes the same
metric values, to the byte, as an uninterrupted one.

Sharded (`shard=Shard(i, N)`, `flashbench evaluate --shard i/N`): shard i scores every N-th generated sample
(and computes every N-th real video's features) and logs to RUN/samples.shard-i-of-N.jsonl, as generate's shards
do (flashbench.run_files). When every sample has a current record (same segmenter, same video file), the
shard logs are folded into samples.jsonl in benchmark order and the run is aggregated by the unsharded code
path, whose per-sample work is then all cache hits: results.json and samples.jsonl are the bytes one process
writes, apart from provenance (timings, time, command). Each shard writes its own timings to
RUN/timings.shard-i-of-N.json; the aggregation records them all in `provenance.shard_timings` and deletes
the files (its own `timings` are those of the aggregating pass). Feature values are the same
bytes only when every process uses the same number of CPU threads (`provenance.torch_threads`; torchrun sets
OMP_NUM_THREADS=1 unless given): with other thread counts CPU float sums differ in the last digits (1.4e-5 seen
in features). `finalize=False` leaves the folding to a later call
(flashbench.distributed_eval: rank 0 does it after a barrier).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from flashbench import provenance
from flashbench.aggregate import metrics_block, tracking_block
from flashbench.atomic import atomic_path
from flashbench.data.benchmark import Benchmark
from flashbench.data.objects import boxes_from_masks, read_objects, write_objects
from flashbench.data.sample import Sample, Tracks
from flashbench.data.verify import Verify, verify_benchmark
from flashbench.errors import BenchmarkError, VideoError
from flashbench.eval_features import FeatureExtractor, FeatureSettings, real_cache_dir
from flashbench.metrics.frechet_interval import METHOD as FRECHET_INTERVAL_METHOD
from flashbench.metrics.iou import box_iou, mask_iou, summarize
from flashbench.metrics.objmc import box_centres, mask_centroids, objmc
from flashbench.results import Ceiling, Metrics, Results, RunInfo, SampleError
from flashbench.run_files import (
    FEATURES,
    RESULTS,
    RUN_JSON,
    SAMPLES,
    TRACKS,
    VIDEOS,
    RunError,
    append_jsonl,
    generation_logs,
    generation_records,
    log_files,
    merge_generation,
    merge_logs,
    merged_records,
    read_json,
    scored_inputs,
    shard_log_name,
    write_json,
)
from flashbench.runner import SCHEMA_VERSION, Shard, check_video_store, selected_samples
from flashbench.video import read_video
from flashbench.weights import sha256_file

UNSHARDED = Shard()
CEILING = "ceiling"  # sub-folder of the real-video cache holding the tracker ceiling's tracks
SHARD_TIMINGS = "timings.shard-"  # RUN/timings.shard-i-of-N.json: one shard's timings
IOU_CONVENTION = (
    "DAVIS J per object per frame: frames before the object's first visible (prompt) frame not scored; "
    "both empty = 1; one empty = 0; mean over scored frames, then objects, then samples; box IoU of the "
    "boxes of the same masks (xyxy, exclusive end); objects with box-only ground truth (annotation 'box') "
    "get box IoU but no mask IoU"
)
OBJMC_CONVENTION = (
    "MotionCtrl's ObjMC: per object per frame, the distance between the tracked and the target mask centroid "
    "(box-only ground truth: box centres), in pixels and over the frame diagonal; frames before the prompt frame "
    "and frames where the target is absent not scored; target present but track empty = the diagonal (1.0); "
    "mean over scored frames, then objects, then samples; lower is better"
)
CEILING_TEXT = (
    "the benchmark's real videos (the ground truth) tracked and scored like a run, with the same segmenter and "
    "settings: the best M-IoU / B-IoU / ObjMC a generator can get with this tracker"
)


@dataclass(frozen=True)
class EvalSettings:
    """Everything that changes the numbers; recorded in results.json."""

    segmenter: str = "mobilesam"
    segmenter_checkpoint: str | None = None
    device: str = "cpu"
    fid_stride: int = 1
    clip_len: int = 16
    fvd_protocol: str = "clips"  # or "whole-video" (flashbench.eval_features.FVD_PROTOCOLS)
    bootstrap: int = 1000  # resamples for the 95% CIs; 0 skips them
    seed: int = 0


def _key(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def track_sample(sample: Sample, gt: Tracks, frames: np.ndarray, segmenter) -> np.ndarray:
    """(T, N, H, W) masks of the sample's objects tracked through `frames`, each prompted with its ground-truth
    mask (in `gt`, the sample's target tracks) at its first visible frame."""
    start = gt.visible.argmax(axis=0)  # first visible frame of each object (every object is visible somewhere)
    pred = np.asarray(segmenter.track(frames, gt.masks[start, np.arange(gt.num_objects)], start))
    if pred.shape != gt.masks.shape:
        raise VideoError(f"{sample.id}: segmenter returned masks {pred.shape}, expected {gt.masks.shape}")
    return pred


def score_tracks(sample: Sample, gt: Tracks, pred: np.ndarray) -> dict:
    """The IoU and ObjMC part of the samples.jsonl record of tracked masks `pred` against the target tracks `gt`
    (flashbench.metrics.iou and .objmc conventions; ObjMC `objmc` in pixels, `objmc_norm` over the diagonal)."""
    start = gt.visible.argmax(axis=0)
    box_only = np.array([o.annotation == "box" for o in sample.objects])
    per_mask = mask_iou(pred, gt.masks, start)
    per_mask[:, box_only] = np.nan  # box ground truth only: no mask IoU
    pred_boxes = boxes_from_masks(pred)
    per_box = box_iou(pred_boxes, gt.boxes, start)
    pred_points, target_points = mask_centroids(pred), mask_centroids(gt.masks)
    pred_points[:, box_only] = box_centres(pred_boxes)[:, box_only]  # box ground truth: box centres
    target_points[:, box_only] = box_centres(gt.boxes)[:, box_only]
    size = gt.masks.shape[-2:]
    diagonal = math.hypot(*size)
    m, b, o = summarize(per_mask), summarize(per_box), summarize(objmc(pred_points, target_points, size, start))
    objects = [
        {"id": int(oid), "mask_iou": _finite(m.per_object[k]), "box_iou": _finite(b.per_object[k]),
         "objmc": _finite(diagonal * o.per_object[k]), "objmc_norm": _finite(o.per_object[k]),
         "frames_scored": int(np.count_nonzero(~np.isnan(per_box[:, k])))}
        for k, oid in enumerate(gt.object_ids)
    ]
    if not b.scored or not (m.scored or box_only.all()):
        return {"status": "error", "error": "no object could be scored", "objects": objects}
    return {"status": "ok", "error": None, "mask_iou": _finite(m.mean), "box_iou": b.mean,
            "objmc": _finite(diagonal * o.mean), "objmc_norm": _finite(o.mean), "objects": objects}


def score_sample(sample: Sample, bench: Benchmark, frames: np.ndarray, segmenter, tracks_path: Path) -> dict:
    """Track the objects through `frames`, save the prediction, return the IoU / ObjMC part of the samples.jsonl
    record."""
    gt = bench.tracks(sample)
    pred = track_sample(sample, gt, frames, segmenter)
    _write_tracks(tracks_path, sample, gt, pred)
    return score_tracks(sample, gt, pred)


def _write_tracks(path: Path, sample: Sample, gt: Tracks, pred: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        write_objects(tmp, pred, gt.object_ids, [o.category for o in sample.objects])


def tracker_ceiling(
    bench: Benchmark, samples: list[Sample], segmenter, seg_key: str, cache: Path, sources: dict[str, str],
    progress: bool = False,
) -> dict[str, dict]:
    """Score records (as score_tracks) of the real videos of `samples` tracked by `segmenter`: the ground truth's
    IoU / ObjMC, the best a generator can get with this tracker. The tracks are cached as
    `cache`/ceiling/<seg_key>/<id>.<video sha256[:16]>.json (`sources`: sample id -> sha256 of its real video),
    so each real video is tracked once per segmenter setting, whatever run is evaluated; an unreadable entry is
    tracked again."""
    records = {}
    for sample in tqdm(samples, desc="tracker ceiling", unit="video", disable=not progress):
        path = Path(cache) / CEILING / seg_key / f"{sample.id}.{sources[sample.id][:16]}.json"
        gt = bench.tracks(sample)
        pred = _cached_tracks(path, gt.masks.shape)
        if pred is None:
            pred = track_sample(sample, gt, bench.read_video(sample), segmenter)
            _write_tracks(path, sample, gt, pred)
        records[sample.id] = {"id": sample.id, "group": sample.group, **score_tracks(sample, gt, pred)}
    return records


def _cached_tracks(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        masks = read_objects(path).masks
    except (BenchmarkError, KeyError, TypeError, ValueError) as e:
        warnings.warn(f"tracker ceiling cache {path} is unreadable ({type(e).__name__}: {e}); tracking again",
                      stacklevel=3)
        return None
    return masks if masks.shape == shape else None


def _read_generated(run: Path, sample: Sample) -> np.ndarray:
    frames = read_video(run / VIDEOS / f"{sample.id}.mp4")
    expected = (sample.num_frames, sample.height, sample.width, 3)
    if frames.shape != expected:
        raise VideoError(f"{sample.id}: generated video is {frames.shape}, benchmark expects {expected}; regenerate it")
    return frames


def _evaluate_sample(
    bench: Benchmark, run: Path, sample: Sample, gen: dict, previous: dict, segmenter, seg_key: str,
    features: FeatureExtractor, timings: dict[str, float], log: Path,
) -> tuple[dict, dict[str, np.ndarray] | None]:
    """Score one generated video (or reuse its record made from the same file and segmenter) and get its
    features; a VideoError becomes an error record (appended to `log`, features None)."""
    path = run / VIDEOS / f"{sample.id}.mp4"
    video_sha = sha256_file(path) if path.is_file() else None
    video = functools.cache(functools.partial(_read_generated, run, sample))  # decoded at most once
    base = {"id": sample.id, "group": sample.group, "object_count": sample.object_count,
            "segmenter_key": seg_key, "video_sha256": video_sha}
    record = previous
    try:
        if not (previous.get("status") == "ok" and previous.get("segmenter_key") == seg_key
                and video_sha is not None and previous.get("video_sha256") == video_sha):
            t0 = time.perf_counter()
            scored = score_sample(sample, bench, video(), segmenter, run / TRACKS / f"{sample.id}.json")
            timings["segment_seconds"] += time.perf_counter() - t0
            record = {**base, "status": "ok", "error": None, "mask_iou": None, "box_iou": None, **scored,
                      "denoise_seconds": gen["denoise_seconds"], "nfe": gen["nfe"]}
            append_jsonl(log, record)
        t0 = time.perf_counter()
        feats = features.get(run / FEATURES / f"{sample.id}.npz", video, source=video_sha or "")
        timings["features_seconds"] += time.perf_counter() - t0
        return record, feats
    except VideoError as e:  # this video cannot be scored: logged, listed, never averaged in
        record = {**base, "status": "error", "error": str(e)}
        append_jsonl(log, record)
        return record, None


def check_run(bench: Benchmark, run: Path) -> tuple[dict, list[Sample], dict[str, dict]]:
    """run.json, the samples the run covers, and their generation records; RunError if incomplete/mismatched."""
    info = read_json(run / RUN_JSON, "generate into this folder with `flashbench generate` first")
    check_video_store(run, info)
    run_hash = (info.get("bench") or {}).get("content_hash")
    if run_hash != bench.meta.content_hash:
        raise RunError(f"{run} was generated on benchmark content {str(run_hash)[:12]}, not {bench.root} "
                       f"({bench.meta.content_hash[:12]}); evaluate it with the benchmark it was made from")
    samples = selected_samples(bench, info.get("limit"))
    generation = generation_records(run)
    missing = [s.id for s in samples if s.id not in generation]
    if missing:
        raise RunError(f"{len(missing)} of {len(samples)} samples of {run} are not generated yet (e.g. {missing[0]}); "
                       "finish `flashbench generate` (every shard) first")
    if any(p.name != "generation.jsonl" for p in generation_logs(run)):
        merge_generation(run, [s.id for s in samples])
    return info, samples, generation


def evaluate(
    bench: Benchmark,
    run: Path,
    settings: EvalSettings = EvalSettings(),
    segmenter=None,
    features: FeatureExtractor | None = None,
    real_cache: Path | None = None,
    progress: bool = True,
    shard: Shard = UNSHARDED,
    finalize: bool = True,
    verify: Verify | str = Verify.AUTO,
) -> Results | None:
    """Evaluate `run` on `bench`, write samples.jsonl, tracks/, features/ and results.json; return the results.

    segmenter / features: prebuilt components (else built from `settings`). real_cache: folder for the real
    videos' features (default $FLASHBENCH_HOME/features/<benchmark content hash>). shard: score only that
    shard (see the module docstring); returns None while other shards' samples are still unscored, or always
    when `finalize` is False.
    """
    started = time.perf_counter()
    run = Path(run)
    info, samples, generation = check_run(bench, run)
    verified = verify_benchmark(bench, verify)
    features = features if features is not None else build_features(settings)
    check_clip_length(bench, features.settings)  # before any tracking, which takes far longer
    segmenter = segmenter if segmenter is not None else build_segmenter(settings)
    seg_info = segmenter.describe()
    seg_key = _key(seg_info)
    (run / TRACKS).mkdir(exist_ok=True)
    folded = shard.count == 1 and any(p.name != SAMPLES for p in log_files(run, SAMPLES))
    if folded:  # shard logs of an earlier sharded evaluate
        merge_logs(run, SAMPLES, [s.id for s in samples])
    done = merged_records(run, SAMPLES)
    log = run / shard_log_name(shard.index, shard.count, SAMPLES)
    timings = {"segment_seconds": 0.0, "features_seconds": 0.0, "real_features_seconds": 0.0}
    records: dict[str, dict] = {}
    gen_feats: dict[str, dict[str, np.ndarray]] = {}
    todo = [s for s in samples if generation[s.id]["status"] == "ok"]
    label = f"evaluate {info.get('name')}" + (f" [shard {shard.index}/{shard.count}]" if shard.count > 1 else "")
    for sample in tqdm(shard.select(todo), desc=label, unit="video", disable=not progress):
        record, feats = _evaluate_sample(bench, run, sample, generation[sample.id], done.get(sample.id, {}),
                                         segmenter, seg_key, features, timings, log)
        records[sample.id] = record
        if feats is not None:
            gen_feats[sample.id] = feats

    t0 = time.perf_counter()
    cache = Path(real_cache) if real_cache is not None else real_cache_dir(bench.meta.content_hash)
    sources = {s.id: sha256_file(bench.path(s, "video")) for s in shard.select(bench.samples)}
    real = {
        s.id: features.get(cache / f"{s.id}.npz", lambda s=s: bench.path(s, "video"), source=sources[s.id])
        for s in tqdm(shard.select(bench.samples), desc="real features", unit="video", disable=not progress)
    }
    timings["real_features_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ceiling = tracker_ceiling(bench, shard.select(samples), segmenter, seg_key, cache, sources, progress)
    timings["ceiling_seconds"] = time.perf_counter() - t0
    if shard.count > 1:
        write_json(run / f"{SHARD_TIMINGS}{shard.index}-of-{shard.count}.json", timings)
        if not finalize or not _all_scored(run, todo, seg_key):
            return None
        return evaluate(bench, run, settings, segmenter, features, real_cache, progress)  # fold + aggregate
    if folded:  # samples the shards left are appended after the folded ones: back to benchmark order
        merge_logs(run, SAMPLES, [s.id for s in samples])

    t0 = time.perf_counter()
    ok = [records[s.id] for s in samples if s.id in records and records[s.id]["status"] == "ok"]

    def block(scored: list[dict], real_samples: list[Sample]) -> Metrics:
        return metrics_block(scored, generation, gen_feats, {s.id: real[s.id] for s in real_samples},
                             settings.bootstrap, settings.seed)

    overall = block(ok, bench.samples)
    groups = {g: block([r for r in ok if r["group"] == g], members) for g, members in bench.by_group().items()}
    ceiling_ok = [ceiling[s.id] for s in samples if ceiling[s.id]["status"] == "ok"]
    ceiling_block = Ceiling(
        segmenter=str(seg_info.get("segmenter") or seg_info.get("name") or "segmenter"),
        segmenter_key=seg_key,
        overall=tracking_block(ceiling_ok, settings.bootstrap, settings.seed),
        groups={g: tracking_block([r for r in ceiling_ok if r["group"] == g], settings.bootstrap, settings.seed)
                for g in bench.by_group()},
    )
    timings["aggregate_seconds"] = time.perf_counter() - t0
    timings["total_seconds"] = time.perf_counter() - started
    errors = [SampleError(s.id, "generate", generation[s.id]["error"])
              for s in samples if generation[s.id]["status"] != "ok"]
    errors += [SampleError(s.id, "evaluate", records[s.id]["error"])
               for s in samples if s.id in records and records[s.id]["status"] != "ok"]
    results = Results(
        schema_version=SCHEMA_VERSION,
        run=RunInfo.from_record(info),
        overall=overall,
        groups=groups,
        settings={
            **features.settings.describe(),
            "segmenter": seg_info,
            "iou": {"convention": IOU_CONVENTION},
            "objmc": {"convention": OBJMC_CONVENTION},
            "ceiling": {"what": CEILING_TEXT, "segmenter_key": seg_key},
            "bootstrap": {"n": settings.bootstrap, "seed": settings.seed, "ci": "95%",
                          "fid_fvd": FRECHET_INTERVAL_METHOD,
                          "iou": "percentile bootstrap: resample samples with replacement"},
        },
        provenance=provenance.collect(
            device=settings.device,
            weights={**features.settings.weight_hashes(), **_segmenter_weights(seg_info)},
            bench_content_hash=bench.meta.content_hash,
            bench_verified=verified,
            bench_root=str(bench.root.resolve()),
            eval_settings=asdict(settings),
            timings=timings,
            shard_timings=_shard_timings(run),
            torch_threads=_torch_threads(),
            scored_inputs=scored_inputs(run),
        ),
        errors=errors,
        ceiling=ceiling_block,
    )
    write_json(run / RESULTS, results.to_json())
    return results


def check_clip_length(bench: Benchmark, settings: FeatureSettings) -> None:
    """VideoError unless every video of `bench` is long enough for one FVD clip under `settings`."""
    from flashbench.metrics.fvd import MIN_CLIP_LEN

    needed = settings.clip_len if settings.fvd_protocol == "clips" else MIN_CLIP_LEN
    shortest = min(bench.samples, key=lambda s: s.num_frames, default=None)
    if shortest is not None and shortest.num_frames < needed:
        hint = (f"pass --clip-len {max(shortest.num_frames, MIN_CLIP_LEN)} or --fvd-protocol whole-video"
                if shortest.num_frames >= MIN_CLIP_LEN else f"I3D needs >= {MIN_CLIP_LEN} frames: build longer videos")
        raise VideoError(f"{shortest.id} has {shortest.num_frames} frames, fewer than the {needed} of one FVD clip "
                         f"({settings.fvd_protocol}); {hint}")


def build_features(settings: EvalSettings) -> FeatureExtractor:
    """The FID/FVD feature extractor `settings` asks for."""
    return FeatureExtractor(FeatureSettings(settings.fid_stride, settings.clip_len, settings.device,
                                            settings.fvd_protocol))


def build_segmenter(settings: EvalSettings):
    """The segmenter `settings` asks for (WeightsError naming the fetch command when its weights are missing)."""
    from flashbench.metrics.segment.base import load_segmenter

    return load_segmenter(settings.segmenter, settings.device, settings.segmenter_checkpoint, progress=False)


def _torch_threads() -> int:
    """CPU threads torch computes features with (their float sums, hence the last digits, depend on it)."""
    import torch

    return torch.get_num_threads()


def _shard_timings(run: Path) -> dict[str, dict]:
    """{"shard-i-of-N": timings} of the shards since the last aggregation (their files are folded away)."""
    paths = sorted(run.glob(f"{SHARD_TIMINGS}*.json"))
    timings = {path.stem.removeprefix("timings."): read_json(path, "delete it and rerun") for path in paths}
    for path in paths:
        path.unlink(missing_ok=True)
    return timings


def _all_scored(run: Path, todo: list[Sample], seg_key: str) -> bool:
    """Whether every sample in `todo` has a record, in any samples log, made with this segmenter from the
    current video file (what the unsharded pass reuses instead of scoring again)."""
    records = merged_records(run, SAMPLES)
    for sample in todo:
        r = records.get(sample.id)
        path = run / VIDEOS / f"{sample.id}.mp4"
        if r is None or r.get("segmenter_key") != seg_key:
            return False
        if r.get("video_sha256") != (sha256_file(path) if path.is_file() else None):
            return False
    return True


def _segmenter_weights(info: dict) -> dict[str, str]:
    """{segmenter name: checkpoint sha256} from Segmenter.describe(), when it names one."""
    sha = info.get("checkpoint_sha256")
    return {str(info.get("segmenter", "segmenter")): sha} if sha else {}
