"""Confidence intervals for a Fréchet distance (FID, FVD) by half-sampling benchmark samples without replacement.

Why not the bootstrap. Resampling videos WITH replacement puts duplicates in every resample; duplicates shrink
the spread of the features, and the plug-in Fréchet distance of a less diverse set is larger. The bootstrap
distribution then sits far above the estimate (the ground-truth reference scored FID 0.94 with an interval
[28.6, 149.9]) and its percentiles describe the duplication, not the sampling error. A subsample drawn without
replacement holds b distinct videos, so it has no such artefact, only the ordinary dependence of a plug-in
estimate on the sample size, which the centring below removes.

The units. A benchmark sample i gives a real video R_i and (when generation succeeded) a generated video G_i,
conditioned on R_i's first frame; each video contributes all its frames (FID) or clips (FVD) as rows. The
estimate is theta = FD(rows of G_1..G_n, rows of R_1..R_n plus the real videos whose generation failed). The
units of sampling are the n samples with both videos: resampling them in pairs keeps the dependence between a
generated video and its own real video (for the ground-truth reference G_i = R_i, and every subsample's
distance stays ~0, as it should), and resampling whole videos keeps the frames of a video together. Real
videos without a generated counterpart are kept in every subsample (their sampling error is left out).

The rescaling. Draw subsets S_1..S_K of b = ceil(n/2) of the n units without replacement (all C(n, b) subsets
when there are at most K of them, else K seeded random ones) and compute theta_j = FD on S_j. For a statistic
that is asymptotically linear in the units, theta = theta_0 + (1/n) sum_i psi_i + o(n^-1/2), sampling b of n
without replacement gives Var*(theta_b) = (b^-1 - n^-1) S^2 (finite-population correction, S^2 the spread of
the psi_i), while Var(theta) = S^2 / n; hence Var(theta) = (b / (n - b)) Var*(theta_b): the deviations
theta_j - centre, times k = sqrt(b / (n - b)) (k = 1 for even n: half-sampling), mimic theta - E[theta]. This is
the delete-d jackknife with d = n - b (Shao & Wu 1989) and subsampling (Politis & Romano 1994) with its
finite-population factor; d ~ n/2 makes it valid for non-smooth statistics as well (the distance has a kink at
0, where sqrt of the covariance eigenvalues is not differentiable).

The interval. D_j = k (theta_j - median_j theta_j); the 1 - alpha interval is the basic (reverse-percentile)
one, [theta - q_{1-alpha/2}(D), theta - q_{alpha/2}(D)], with the lower end clipped at 0 (a distance is >= 0).
Centring on the median of the theta_j makes q_{alpha/2}(D) <= 0 <= q_{1-alpha/2}(D), so the interval always
contains theta, and it removes the shift of theta_b's mean (a plug-in distance from b < n videos is larger
than one from n). It is an interval for E[theta], the distance this generator scores on a benchmark of this
size: with fewer rows than feature dimensions (see frechet.py's warning) the plug-in distance itself is biased
upwards by O(D / rows), and that bias, shared by every model scored on the same benchmark, is not removed.
Tests (tests/test_intervals.py): on N(0, I) vs N(mu, I) with a known distance |mu|^2, 95% intervals cover it in
the stated fraction of seeded repetitions.

Cost: one distance per draw, O(N M D) when a set has fewer rows than dimensions, O((N + M) D^2 + D^3) otherwise.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np

from flashbench.errors import FlashBenchError
from flashbench.metrics.frechet import fid_from_features

METHOD = ("paired half-sampling of benchmark samples without replacement (b = ceil(n/2) of n, real and generated "
          "video of a sample together), basic interval of k (FD_b - median FD_b), k = sqrt(b/(n-b)), clipped at 0; "
          "contains the estimate; real videos without a generated one kept in every subsample")


def half_subsets(n: int, draws: int, seed: int) -> np.ndarray:
    """(K, b) int64 unit indices, b = ceil(n/2): every b-subset of range(n) when there are at most `draws` of
    them (K = C(n, b)), else `draws` seeded random subsets without replacement (each row sorted)."""
    if n < 2 or draws < 1:
        raise FlashBenchError(f"half-sampling needs n >= 2 units and >= 1 draw, got n={n}, draws={draws}")
    b = math.ceil(n / 2)
    if math.comb(n, b) <= draws:
        return np.array(list(itertools.combinations(range(n), b)), dtype=np.int64)
    keys = np.random.default_rng(seed).random((draws, n))
    return np.sort(np.argsort(keys, axis=1)[:, :b], axis=1)


def frechet_interval(
    estimate: float,
    gen: list[np.ndarray],
    real: list[np.ndarray],
    real_only: list[np.ndarray] | tuple = (),
    draws: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[float]:
    """[lo, hi]: the 1 - alpha interval around `estimate`, the Fréchet distance of the pooled rows (computed by
    the caller, e.g. frechet.fid_from_features(concat(gen), concat(real + real_only)); lo <= estimate <= hi).

    gen[i], real[i]: (rows, D) features of the generated and the real video of benchmark sample i (n >= 2
    pairs); real_only: real videos whose generated video is missing, in the real set of every subsample.
    See the module docstring for the method.
    """
    if len(gen) != len(real) or len(gen) < 2:
        raise FlashBenchError(f"need >= 2 (generated, real) pairs of feature blocks, got {len(gen)} and {len(real)}")
    if not 0 < alpha < 1:
        raise FlashBenchError(f"alpha must be in (0, 1), got {alpha}")
    gen = [np.asarray(g, dtype=np.float64) for g in gen]
    real = [np.asarray(r, dtype=np.float64) for r in real]
    fixed = [np.asarray(r, dtype=np.float64) for r in real_only]
    n = len(gen)
    subsets = half_subsets(n, draws, seed)
    b = subsets.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rank-deficiency warning is the caller's (once, for the estimate)
        values = np.array([
            fid_from_features(np.concatenate([gen[i] for i in row]), np.concatenate([real[i] for i in row] + fixed))
            for row in subsets
        ])
    deviations = math.sqrt(b / (n - b)) * (values - np.median(values))
    q_lo, q_hi = np.percentile(deviations, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return [max(estimate - float(q_hi), 0.0), estimate - float(q_lo)]
