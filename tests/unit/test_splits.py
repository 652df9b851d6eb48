"""truthmap.splits against scikit-learn itself: the same seed gives the same rows."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, train_test_split

from truthmap.splits import stratified_folds, held_out_rows

CASES = [(n, balance, seed) for n in (4, 5, 9, 30, 101, 1847) for balance in (0.1, 0.33, 0.5) for seed in (0, 3, 42)]


def labels(n: int, balance: float, seed: int, classes: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000 * n)
    y = (rng.random(n) < balance).astype(int) if classes == 2 else rng.integers(0, classes, n)
    y[:classes] = np.arange(classes)  # every class present
    y[classes : 2 * classes] = np.arange(classes)  # twice
    return y


STRATIFIABLE = [(*case, fraction) for case in CASES for fraction in (0.2, 0.25, 0.4)
                if 2 <= np.ceil(fraction * case[0]) <= case[0] - 2]


@pytest.mark.parametrize(("n", "balance", "seed", "fraction"), STRATIFIABLE)
def test_stratified_test_rows_are_scikit_learns(n, balance, seed, fraction):
    y = labels(n, balance, seed)
    _, expected = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=y)
    assert held_out_rows(y, n, fraction, seed).tolist() == sorted(expected.tolist())


@pytest.mark.parametrize("n", [2, 3, 10, 64])
@pytest.mark.parametrize("seed", [0, 7])
def test_plain_test_rows_are_scikit_learns(n, seed):
    _, expected = train_test_split(np.arange(n), test_size=0.3, random_state=seed)
    assert held_out_rows(None, n, 0.3, seed).tolist() == sorted(expected.tolist())


def test_ties_of_the_class_shares_are_broken_as_scikit_learn_breaks_them():
    y = np.repeat(np.arange(4), [3, 3, 3, 2])  # equal remainders: the tie is drawn
    for seed in range(20):
        _, expected = train_test_split(np.arange(len(y)), test_size=5, random_state=seed, stratify=y)
        assert held_out_rows(y, len(y), 5 / len(y), seed).tolist() == sorted(expected.tolist())


@pytest.mark.parametrize(("n", "balance", "seed", "folds"), [
    (*case, folds) for case in CASES for folds in (2, 5) if np.bincount(labels(*case)).min() >= folds])
def test_stratified_folds_are_scikit_learns(n, balance, seed, folds):
    y = labels(n, balance, seed)
    expected = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros((n, 1)), y)
    got = stratified_folds(y, folds, seed)
    assert [(a.tolist(), b.tolist()) for a, b in got] == [(a.tolist(), b.tolist()) for a, b in expected]


def test_folds_of_three_classes_labelled_out_of_order_are_scikit_learns():
    y = 2 - labels(60, 0.0, 1, classes=3)  # the first row's class is 2: codes follow first appearance
    expected = StratifiedKFold(n_splits=4, shuffle=True, random_state=5).split(np.zeros((60, 1)), y)
    assert [(a.tolist(), b.tolist()) for a, b in stratified_folds(y, 4, 5)] == [
        (a.tolist(), b.tolist()) for a, b in expected]


def test_impossible_splits_are_refused():
    with pytest.raises(ValueError, match="no rows"):
        held_out_rows(None, 3, 0.0, 0)
    with pytest.raises(ValueError, match="two rows of every class"):
        held_out_rows(np.array([0, 0, 0, 1]), 4, 0.5, 0)
    with pytest.raises(ValueError, match="folds"):
        stratified_folds(np.array([0, 0, 1, 1]), 3, 0)


def test_a_probe_job_does_not_import_scikit_learn():
    code = ("import sys, truthmap.probes, truthmap.h5io, truthmap.files; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": "scripts", "PATH": ""}, cwd=__file__.rsplit("/tests/", 1)[0])
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
