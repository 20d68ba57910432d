"""Fréchet distance vs independent references: scipy.linalg.sqrtm formula and pytorch-fid."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy import linalg

from flashbench.metrics.frechet import feature_stats, fid_from_features, frechet_distance


def _scipy_reference(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_scipy_and_pytorch_fid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24))
    b = rng.normal(loc=0.5, size=(250, 24)) @ rng.normal(size=(24, 24))
    ours = fid_from_features(a, b)
    assert ours == pytest.approx(_scipy_reference(a, b), rel=1e-6)
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    assert ours == pytest.approx(float(calculate_frechet_distance(mu1, s1, mu2, s2)), rel=1e-6)
    assert frechet_distance(mu1, s1, mu2, s2) == ours


def test_identical_sets_give_zero() -> None:
    a = np.random.default_rng(2).normal(size=(100, 8))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-9)


def test_rank_deficient_is_finite_and_exact() -> None:
    rng = np.random.default_rng(3)
    # Identical rows: both covariances are exactly zero; the distance is the squared mean difference.
    a = np.repeat(rng.normal(size=(1, 50)), 8, axis=0)
    b = np.repeat(rng.normal(size=(1, 50)), 8, axis=0)
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fid_from_features(a, b)
    assert value == pytest.approx(float(((a[0] - b[0]) ** 2).sum()), rel=1e-12)
    # Low-rank covariances (6 samples, 40 dims): compare to the eigenvalues of the (non-symmetric) product.
    a, b = rng.normal(size=(6, 40)), rng.normal(size=(6, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = fid_from_features(a, b)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2).real
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig.clip(0)).sum()
    assert np.isfinite(value)
    assert value == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize(("n", "m"), [(6, 9), (30, 12), (12, 40)])
def test_low_rank_shortcut_equals_covariance_path(n: int, m: int) -> None:
    """fid_from_features with fewer samples than dims (nuclear norm) == the D x D eigen path == sqrtm formula."""
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=(n, 20)), rng.normal(loc=0.3, size=(m, 20)) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shortcut = fid_from_features(a, b)
        full = frechet_distance(*feature_stats(a), *feature_stats(b))
    assert shortcut == pytest.approx(full, rel=1e-6)  # the D x D path carries sqrt(round-off) terms
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2).real
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig.clip(0)).sum()
    assert shortcut == pytest.approx(ref, rel=1e-6)


def test_warns_only_when_fewer_samples_than_dims() -> None:
    rng = np.random.default_rng(4)
    with pytest.warns(UserWarning, match="3 samples for 5-d"):
        feature_stats(rng.normal(size=(3, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feature_stats(rng.normal(size=(6, 5)))


def test_bad_inputs_raise_one_line_errors() -> None:
    from flashbench.errors import FlashBenchError

    with pytest.raises(FlashBenchError, match="NaN"):
        feature_stats(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(FlashBenchError, match="same dimension"):
        fid_from_features(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(FlashBenchError, match="at least 2"):
        feature_stats(np.zeros((1, 3)))
