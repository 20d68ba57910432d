"""FID/FVD intervals (flashbench.metrics.frechet_interval): coverage where the true distance is known, the
estimate always inside, and the failure of the with-replacement bootstrap they replace.

Coverage: generated features N(mu, I_d), real features N(0, I_d), so the true Fréchet distance is |mu|^2. Each
of 100 seeded repetitions draws n "videos" of 5 feature rows per set, computes the plug-in distance and its 95%
interval from 200 half-samples. Measured (seeds 1000..1099), new intervals vs the old with-replacement
bootstrap of generated videos against the fixed real set:
- d = 2, n = 20, mu = (1, 0.5), |mu|^2 = 1.25: 89/100 cover the truth (old: 73/100);
- d = 4, n = 40, mu = (.5, .5, 0, 0), |mu|^2 = 0.5: 95/100 (old: 62/100);
- d = 2, n = 20, mu = (1, 0.5), plus a per-video offset N(0, I) shared by a video's rows (frames of one video
  are alike, so rows are not independent): 89/100 (old: 72/100).
The mean widths are 0.86, 0.93 and 0.74 times 2 x 1.96 x the Monte-Carlo standard deviation of the estimates,
so the coverage does not come from overly wide intervals.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from flashbench.errors import FlashBenchError
from flashbench.metrics.frechet import fid_from_features
from flashbench.metrics.frechet_interval import frechet_interval, half_subsets
from flashbench.report.stats import bootstrap_indices

ROWS, REPS, DRAWS = 5, 100, 200


def _fd(gen: list[np.ndarray], real: list[np.ndarray]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fid_from_features(np.concatenate(gen), np.concatenate(real))


@pytest.mark.parametrize(
    ("n", "mu", "tau", "min_cover"),
    [(20, (1.0, 0.5), 0.0, 85), (40, (0.5, 0.5, 0.0, 0.0), 0.0, 85), (20, (1.0, 0.5), 1.0, 85)],
)
def test_95_percent_intervals_cover_the_true_distance_of_two_gaussians(n, mu, tau, min_cover):
    mu = np.array(mu)
    truth = float(mu @ mu)
    covered, widths, estimates = 0, [], []
    for rep in range(REPS):
        rng = np.random.default_rng(1000 + rep)
        # tau: a per-video offset shared by its rows (frames of one video are alike); both sets then have
        # covariance (1 + tau^2) I and the distance stays |mu|^2
        gen = [rng.normal(size=(ROWS, mu.size)) + mu + tau * rng.normal(size=(1, mu.size)) for _ in range(n)]
        real = [rng.normal(size=(ROWS, mu.size)) + tau * rng.normal(size=(1, mu.size)) for _ in range(n)]
        estimate = _fd(gen, real)
        lo, hi = frechet_interval(estimate, gen, real, draws=DRAWS, seed=rep)
        assert 0 <= lo <= estimate <= hi
        covered += lo <= truth <= hi
        widths.append(hi - lo)
        estimates.append(estimate)
    assert min_cover <= covered <= REPS
    normal_width = 2 * 1.96 * np.std(estimates)  # the width a 95% interval would have with the true spread
    assert 0.6 * normal_width <= np.mean(widths) <= 1.4 * normal_width


def test_identical_sets_get_a_tight_interval_around_zero_where_the_bootstrap_missed_it():
    """The issue's case: the ground-truth reference (generated = real videos) with fewer rows than dimensions."""
    rng = np.random.default_rng(0)
    real = [rng.normal(size=(3, 64)) for _ in range(6)]
    gen = [r + 0.01 * rng.normal(size=r.shape) for r in real]  # the codec's small changes
    estimate = _fd(gen, real)
    lo, hi = frechet_interval(estimate, gen, real, draws=1000, seed=0)
    assert lo <= estimate <= hi and hi < 2 * estimate + 1e-3
    # what the old intervals did: resampling generated videos with replacement against the fixed real set
    pooled = np.concatenate(real)
    resampled = [_fd([gen[i] for i in row], [pooled]) for row in bootstrap_indices(len(gen), 200, 0)]
    assert np.percentile(resampled, 2.5) > 100 * estimate  # the whole bootstrap interval lies far above


def test_interval_is_the_rescaled_spread_of_the_half_sample_distances():
    rng = np.random.default_rng(3)
    gen = [rng.normal(size=(int(rng.integers(2, 5)), 8)) + 0.3 for _ in range(7)]
    real = [rng.normal(size=(int(rng.integers(2, 5)), 8)) for _ in range(7)]
    real_only = [rng.normal(size=(3, 8))]  # a sample whose generation failed: its real video is always in
    estimate = _fd(gen, real + real_only)
    subsets = half_subsets(7, 50, seed=1)
    assert subsets.shape == (35, 4)  # C(7, 4) = 35 <= 50 draws: every subset, once
    values = np.array([_fd([gen[i] for i in s], [real[i] for i in s] + real_only) for s in subsets])
    dev = math.sqrt(4 / 3) * (values - np.median(values))
    expected = [max(estimate - np.percentile(dev, 97.5), 0), estimate - np.percentile(dev, 2.5)]
    assert frechet_interval(estimate, gen, real, real_only, draws=50, seed=1) == pytest.approx(expected, rel=1e-12)


def test_half_subsets_are_seeded_distinct_draws_without_replacement():
    rows = half_subsets(30, 100, seed=5)
    assert rows.shape == (100, 15) and rows.min() >= 0 and rows.max() < 30
    assert all(len(set(r)) == 15 and list(r) == sorted(r) for r in rows)
    assert np.array_equal(rows, half_subsets(30, 100, seed=5)) and not np.array_equal(rows, half_subsets(30, 100, 6))
    assert len({tuple(r) for r in half_subsets(5, 1000, 0)}) == math.comb(5, 3)  # all of them when few
    with pytest.raises(FlashBenchError, match="n >= 2"):
        half_subsets(1, 10, 0)
    with pytest.raises(FlashBenchError, match="pairs"):
        frechet_interval(1.0, [np.zeros((2, 3))] * 3, [np.zeros((2, 3))] * 2)
