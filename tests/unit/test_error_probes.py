"""Error-type probes at the chosen cell, against scikit-learn on the same rows; and their figure."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from truthmap.error_probes import ERROR_PROBE_COLUMNS, probe_error_types
from truthmap.error_types import FINE_TYPES
from truthmap.files import read_tsv, write_tsv
from truthmap.h5io import ActivationWriter
from truthmap.settings import ProbeSettings

TOKENS = ["last_q", "exact_answer_first"]
CELL = {"site": "residual", "layer": 1, "token": "exact_answer_first", "cv_auc": 0.8}


def make_run(tmp_path, n=200, seed=0):
    """One shard whose layer-1 'exact_answer_first' state encodes the fine type right_is_largest_1
    (dimension 0) and the coarse type 'b' (dimension 1); closely_competing_answers has 3 positives.
    Question 0 has no exact answer (invalid at the token); the last 10 have no error-type row."""
    rng = np.random.default_rng(seed)
    ids = [f"q{i:03d}" for i in range(n)]
    y = (rng.random(n) < 0.4).astype(np.int8)
    fine = (rng.random(n) < 0.5).astype(int)
    coarse = rng.choice(["a", "b", "c"], size=n)
    X = rng.normal(size=(n, 2, 6)).astype(np.float32)
    X[:, 1, 0] += 4.0 * fine
    X[:, 1, 1] += 4.0 * (coarse == "b")
    positions = np.ones((n, 2), int)
    positions[0, 1] = -1
    path = tmp_path / "s.h5"
    with ActivationWriter(path, ids=ids, labels=y, positions=positions, tokens=TOKENS, layers=[1], hidden_size=6,
                          widths={"residual": 6}, model="m") as w:
        w.write(np.arange(n), {"sites/residual/1": X})
    split = [{"id": q, "label": str(int(label)), "split": "test" if i % 3 == 0 else "train",
              "common": "0" if i == 0 else "1", "reason": ""} for i, (q, label) in enumerate(zip(ids, y))]
    rows = []
    for i in range(n - 10):
        row = {"id": ids[i], "greedy_correct": str(1 - y[i]), "n_samples": "10", "coarse_type": coarse[i]}
        row.update({t: "0" for t in FINE_TYPES})
        row["right_is_largest_1"] = str(fine[i])
        row["closely_competing_answers"] = "1" if i in (3, 4, 6) else "0"
        rows.append(row)
    return split, [str(path)], rows, X, fine, coarse


def test_a_separable_type_scores_near_one_and_matches_sklearn(tmp_path):
    split, shards, rows, X, fine, _ = make_run(tmp_path)
    cfg = ProbeSettings(bootstrap=200)
    out = {(r.type, r.kind): r for r in probe_error_types(split, shards, TOKENS, CELL, rows, cfg)}
    r = out["right_is_largest_1", "fine"]
    assert r.status == "ok" and r.auc > 0.95 and r.ci_low <= r.auc <= r.ci_high
    assert (r.site, r.layer, r.token) == ("residual", 1, "exact_answer_first")
    # the questions: valid at the cell, with an error-type row; split membership kept
    use = np.array([0 < i < len(split) - 10 for i in range(len(split))])
    test = use & np.array([s["split"] == "test" for s in split])
    train = use & ~test
    assert (r.n_train, r.n_test) == (train.sum(), test.sum())
    assert (r.n_train_pos, r.n_test_pos) == (fine[train].sum(), fine[test].sum())
    assert r.prevalence == pytest.approx(fine[test].mean())
    # an independent fit on the same rows (features as stored, float16)
    Xs = X[:, 1].astype(np.float16).astype(np.float32)
    scaler = StandardScaler().fit(Xs[train])
    ref = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter).fit(scaler.transform(Xs[train]), fine[train])
    expected = roc_auc_score(fine[test], ref.decision_function(scaler.transform(Xs[test])))
    assert r.auc == pytest.approx(expected, abs=1e-6)


def test_coarse_types_are_one_vs_rest_and_a_rare_type_is_skipped_with_a_reason(tmp_path):
    split, shards, rows, _, _, coarse = make_run(tmp_path, seed=1)
    out = {(r.type, r.kind): r for r in probe_error_types(split, shards, TOKENS, CELL, rows, ProbeSettings(bootstrap=100))}
    assert [k for k in out if k[1] == "coarse"] == [("a", "coarse"), ("b", "coarse"), ("c", "coarse")]
    assert out["b", "coarse"].auc > 0.95
    assert 0.2 < out["a", "coarse"].auc < 0.8  # "a" is not encoded: near chance
    rare = out["closely_competing_answers", "fine"]
    assert rare.status == "skipped" and np.isnan(rare.auc)
    assert "min_per_class=5" in rare.reason and "of this type" in rare.reason
    never = out["no_answer_is_largest", "fine"]
    assert never.status == "skipped" and never.prevalence == 0.0


def test_no_chosen_cell_skips_every_type(tmp_path):
    split, shards, rows, *_ = make_run(tmp_path, n=60)
    out = probe_error_types(split, shards, TOKENS, None, rows, ProbeSettings())
    assert len(out) == len(FINE_TYPES) + 3
    assert all(r.status == "skipped" and "no probe cell" in r.reason for r in out)


def test_figure_renders(tmp_path):
    from truthmap.plot_resampling import plot_error_probes

    split, shards, rows, *_ = make_run(tmp_path, seed=2)
    table = [r.to_dict() for r in probe_error_types(split, shards, TOKENS, CELL, rows, ProbeSettings(bootstrap=100))]
    write_tsv(tmp_path / "types.tsv", table, ERROR_PROBE_COLUMNS)  # as the plot rule reads it: strings
    paths = [tmp_path / "types.png", tmp_path / "types.pdf"]
    plot_error_probes(read_tsv(tmp_path / "types.tsv"), "Error types: tiny on synthetic", paths)
    assert all(p.stat().st_size > 1000 for p in paths)
