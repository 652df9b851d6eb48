"""AUC statistics shared by the probes, the detectors and the generalisation stage.

ROC AUC as a Mann-Whitney U with mid-ranks for ties, stratified bootstrap
percentile intervals of the AUC, and a paired stratified bootstrap test of two
methods scored on the same rows. Positive class: **the answer is wrong** (label 1).

Numpy only (no scikit-learn, no scipy), so that importing it stays cheap.
"""

from __future__ import annotations

from math import comb

import numpy as np


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U with mid-ranks for ties); NaN when a class is absent."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rankdata(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along ``axis``, tied values sharing their mean rank (``scipy.stats.rankdata``).

    Numpy alone: importing scipy.stats costs ~0.7 s, paid by every probe job.
    """
    a = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    flat = a.reshape(-1, a.shape[-1])
    n = flat.shape[1]
    order = np.argsort(flat, axis=1, kind="stable")
    ordered = np.take_along_axis(flat, order, axis=1)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    index = np.broadcast_to(np.arange(n), ordered.shape)
    first = np.maximum.accumulate(np.where(starts, index, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, index, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return np.moveaxis(ranks.reshape(a.shape), -1, axis)


def stratified_resamples(y: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap row indices (n_boot, n_pos) of the positives and (n_boot, n_neg) of the negatives.

    Positives and negatives are resampled separately, so every resample keeps
    the class counts (and a defined AUC). Several methods scored on the same
    rows can share one draw: that makes a paired comparison.
    """
    y = np.asarray(y).astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(seed)
    return (
        pos[rng.integers(0, len(pos), size=(n_boot, len(pos)))],
        neg[rng.integers(0, len(neg), size=(n_boot, len(neg)))],
    )


def resampled_aucs(scores: np.ndarray, resamples: tuple[np.ndarray, np.ndarray], chunk: int = 256) -> np.ndarray:
    """The AUC of ``scores`` on every resample: the Mann-Whitney U by counting, not ranking.

    The resampled rows take only the distinct score values of the rows drawn from. Per resample,
    each value's count among the positives times the negatives below it (ties count a half) sums
    to twice U in whole numbers, so the AUC is the rank-sum formula's to the last bit, without a
    sort per resample (20x faster for 1,000 resamples of 370 rows). ``chunk`` resamples at a time
    bound the memory (``chunk`` x values counts)."""
    scores = np.asarray(scores, dtype=float)
    boot_pos, boot_neg = resamples
    n_pos, n_neg = boot_pos.shape[1], boot_neg.shape[1]
    drawn = np.zeros(len(scores), dtype=bool)
    drawn[boot_pos.ravel()] = drawn[boot_neg.ravel()] = True
    values, level_of_drawn = np.unique(scores[drawn], return_inverse=True)
    levels = len(values)
    level_of = np.zeros(len(scores), dtype=np.intp)
    level_of[drawn] = level_of_drawn
    level_pos, level_neg = level_of[boot_pos], level_of[boot_neg]
    twice_u = np.empty(len(boot_pos), dtype=np.int64)
    for start in range(0, len(boot_pos), chunk):
        pos = _level_counts(level_pos[start : start + chunk], levels)
        neg = _level_counts(level_neg[start : start + chunk], levels)
        below = np.cumsum(neg, axis=1) - neg
        twice_u[start : start + chunk] = (pos * (2 * below + neg)).sum(axis=1)
    return twice_u / (2 * n_pos * n_neg)


def _level_counts(levels_drawn: np.ndarray, levels: int) -> np.ndarray:
    """(resamples, levels) counts of each level in each row of ``levels_drawn``."""
    rows = len(levels_drawn)
    offsets = (np.arange(rows) * levels)[:, None]
    return np.bincount((levels_drawn + offsets).ravel(), minlength=rows * levels).reshape(rows, levels)


