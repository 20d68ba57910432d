"""Fréchet distance between Gaussians fitted to feature sets (FID, FVD), in float64.

d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)).

tr(sqrt(S1 S2)) is computed without a general (non-symmetric) matrix square root: with R = sqrt(S1) (symmetric
eigendecomposition, eigenvalues clipped at 0), S1 S2 is similar to R S2 R, which is symmetric positive
semi-definite, so tr(sqrt(S1 S2)) = sum_i sqrt(max(lambda_i(R S2 R), 0)). This is exact for PSD inputs, never
complex and never NaN on rank-deficient covariances (where scipy.linalg.sqrtm can fail or go complex).
"""

from __future__ import annotations

import warnings

import numpy as np

from flashbench.errors import FlashBenchError


def _checked(feats: np.ndarray) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2:
        raise FlashBenchError(f"features must be an (N, D) array, got shape {feats.shape}")
    if feats.shape[0] < 2:
        raise FlashBenchError(
            "need at least 2 feature vectors to estimate a covariance; add videos or frames"
        )
    if not np.isfinite(feats).all():
        raise FlashBenchError("features contain NaN or inf; check the videos and the model device/dtype")
    return feats


def _warn_few_samples(n: int, d: int) -> None:
    if n < d:
        warnings.warn(
            f"{n} samples for {d}-d features: the covariance is rank-deficient and the distance is biased; "
            "use more samples (frames/clips) for comparable values",
            stacklevel=3,
        )


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, float64 (as pytorch-fid: np.cov)."""
    feats = _checked(feats)
    _warn_few_samples(*feats.shape)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative eigenvalues from round-off clipped to 0)."""
    vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(sigma1 @ sigma2)) for symmetric PSD sigma1, sigma2."""
    root = _sqrt_psd(sigma1)
    inner = root @ sigma2 @ root
    vals = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(vals, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise FlashBenchError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to features a (N, D) and b (M, D).

    When a set has fewer samples than dimensions (small benchmarks: a few hundred frames vs 2048-d), the same
    value is computed from the centred features X1 (N, D), X2 (M, D) instead of D x D matrices: with
    S1 = X1'X1 / (N-1) and S2 = X2'X2 / (M-1), the non-zero eigenvalues of S1 S2 are the squared singular
    values of X1 X2', so tr(sqrt(S1 S2)) = ||X1 X2'||_* / sqrt((N-1)(M-1)) (nuclear norm): exact, O(N M D).
    """
    a, b = _checked(a), _checked(b)
    if a.shape[1] != b.shape[1]:
        raise FlashBenchError(f"feature sets must have the same dimension, got {a.shape} and {b.shape}")
    (n, d), m = a.shape, b.shape[0]
    if min(n, m) >= d:
        return frechet_distance(*feature_stats(a), *feature_stats(b))
    _warn_few_samples(min(n, m), d)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    x1, x2 = a - mu1, b - mu2
    nuclear = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    diff = mu1 - mu2
    value = diff @ diff + (x1 * x1).sum() / (n - 1) + (x2 * x2).sum() / (m - 1) - 2 * nuclear
    return float(max(value, 0.0))
