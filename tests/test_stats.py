"""Bootstrap statistics against scipy and textbook large-sample results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from flashbench.errors import FlashBenchError
from flashbench.report.stats import bootstrap_ci, bootstrap_indices, paired_bootstrap


def test_bootstrap_indices_shape_range_and_determinism():
    idx = bootstrap_indices(7, 50, seed=3)
    assert idx.shape == (50, 7) and idx.dtype.kind == "i"
    assert idx.min() >= 0 and idx.max() <= 6
    assert np.array_equal(idx, bootstrap_indices(7, 50, seed=3))
    assert not np.array_equal(idx, bootstrap_indices(7, 50, seed=4))


@pytest.mark.parametrize("statistic", [np.mean, np.median])
def test_bootstrap_ci_matches_scipy_percentile_with_same_resamples(statistic):
    values = np.random.default_rng(1).gamma(2.0, 3.0, size=40)
    ours = bootstrap_ci(values, n=2000, seed=11, statistic=statistic)
    ref = sps.bootstrap(
        (values,),
        statistic,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(11),
        vectorized=True,
    ).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), rel=1e-12)


def test_bootstrap_ci_agrees_with_normal_theory_on_large_sample():
    values = np.random.default_rng(2).normal(5.0, 2.0, size=4000)
    lo, hi = bootstrap_ci(values, n=2000, seed=0)
    half = 1.959964 * values.std(ddof=1) / np.sqrt(values.size)
    assert lo == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert hi == pytest.approx(values.mean() + half, abs=0.15 * half)
    # a scipy interval from independent resamples agrees within Monte-Carlo error
    ref = sps.bootstrap(
        (values,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(99)
    )
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.1 * half)


def test_bootstrap_ci_alpha_widens_interval():
    values = np.random.default_rng(3).normal(size=100)
    lo95, hi95 = bootstrap_ci(values, alpha=0.05)
    lo80, hi80 = bootstrap_ci(values, alpha=0.2)
    assert lo95 < lo80 < hi80 < hi95


@pytest.mark.parametrize("bad", [[1.0, np.nan, 2.0], [1.0, np.inf], [], [[1.0, 2.0]]])
def test_bootstrap_ci_rejects_bad_input(bad):
    with pytest.raises(FlashBenchError):
        bootstrap_ci(bad)


def test_paired_bootstrap_detects_known_positive_shift():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.3, 0.9, size=60)  # large between-sample spread ...
    better = base + 0.02 + rng.normal(0, 0.01, size=60)  # ... small consistent paired gain
    res = paired_bootstrap(better, base, n=5000, seed=0)
    assert res["n"] == 60
    assert res["delta"] == pytest.approx(np.mean(better - base))
    assert res["delta"] > 0 and res["ci95"][0] > 0
    assert res["p_value"] < 0.001
    # swapping the arguments flips the sign, not the significance
    swapped = paired_bootstrap(base, better, n=5000, seed=0)
    assert swapped["delta"] == pytest.approx(-res["delta"]) and swapped["ci95"][1] < 0
    # an unpaired view of the same data would not be significant: pairing matters
    assert sps.ttest_ind(better, base).pvalue > 0.05


def test_paired_bootstrap_p_value_close_to_paired_t_test():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, size=400)
    b = a + rng.normal(-0.1, 1, size=400)  # mean difference a - b = +0.1, sd 1 -> t about 2
    res = paired_bootstrap(a, b, n=20000, seed=1)
    ref = sps.ttest_rel(a, b).pvalue
    assert 0.001 < ref < 0.2
    assert res["p_value"] == pytest.approx(ref, rel=0.25)


def test_paired_bootstrap_null_and_errors():
    x = np.random.default_rng(6).normal(size=30)
    assert paired_bootstrap(x, x)["p_value"] == 1.0
    with pytest.raises(FlashBenchError):
        paired_bootstrap(x, x[:-1])
    with pytest.raises(FlashBenchError):
        paired_bootstrap(np.append(x[:-1], np.nan), x)
