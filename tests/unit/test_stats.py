"""Tests for truthmap.stats: the AUC, its bootstrap interval, mid-ranks.

References are independent of the module: scikit-learn's ``roc_auc_score``, a
pairwise Mann-Whitney count, and scipy's ``rankdata``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from truthmap.stats import bootstrap_auc, rankdata, resampled_aucs, roc_auc, stratified_resamples


def pairwise_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC as P(pos > neg) + P(pos == neg) / 2, over the last axis (batched)."""
    diff = pos[..., :, None] - neg[..., None, :]
    return ((diff > 0).mean(axis=(-2, -1)) + 0.5 * (diff == 0).mean(axis=(-2, -1)))


# --------------------------------------------------------------------------- roc_auc


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=57)
    scores = rng.normal(size=57) + 0.7 * y
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(100 + seed)
    y = rng.integers(0, 2, size=80)
    scores = rng.integers(0, 4, size=80).astype(float)  # many ties, within and across classes
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_all_tied_is_one_half():
    assert roc_auc(np.array([0, 1, 0, 1]), np.zeros(4)) == pytest.approx(0.5)


def test_roc_auc_extremes():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0


@pytest.mark.parametrize("y", [np.zeros(5, int), np.ones(5, int), np.array([], int)])
def test_roc_auc_single_class_is_nan(y):
    assert math.isnan(roc_auc(y, np.arange(len(y), dtype=float)))