def bootstrap_auc(
    y: np.ndarray, scores: np.ndarray, n_boot: int, level: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the AUC over stratified bootstrap resamples of the test set."""
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return float("nan"), float("nan")
    aucs = resampled_aucs(scores, stratified_resamples(y, n_boot, seed))
    alpha = (1 - level) / 2
    low, high = np.quantile(aucs, [alpha, 1 - alpha])
    return float(low), float(high)


def paired_bootstrap_pvalue(
    y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, n_boot: int, seed: int
) -> float:
    """Two-sided p-value of AUC(a) = AUC(b) on the same rows, by a paired stratified bootstrap.

    Both methods are scored on the same resamples; the p-value is twice the
    smaller share of resamples on either side of zero difference (with the
    usual +1 correction), capped at 1.
    """
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    resamples = stratified_resamples(y, n_boot, seed)
    diff = resampled_aucs(scores_a, resamples) - resampled_aucs(scores_b, resamples)
    below = (1 + np.sum(diff <= 0)) / (n_boot + 1)
    above = (1 + np.sum(diff >= 0)) / (n_boot + 1)
    return float(min(1.0, 2 * min(below, above)))


def within_group_auc(y: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """(AUC within groups, groups counted): the mean of each group's AUC, weighted by the group's
    size, over the groups that hold both classes; (NaN, 0) when none does.

    A score that only tells groups apart (a group's error rate) gets 0.5 here,
    however high its pooled AUC.
    """
    y, scores, groups = np.asarray(y).astype(bool), np.asarray(scores, dtype=float), np.asarray(groups)
    aucs, sizes = [], []
    for g in _mixed_groups(y, groups):
        rows = groups == g
        aucs.append(roc_auc(y[rows], scores[rows]))
        sizes.append(int(rows.sum()))
    if not aucs:
        return float("nan"), 0
    return float(np.average(aucs, weights=sizes)), len(aucs)


def bootstrap_within_group_auc(
    y: np.ndarray, scores: np.ndarray, groups: np.ndarray, n_boot: int, level: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of :func:`within_group_auc`: each group resampled on its own,
    stratified by class, and the size-weighted mean recomputed per resample."""
    y, scores, groups = np.asarray(y).astype(bool), np.asarray(scores, dtype=float), np.asarray(groups)
    mixed = _mixed_groups(y, groups)
    if not mixed:
        return float("nan"), float("nan")
    total = np.zeros(n_boot)
    weight = 0
    for k, g in enumerate(mixed):
        rows = np.flatnonzero(groups == g)
        pos, neg = stratified_resamples(y[rows], n_boot, seed + k)
        total += len(rows) * resampled_aucs(scores, (rows[pos], rows[neg]))
        weight += len(rows)
    alpha = (1 - level) / 2
    low, high = np.quantile(total / weight, [alpha, 1 - alpha])
    return float(low), float(high)


def within_group_summary(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, n_boot: int, level: float,
                         seed: int) -> tuple[float, float, float, int]:
    """(AUC within groups, interval low, high, groups counted): :func:`within_group_auc` with the
    interval of :func:`bootstrap_within_group_auc`."""
    auc, used = within_group_auc(y, scores, groups)
    low, high = bootstrap_within_group_auc(y, scores, groups, n_boot, level, seed)
    return auc, low, high, used


def _mixed_groups(y: np.ndarray, groups: np.ndarray) -> list:
    """The groups, in sorted order, that hold both classes."""
    return [g for g in sorted(set(groups.tolist())) if 0 < y[groups == g].sum() < (groups == g).sum()]


def mcnemar_exact(gains: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of ``gains`` out of the discordant pairs
    at 1/2 (``scipy.stats.binomtest(gains, gains + losses).pvalue``); 1 with no discordant pair."""
    n = gains + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(gains, losses) + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def bootstrap_accuracy(correct: np.ndarray, n_boot: int, level: float, seed: int) -> tuple[float, float]:
    """Percentile interval of the accuracy over questions resampled with replacement (NaN when empty).

    The draw depends only on (n, n_boot, seed): strategies on the same questions share resamples.
    """
    correct = np.asarray(correct, dtype=float)
    if not len(correct):
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, len(correct), size=(n_boot, len(correct)))
    alpha = (1 - level) / 2
    low, high = np.quantile(correct[draws].mean(axis=1), [alpha, 1 - alpha])
    return float(low), float(high)
