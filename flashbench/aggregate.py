"""Group and overall metrics of an evaluated run (the METRICS block of results.json) with 95% intervals.

IoU and ObjMC intervals: percentile bootstrap over samples (flashbench.report.stats.bootstrap_ci); they are
means over samples, for which resampling with replacement is right. FID/FVD intervals: paired half-sampling of benchmark
samples without replacement (flashbench.metrics.frechet_interval, where the maths is): the bootstrap's duplicate
videos inflate a Fréchet distance, so its intervals missed their own estimate. Seeded: reruns give identical
numbers. The block is a flashbench.results.Metrics (its invariants are stated there); `tracking_block` makes the
tracker ceiling's blocks (IoU and ObjMC only).
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


# per-sample score (a samples.jsonl field and METRICS key) -> its scale in METRICS: IoUs and the normalised
# ObjMC in percent, ObjMC in pixels
PER_SAMPLE = {"mask_iou": 100.0, "box_iou": 100.0, "objmc": 1.0, "objmc_norm": 100.0}


def _per_sample_means(
    samples: list[dict], n_boot: int, seed: int, notes: list[str], reasons: dict[str, str],
    ci: dict[str, list[float] | None],
) -> dict[str, float | None]:
    """Means over samples of the per-sample scores (PER_SAMPLE), their percentile-bootstrap intervals into `ci`;
    a sample's None (box-only ground truth has no mask IoU) is left out of that mean."""
    values: dict[str, float | None] = {}
    columns = {key: [s[key] for s in samples if s.get(key) is not None] for key in PER_SAMPLE}
    if len(columns["mask_iou"]) < len(samples):
        notes.append(f"mask IoU over {len(columns['mask_iou'])} of {len(samples)} samples (the others have "
                     "box-only ground truth)")
    single = [key for key, v in (("mask", columns["mask_iou"]), ("box", columns["box_iou"])) if len(v) == 1]
    if n_boot and single:
        notes.append(f"{'IoU CIs' if len(single) == 2 else single[0] + ' IoU CI'} not computed: a single sample")
    for key, scale in PER_SAMPLE.items():
        column = columns[key]
        values[key] = scale * float(np.mean(column)) if column else None
        if n_boot and len(column) >= 2:
            lo, hi = bootstrap_ci(column, n=n_boot, seed=seed)
            ci[key] = [scale * lo, scale * hi]
        if samples and not column:
            reasons[key] = ("no mask IoU: every sample has box-only ground truth" if key == "mask_iou"
                            else f"no {key} in the samples' records")
    return values


def tracking_block(samples: list[dict], n_boot: int, seed: int) -> Metrics:
    """A METRICS block of tracking scores only (IoU, ObjMC), e.g. the tracker ceiling's: FID/FVD and the
    generation cost are None, with that reason."""
    notes: list[str] = []
    reasons = dict.fromkeys(("fid", "fvd", "denoise_seconds", "nfe"), "tracking scores only (tracker ceiling)")
    ci: dict[str, list[float] | None] = dict.fromkeys(CI_KEYS)
    values = _per_sample_means(samples, n_boot, seed, notes, reasons, ci)
    if not samples:
        notes.append("no scored samples in this group")
        reasons.update(dict.fromkeys(METRIC_KEYS, notes[-1]))
    return Metrics(n=len(samples), **values, ci95=ci, notes=notes, reasons=reasons)


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
    n_boot = 0 skips the intervals; otherwise it is the number of resamples (IoU, ObjMC) and of half-samples
    (FID/FVD).
    """
    notes: list[str] = []
    reasons: dict[str, str] = {}
    rank_deficient: dict[str, list[int]] = {}
    ids = [s["id"] for s in samples]
    ci: dict[str, list[float] | None] = dict.fromkeys(CI_KEYS)
    values = _per_sample_means(samples, n_boot, seed, notes, reasons, ci)
    scored = set(ids)
    unpaired = [i for i in real_features if i not in scored]
    for kind in FRECHET_KEYS:
        values[kind], ci[kind] = _frechet(
            kind, [gen_features[i][kind] for i in ids], [real_features[i][kind] for i in ids],
            [real_features[i][kind] for i in unpaired], n_boot, seed, notes, reasons, rank_deficient,
        )
    values["denoise_seconds"] = _mean([generation[i]["denoise_seconds"] for i in ids])
    values["nfe"] = _mean([generation[i]["nfe"] for i in ids])
    if not samples:
        notes.append("no scored samples in this group")
        reasons.update(dict.fromkeys(METRIC_KEYS, notes[-1]))
    return Metrics(n=len(samples), **values, ci95=ci, notes=notes, reasons=reasons, rank_deficient=rank_deficient)
