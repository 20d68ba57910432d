"""Group and overall metrics of an evaluated run (the METRICS block of results.json) with bootstrap CIs.

IoU CIs resample samples (flashbench.report.stats.bootstrap_ci). FID/FVD CIs resample the GENERATED videos
with replacement (all frames/clips of a drawn video go together) and recompute the Fréchet distance from the
pooled features of each resample against the fixed real set: the reference set is shared by every model on
the leaderboard, so its own sampling noise is common to all of them and left out. Percentile intervals
(2.5, 97.5); seeded, so reruns give identical numbers. Resampled FID is biased upwards (duplicate videos
shrink the diversity), so an interval may lie above the point value.
"""

from __future__ import annotations

import warnings

import numpy as np

from flashbench.metrics.frechet import feature_stats, fid_from_features
from flashbench.report.stats import bootstrap_ci, bootstrap_indices

MIN_VIDEOS = 2  # per set (generated and real) for a Fréchet distance
# Fréchet CIs need enough generated videos that a resample rarely collapses to one or two distinct videos
# (with 3 videos 1 in 9 resamples is a single video repeated, whose covariance is degenerate).
MIN_CI_VIDEOS = 5


class FrechetBootstrap:
    """Fréchet distances of resampled generated sets against one fixed real set, fast.

    With any factor F of the real covariance (S_real = F F'), tr sqrt(S_gen S_real) = tr sqrt(F' S_gen F) = the
    sum of singular values of (G - mean G) / sqrt(n - 1), G = X_gen F. F is the centred real features
    / sqrt(m - 1) (D x m) when the real set has m < D rows, else the symmetric square root of S_real (one
    D x D eigendecomposition); each resample then costs one small SVD.
    """

    def __init__(self, real: np.ndarray):
        real = np.asarray(real, dtype=np.float64)
        m, d = real.shape
        if m < d:
            self.mu_real = real.mean(axis=0)
            centered = real - self.mu_real
            self.trace_real = float((centered**2).sum() / (m - 1))
            self.factor = centered.T / np.sqrt(m - 1)
        else:
            self.mu_real, sigma = feature_stats(real)
            vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
            self.trace_real = float(np.trace(sigma))
            self.factor = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T

    def distance(self, gen: np.ndarray) -> float:
        """Fréchet distance of the (n, D) generated features to the real set (n >= 2)."""
        gen = np.asarray(gen, dtype=np.float64)
        return self._distance(gen, gen @ self.factor)

    def _distance(self, gen: np.ndarray, projected: np.ndarray) -> float:
        n = gen.shape[0]
        mean = gen.mean(axis=0)
        g = (projected - projected.mean(axis=0)) / np.sqrt(n - 1)
        trace_sqrt = float(np.linalg.svd(g, compute_uv=False).sum())
        diff = mean - self.mu_real
        trace_gen = float(((gen - mean) ** 2).sum() / (n - 1))
        return max(float(diff @ diff + trace_gen + self.trace_real - 2 * trace_sqrt), 0.0)

    def interval(self, blocks: list[np.ndarray], n_boot: int, seed: int) -> list[float]:
        """95% percentile interval over `n_boot` resamples of the per-video feature blocks."""
        blocks = [np.asarray(b, dtype=np.float64) for b in blocks]
        projected = [b @ self.factor for b in blocks]
        values = [
            self._distance(np.concatenate([blocks[i] for i in row]), np.concatenate([projected[i] for i in row]))
            for row in bootstrap_indices(len(blocks), n_boot, seed)
        ]
        lo, hi = np.percentile(values, [2.5, 97.5])
        return [float(lo), float(hi)]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _frechet(
    kind: str, gen: list[np.ndarray], real: list[np.ndarray], n_boot: int, seed: int, notes: list[str]
) -> tuple[float | None, list[float] | None]:
    if len(gen) < MIN_VIDEOS or len(real) < MIN_VIDEOS:
        notes.append(f"{kind.upper()} not computed: {len(gen)} generated and {len(real)} real videos, "
                     f"need >= {MIN_VIDEOS} of each")
        return None, None
    gen_feats, real_feats = np.concatenate(gen), np.concatenate(real)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fid_from_features(gen_feats, real_feats)
    notes.extend(f"{kind.upper()}: {w.message}" for w in caught)
    ci = None
    if n_boot and len(gen) >= MIN_CI_VIDEOS:
        ci = FrechetBootstrap(real_feats).interval(gen, n_boot, seed)
    elif n_boot:
        notes.append(f"{kind.upper()} CI not computed: {len(gen)} generated videos, need >= {MIN_CI_VIDEOS}")
    return value, ci


def metrics_block(
    samples: list[dict],
    generation: dict[str, dict],
    gen_features: dict[str, dict[str, np.ndarray]],
    real_features: list[dict[str, np.ndarray]],
    n_boot: int,
    seed: int,
) -> dict:
    """METRICS for one group (or overall).

    samples: scored samples.jsonl records (status ok), in benchmark order; generation: generation records by id;
    gen_features: {"fid", "fvd"} arrays per sample id; real_features: the real set's per-video arrays.
    n_boot = 0 skips the CIs.
    """
    notes: list[str] = []
    ids = [s["id"] for s in samples]
    mask = [s["mask_iou"] for s in samples if s["mask_iou"] is not None]  # None: box-only ground truth
    box = [s["box_iou"] for s in samples]
    ci: dict[str, list[float] | None] = {"fid": None, "fvd": None, "mask_iou": None, "box_iou": None}
    if len(mask) < len(samples):
        notes.append(f"mask IoU over {len(mask)} of {len(samples)} samples (the others have box-only ground truth)")
    single = [key for key, values in (("mask", mask), ("box", box)) if len(values) == 1]
    for key, values in (("mask_iou", mask), ("box_iou", box)):
        if n_boot and len(values) >= 2:
            lo, hi = bootstrap_ci(values, n=n_boot, seed=seed)
            ci[key] = [100 * lo, 100 * hi]
    if n_boot and single:
        notes.append(f"{'IoU CIs' if len(single) == 2 else single[0] + ' IoU CI'} not computed: a single sample")
    out: dict = {"n": len(samples)}
    for kind in ("fid", "fvd"):
        out[kind], ci[kind] = _frechet(
            kind, [gen_features[i][kind] for i in ids], [r[kind] for r in real_features], n_boot, seed, notes
        )
    mean_mask, mean_box = _mean(mask), _mean(box)
    out["mask_iou"] = None if mean_mask is None else 100 * mean_mask
    out["box_iou"] = None if mean_box is None else 100 * mean_box
    out["denoise_seconds"] = _mean([generation[i]["denoise_seconds"] for i in ids])
    out["nfe"] = _mean([generation[i]["nfe"] for i in ids])
    out["ci95"] = ci
    if not samples:
        notes.append("no scored samples in this group")
    out["notes"] = notes
    return out
