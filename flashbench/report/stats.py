"""Bootstrap statistics for confidence intervals and paired significance tests.

Resamples are drawn as `np.random.default_rng(seed).integers(0, n_items, (n_boot, n_items))`, the same
draws `scipy.stats.bootstrap(..., method="percentile", rng=np.random.default_rng(seed))` makes, so intervals are
reproducible and can be checked against scipy. Percentiles use numpy's default (linear) interpolation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flashbench.errors import FlashBenchError


class StatsError(FlashBenchError, ValueError):
    """Input to a bootstrap is empty, not 1-D, or holds NaN/inf."""


def _finite_1d(values, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise StatsError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise StatsError(f"{name} is empty; nothing to bootstrap")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise StatsError(f"{name} holds {bad} NaN/inf value(s); drop failed samples before bootstrapping")
    return array


def bootstrap_indices(n_items: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_items) int64 indices: each row resamples `n_items` items with replacement.

    Use the same rows to resample anything indexed by item (e.g. per-video feature blocks for FID/FVD).
    """
    if n_items < 1 or n_boot < 1:
        raise StatsError(f"need n_items >= 1 and n_boot >= 1, got {n_items}, {n_boot}")
    return np.random.default_rng(seed).integers(0, n_items, (n_boot, n_items))


def bootstrap_ci(
    values,
    n: int = 1000,
    seed: int = 0,
    statistic: Callable[..., np.ndarray] = np.mean,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) confidence interval of `statistic` over 1-D `values`.

    `statistic` is called as `statistic(resamples, axis=-1)` on an (n, len(values)) array (numpy reductions
    such as np.mean and np.median work as is). Raises StatsError on NaN/inf or empty input.
    """
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    array = _finite_1d(values)
    stats = np.asarray(statistic(array[bootstrap_indices(array.size, n, seed)], axis=-1), dtype=np.float64)
    lo, hi = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def paired_bootstrap(a, b, n: int = 10000, seed: int = 0) -> dict:
    """Paired bootstrap of mean(a - b) over per-sample differences (a[i], b[i] measured on the same sample).

    Returns {"delta": mean(a - b), "ci95": [lo, hi] (percentile), "p_value": two-sided p for H0 delta = 0,
    "n": number of pairs}. The null distribution is the bootstrap distribution shifted to mean zero;
    p = (1 + #{|d* - delta| >= |delta|}) / (n + 1), so it is never exactly 0.
    """
    a = _finite_1d(a, "a")
    b = _finite_1d(b, "b")
    if a.shape != b.shape:
        raise StatsError(f"paired samples differ in length: {a.size} vs {b.size}")
    diff = a - b
    delta = float(diff.mean())
    boot = diff[bootstrap_indices(diff.size, n, seed)].mean(axis=-1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    extreme = int((np.abs(boot - delta) >= abs(delta) - 1e-12 * max(1.0, abs(delta))).sum())
    p_value = (1 + extreme) / (n + 1)
    return {
        "delta": delta,
        "ci95": [float(lo), float(hi)],
        "p_value": float(min(1.0, p_value)),
        "n": int(diff.size),
    }