# --------------------------------------------------------------------------- resampled_aucs


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_resampled_aucs_are_the_pairwise_count_and_the_rank_sum_bit_for_bit(seed, chunk):
    rng = np.random.default_rng(seed)
    n = 40 + 30 * seed
    y = rng.random(n) < 0.3 + 0.08 * seed
    y[:2] = [True, False]
    scores = rng.normal(size=n) if seed % 2 else rng.integers(0, 5, size=n).astype(float)  # ties
    pos, neg = stratified_resamples(y, 50, seed)
    got = resampled_aucs(scores, (pos, neg), chunk=chunk)
    np.testing.assert_allclose(got, pairwise_auc(scores[pos], scores[neg]), rtol=0, atol=1e-12)
    n_pos, n_neg = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.concatenate([scores[pos], scores[neg]], axis=1), axis=1)
    np.testing.assert_array_equal(got, (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_resampled_aucs_of_rows_that_leave_some_rows_out():
    scores = np.array([5.0, 1.0, 3.0, 3.0, 9.0, 0.0])  # rows 4 and 5 are never drawn
    pos, neg = np.array([[0, 2], [2, 2]]), np.array([[1, 3], [3, 3]])
    assert resampled_aucs(scores, (pos, neg)).tolist() == [(2 + 1.5) / 4, 0.5]


# --------------------------------------------------------------------------- bootstrap_auc


def noisy_scores(n: int, seed: int, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n // 2)
    return y, rng.normal(size=n) + signal * y


def test_bootstrap_auc_is_deterministic_for_a_seed():
    y, s = noisy_scores(60, seed=1)
    assert bootstrap_auc(y, s, 500, 0.95, seed=3) == bootstrap_auc(y, s, 500, 0.95, seed=3)
    assert bootstrap_auc(y, s, 500, 0.95, seed=3) != bootstrap_auc(y, s, 500, 0.95, seed=4)


def test_bootstrap_auc_brackets_the_point_estimate():
    y, s = noisy_scores(120, seed=2)
    low, high = bootstrap_auc(y, s, 1000, 0.95, seed=0)
    assert low < roc_auc(y, s) < high
    assert 0.0 <= low < high <= 1.0


def test_bootstrap_auc_agrees_with_an_independent_stratified_bootstrap():
    y, s = noisy_scores(60, seed=5)
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(12345)  # a different stream: agreement is statistical
    n_boot = 4000
    ref = pairwise_auc(
        pos[rng.integers(0, len(pos), size=(n_boot, len(pos)))],
        neg[rng.integers(0, len(neg), size=(n_boot, len(neg)))],
    )
    ref_low, ref_high = np.quantile(ref, [0.05, 0.95])
    low, high = bootstrap_auc(y, s, n_boot, 0.90, seed=0)
    assert low == pytest.approx(ref_low, abs=0.02)
    assert high == pytest.approx(ref_high, abs=0.02)


def test_bootstrap_auc_is_narrower_with_more_data():
    small = bootstrap_auc(*noisy_scores(40, seed=7), 1000, 0.95, seed=0)
    large = bootstrap_auc(*noisy_scores(800, seed=7), 1000, 0.95, seed=0)
    assert large[1] - large[0] < 0.5 * (small[1] - small[0])


def test_bootstrap_auc_is_narrower_at_a_lower_level():
    y, s = noisy_scores(100, seed=8)
    wide = bootstrap_auc(y, s, 1000, 0.95, seed=0)
    narrow = bootstrap_auc(y, s, 1000, 0.50, seed=0)
    assert wide[0] <= narrow[0] < narrow[1] <= wide[1]


@pytest.mark.parametrize("y", [np.zeros(6, int), np.ones(6, int)])
def test_bootstrap_auc_single_class_is_nan(y):
    low, high = bootstrap_auc(y, np.arange(6.0), 100, 0.95, seed=0)
    assert math.isnan(low) and math.isnan(high)


# --------------------------------------------------------------------------- rankdata


@pytest.mark.parametrize("shape, levels", [((7,), 3), ((1,), 1), ((40, 25), 4), ((6, 300), 1000), ((5, 9), 1)])
def test_rankdata_matches_scipy(shape, levels):
    from scipy.stats import rankdata as scipy_rankdata

    values = np.random.default_rng(sum(shape)).integers(0, levels, size=shape).astype(float)
    np.testing.assert_array_equal(rankdata(values, axis=-1), scipy_rankdata(values, axis=-1))
    if values.ndim == 2:
        np.testing.assert_array_equal(rankdata(values, axis=0), scipy_rankdata(values, axis=0))


def test_stats_imports_neither_scikit_learn_nor_scipy():
    """Every probe, detector and generalisation job imports it: it must stay light."""
    import subprocess
    import sys

    code = (
        "import sys, truthmap.stats; "
        "sys.exit('sklearn' in sys.modules or 'scipy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": "scripts", "PATH": ""},
                          cwd=__file__.rsplit("/tests/", 1)[0])
    assert done.returncode == 0, done.stderr


def _grouped(seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.array(["a", "b", "c", "d"]), [40, 60, 30, 20])
    rate = {"a": 0.1, "b": 0.5, "c": 0.8, "d": 0.0}  # d holds one class only
    y = np.array([rng.random() < rate[g] for g in groups]).astype(int)
    signal = y * 0.8 + rng.normal(size=len(y))
    return y, signal, groups


def test_within_group_auc_is_the_size_weighted_mean_of_sklearn_per_group():
    from sklearn.metrics import roc_auc_score

    from truthmap.stats import within_group_auc

    y, scores, groups = _grouped()
    per = {g: (roc_auc_score(y[groups == g], scores[groups == g]), (groups == g).sum())
           for g in "abc"}
    expected = sum(a * n for a, n in per.values()) / sum(n for _, n in per.values())
    auc, used = within_group_auc(y, scores, groups)
    assert used == 3 and auc == pytest.approx(expected)


def test_a_score_that_only_knows_the_group_is_at_chance_within_groups():
    from truthmap.stats import roc_auc, within_group_auc

    y, _, groups = _grouped()
    prior = np.array([y[groups == g].mean() for g in groups])  # each group's own error rate
    assert roc_auc(y, prior) > 0.7  # pooled: it looks like a detector
    assert within_group_auc(y, prior, groups) == (0.5, 3)


def test_within_group_interval_brackets_the_estimate_and_is_reproducible():
    from truthmap.stats import bootstrap_within_group_auc, within_group_auc

    y, scores, groups = _grouped()
    auc, _ = within_group_auc(y, scores, groups)
    low, high = bootstrap_within_group_auc(y, scores, groups, 2000, 0.95, seed=1)
    assert low < auc < high and high - low < 0.3
    assert (low, high) == bootstrap_within_group_auc(y, scores, groups, 2000, 0.95, seed=1)
    narrow = bootstrap_within_group_auc(y, scores, groups, 2000, 0.5, seed=1)
    assert low < narrow[0] < narrow[1] < high


def test_no_group_with_both_classes_gives_nan():
    from truthmap.stats import bootstrap_within_group_auc, within_group_auc

    y, scores, groups = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4]), np.array(["a", "a", "b", "b"])
    auc, used = within_group_auc(y, scores, groups)
    assert np.isnan(auc) and used == 0
    assert all(np.isnan(bootstrap_within_group_auc(y, scores, groups, 100, 0.95, 0)))
