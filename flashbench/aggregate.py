"""Group and overall metrics of an evaluated run (the METRICS block of results.json) with 95% intervals.

IoU intervals: percentile bootstrap over samples (flashbench.report.stats.bootstrap_ci); the IoU is a mean over
samples, for which resampling with replacement is right. FID/FVD intervals: paired half-sampling of benchmark
samples without replacement (flashbench.metrics.frechet_interval, where the maths is): the bootstrap's duplicate
videos inflate a Fréchet distance, so its intervals missed their own estimate. Seeded: reruns give identical
numbers. The block is a flashbench.results.Metrics (its invariants are stated there).
"""

from __future__ import annotations

import warnings

import numpy as np

from flashbench.metrics.frechet import fid_from_features
from flashbench.metrics.frechet_interval import frechet_interval
from flashbench.report.stats import bootstrap_ci
from flashbench.results import CI_KEYS, FRECHET_KEYS, METRIC_KEYS, Metrics

MIN_VIDEOS = 2  # per set (generated and real) for a Fréchet distance
# Fréchet intervals need enough generated videos that the half-samples are many and not degenerate
# (with 4 videos there are only 6 half-samples of 2 videos each).
MIN_CI_VIDEOS = 5


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _frechet(
    kind: str, gen: list[np.ndarray], real: list[np.ndarray], real_only: list[np.ndarray], n_boot: int, seed: int,
    notes: list[str], reasons: dict[str, str], rank_deficient: dict[str, list[int]],
) -> tuple[float | None, list[float] | None]:
    """FD of the pooled generated rows vs the pooled real rows (real[i] is gen[i]'s own real video; real_only:
    real videos whose generated one is missing) and its interval; why it is None goes to reasons[kind], and
    [rows, dims] to rank_deficient[kind] when either set has fewer rows than dimensions."""
    real_set = real + real_only
    if len(gen) < MIN_VIDEOS or len(real_set) < MIN_VIDEOS:
        reasons[kind] = (f"{kind.upper()} not computed: {len(gen)} generated and {len(real_set)} real videos, "
                         f"need >= {MIN_VIDEOS} of each")
        notes.append(reasons[kind])
        return None, None
    gen_feats, real_feats = np.concatenate(gen), np.concatenate(real_set)
    rows, dims = min(len(gen_feats), len(real_feats)), gen_feats.shape[1]
    if rows < dims:
        rank_deficient[kind] = [rows, dims]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fid_from_features(gen_feats, real_feats)
    notes.extend(f"{kind.upper()}: {w.message}" for w in caught)
    ci = None
    if n_boot and len(gen) >= MIN_CI_VIDEOS:
        ci = frechet_interval(value, gen, real, real_only, draws=n_boot, seed=seed)
    elif n_boot:
        notes.append(f"{kind.upper()} CI not computed: {len(gen)} generated videos, need >= {MIN_CI_VIDEOS}")
    return value, ci


def metrics_block(
    samples: list[dict],
    generation: dict[str, dict],
    gen_features: dict[str, dict[str, np.ndarray]],
    real_features: dict[str, dict[str, np.ndarray]],
    n_boot: int,
    seed: int,
) -> Metrics:
    """METRICS for one group (or overall). Every metric that is None has its one-line cause in
    `reasons[metric]` (what reports print beside the empty cell); `notes` holds every remark.

    samples: scored samples.jsonl records (status ok), in benchmark order; generation: generation records by id;
    gen_features: {"fid", "fvd"} arrays per sample id; real_features: the real set's per-video arrays by sample
    id, in benchmark order (every scored sample's id among them: its real video pairs with its generated one).
    n_boot = 0 skips the intervals; otherwise it is the number of resamples (IoU) and of half-samples (FID/FVD).
    """
    notes: list[str] = []
    reasons: dict[str, str] = {}
    rank_deficient: dict[str, list[int]] = {}
    ids = [s["id"] for s in samples]
    mask = [s["mask_iou"] for s in samples if s["mask_iou"] is not None]  # None: box-only ground truth
    box = [s["box_iou"] for s in samples]
    ci: dict[str, list[float] | None] = dict.fromkeys(CI_KEYS)
    if len(mask) < len(samples):
        notes.append(f"mask IoU over {len(mask)} of {len(samples)} samples (the others have box-only ground truth)")
    single = [key for key, values in (("mask", mask), ("box", box)) if len(values) == 1]
    for key, values in (("mask_iou", mask), ("box_iou", box)):
        if n_boot and len(values) >= 2:
            lo, hi = bootstrap_ci(values, n=n_boot, seed=seed)
            ci[key] = [100 * lo, 100 * hi]
    if n_boot and single:
        notes.append(f"{'IoU CIs' if len(single) == 2 else single[0] + ' IoU CI'} not computed: a single sample")
    values: dict[str, float | None] = {}
    scored = set(ids)
    unpaired = [i for i in real_features if i not in scored]
    for kind in FRECHET_KEYS:
        values[kind], ci[kind] = _frechet(
            kind, [gen_features[i][kind] for i in ids], [real_features[i][kind] for i in ids],
            [real_features[i][kind] for i in unpaired], n_boot, seed, notes, reasons, rank_deficient,
        )
    mean_mask, mean_box = _mean(mask), _mean(box)
    values["mask_iou"] = None if mean_mask is None else 100 * mean_mask
    values["box_iou"] = None if mean_box is None else 100 * mean_box
    values["denoise_seconds"] = _mean([generation[i]["denoise_seconds"] for i in ids])
    values["nfe"] = _mean([generation[i]["nfe"] for i in ids])
    if not samples:
        notes.append("no scored samples in this group")
        reasons.update(dict.fromkeys(METRIC_KEYS, notes[-1]))
    elif mean_mask is None:
        reasons["mask_iou"] = "no mask IoU: every sample has box-only ground truth"
    return Metrics(n=len(samples), **values, ci95=ci, notes=notes, reasons=reasons, rank_deficient=rank_deficient)
