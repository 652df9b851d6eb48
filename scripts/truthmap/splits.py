"""Seeded splits of labelled rows: the primary test split and the cross-validation folds.

They are drawn exactly as scikit-learn draws them (``train_test_split`` with ``stratify``, and
``StratifiedKFold(shuffle=True)``), from the same ``numpy.random.RandomState`` calls in the same
order, so the split a seed gives is scikit-learn's; tests/unit/test_splits.py checks that against
scikit-learn itself. Doing it here spares every probe job the import of scikit-learn (about 1.3 s
of CPU, a seventh of a layer's job in the default run).
"""

from __future__ import annotations

from math import ceil

import numpy as np


def held_out_count(n: int, test_fraction: float) -> int:
    """How many of ``n`` rows a test fraction holds out: ``ceil(test_fraction * n)``, as scikit-learn
    rounds it."""
    return ceil(test_fraction * n)


def held_out_rows(y: np.ndarray | None, n: int, test_fraction: float, seed: int) -> np.ndarray:
    """The test rows of ``n`` rows, sorted: ``ceil(test_fraction * n)`` of them, stratified by the
    labels ``y`` when given (every class needs two rows), else a plain shuffle. scikit-learn's
    ``train_test_split(range(n), test_size=test_fraction, random_state=seed, stratify=y)``."""
    n_test = held_out_count(n, test_fraction)
    n_train = n - n_test
    if not 0 < n_test < n:
        raise ValueError(f"a test fraction of {test_fraction} leaves no rows on one side of {n}")
    rng = np.random.RandomState(seed)
    if y is None:
        return np.sort(rng.permutation(n)[:n_test])
    classes, codes, counts = np.unique(np.asarray(y), return_inverse=True, return_counts=True)
    if counts.min() < 2 or min(n_train, n_test) < len(classes):
        raise ValueError("a stratified split needs two rows of every class and a row of each on both sides")
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
    n_fit = _approximate_mode(counts, n_train, rng)
    n_held = _approximate_mode(counts - n_fit, n_test, rng)
    test = []
    for rows, count, fit, held in zip(members, counts, n_fit, n_held):
        shuffled = rows.take(rng.permutation(count), mode="clip")
        test.extend(shuffled[fit : fit + held])
    rng.permutation(n_train)  # the training rows' shuffle: its draws come before the test rows'
    return np.sort(rng.permutation(np.array(test, dtype=int)))


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows per class of ``draws`` drawn from classes of ``counts`` rows: the floor of each class's
    share, then one more to the largest remainders, ties broken at random."""
    share = counts / counts.sum() * draws
    taken = np.floor(share)
    missing = int(draws - taken.sum())
    remainder = share - taken
    for value in np.sort(np.unique(remainder))[::-1]:
        if missing <= 0:
            break
        (tied,) = np.where(remainder == value)
        now = min(len(tied), missing)
        taken[rng.choice(tied, size=now, replace=False)] += 1
        missing -= now
    return taken.astype(int)


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) of each of ``n_folds`` stratified, shuffled folds of the rows of
    ``y``: scikit-learn's ``StratifiedKFold(n_folds, shuffle=True, random_state=seed).split``."""
    y = np.asarray(y)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    codes = np.unique(first, return_inverse=True)[1][inverse]  # classes by first appearance
    n_classes = len(first)
    if np.all(n_folds > np.bincount(codes)):
        raise ValueError(f"{n_folds} folds need at least as many rows of some class")
    ordered = np.sort(codes)
    allocation = np.array([np.bincount(ordered[i::n_folds], minlength=n_classes) for i in range(n_folds)])
    rng = np.random.RandomState(seed)
    fold_of = np.empty(len(y), dtype=int)
    for k in range(n_classes):
        folds = np.arange(n_folds).repeat(allocation[:, k])
        rng.shuffle(folds)
        fold_of[codes == k] = folds
    rows = np.arange(len(y))
    return [(rows[fold_of != f], rows[fold_of == f]) for f in range(n_folds)]
