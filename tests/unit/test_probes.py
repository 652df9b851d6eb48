"""Tests for truthmap.probes: the shared split, per-cell probes.

References are independent of the module: scikit-learn's ``roc_auc_score``, a
manual scikit-learn fit on the training rows, and class counts written out by hand.
The AUC and its bootstrap interval are tested in test_stats.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from truthmap import probes
from truthmap.settings import ProbeSettings, SplitSettings
from truthmap.files import InputError, read_tsv, write_tsv
from truthmap.h5io import ActivationWriter, dataset_name
from truthmap.probes import (
    SPLIT_COLUMNS,
    STALE_SHARD,
    CellResult,
    assign_splits,
    evaluate_cell,
    make_split,
    SplitFeatures,
    probe_layer,
    split_table,
    load_split_features,
    train_layer,
    train_sites,
)


def config(**overrides) -> ProbeSettings:
    """A fast probe config: fewer bootstrap resamples than the default; the numpy solver whatever
    the machine (the torch backend is tested against it in test_torch_logistic.py)."""
    return ProbeSettings(**{"bootstrap": 300, "min_per_class": 3, "backend": "numpy", **overrides})


def separable(n: int, hidden: int, seed: int, shift: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first column separates wrong (1) from right (0) answers."""
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n // 2 + 1)[:n]
    rng.shuffle(y)
    X = rng.normal(size=(n, hidden)).astype(np.float32)
    X[:, 0] += shift * (2 * y - 1)
    return X, y


def n_test_of(n: int, fraction: float) -> int:
    """scikit-learn's test-set size for a float ``test_size``."""
    return math.ceil(fraction * n)


# --------------------------------------------------------------------------- make_split


def question_ids(n: int) -> list[str]:
    return [f"q{i:04d}" for i in range(n)]


def test_make_split_is_stratified():
    n = 200
    labels = np.array([1] * 60 + [0] * 140)  # 30 % wrong
    split = make_split(question_ids(n), labels, 0.25, seed=0)
    assert split.stratified
    assert split.is_test.sum() == n_test_of(n, 0.25)
    test_wrong = int(split.labels[split.is_test].sum())
    assert abs(test_wrong - 0.30 * split.is_test.sum()) <= 1


def test_make_split_keeps_ids_and_labels_paired():
    rng = np.random.default_rng(0)
    ids = question_ids(50)
    labels = rng.integers(0, 2, size=50)
    truth = dict(zip(ids, labels.tolist()))
    split = make_split(ids, labels, 0.2, seed=1)
    assert sorted(split.ids) == sorted(ids) and len(split.ids) == 50
    assert [truth[q] for q in split.ids] == split.labels.tolist()


def test_make_split_is_deterministic_and_depends_on_the_seed():
    ids, labels = question_ids(100), np.array([0, 1] * 50)
    a = make_split(ids, labels, 0.2, seed=0)
    b = make_split(ids, labels, 0.2, seed=0)
    c = make_split(ids, labels, 0.2, seed=1)
    assert a.ids == b.ids and np.array_equal(a.is_test, b.is_test)
    test_set = lambda s: {q for q, t in zip(s.ids, s.is_test) if t}  # noqa: E731
    assert test_set(a) != test_set(c)


def test_make_split_does_not_depend_on_input_order():
    rng = np.random.default_rng(3)
    ids = question_ids(90)
    labels = rng.integers(0, 2, size=90)
    perm = rng.permutation(90)
    a = make_split(ids, labels, 0.3, seed=5)
    b = make_split([ids[i] for i in perm], labels[perm], 0.3, seed=5)
    test_set = lambda s: {q for q, t in zip(s.ids, s.is_test) if t}  # noqa: E731
    assert test_set(a) == test_set(b)
    assert a.stratified == b.stratified


def test_make_split_falls_back_when_a_class_has_one_example():
    labels = np.array([1] + [0] * 29)
    split = make_split(question_ids(30), labels, 0.2, seed=0)
    assert split.stratified is False
    assert split.is_test.sum() == n_test_of(30, 0.2)


def test_make_split_with_one_class_only():
    split = make_split(question_ids(20), np.zeros(20, int), 0.2, seed=0)
    assert split.stratified is False
    assert split.is_test.sum() == 4


def test_make_split_of_nothing_is_empty():
    split = make_split([], np.array([], dtype=int), 0.2, seed=0)
    assert split.ids == [] and split.is_test.shape == (0,) and not split.stratified


# --------------------------------------------------------------------------- assign_splits


def test_assign_splits_splits_common_and_other_parts_separately():
    rng = np.random.default_rng(0)
    ids = question_ids(100)
    labels = np.array([0, 1] * 50)
    common = np.zeros(100, bool)
    common[rng.choice(100, size=70, replace=False)] = True
    is_test, stratified = assign_splits(ids, labels, common, 0.2, seed=0)
    assert is_test.shape == (100,) and is_test.dtype == bool
    assert stratified
    assert is_test[common].sum() == n_test_of(70, 0.2)
    assert is_test[~common].sum() == n_test_of(30, 0.2)
    # each part is stratified on its own: half wrong overall, about half wrong in each test part
    for part in (common, ~common):
        wrong = labels[part & is_test].sum()
        assert abs(wrong - (part & is_test).sum() * labels[part].mean()) <= 1


def test_assign_splits_common_part_equals_its_own_split():
    """Questions outside the common set do not move the common split (or the reverse)."""
    ids = question_ids(60)
    labels = np.array([0, 0, 1] * 20)
    common = np.arange(60) % 4 != 0
    is_test, _ = assign_splits(ids, labels, common, 0.25, seed=7)
    for part in (common, ~common):
        own = make_split([q for q, c in zip(ids, part) if c], labels[part], 0.25, seed=7)
        expected = {q for q, t in zip(own.ids, own.is_test) if t}
        assert {q for q, c, t in zip(ids, part, is_test) if c and t} == expected


def test_assign_splits_is_aligned_with_the_input_order():
    rng = np.random.default_rng(1)
    ids = question_ids(50)
    labels = rng.integers(0, 2, size=50)
    common = rng.random(50) < 0.7
    perm = rng.permutation(50)
    a, _ = assign_splits(ids, labels, common, 0.2, seed=0)
    b, _ = assign_splits([ids[i] for i in perm], labels[perm], common[perm], 0.2, seed=0)
    assert dict(zip(ids, a)) == dict(zip([ids[i] for i in perm], b))


def test_assign_splits_reports_the_common_part_unstratified():
    ids = question_ids(40)
    labels = np.zeros(40, int)
    labels[[0, 30, 31, 32]] = 1  # one wrong answer in the common part, three outside
    common = np.arange(40) < 30
    is_test, stratified = assign_splits(ids, labels, common, 0.2, seed=0)
    assert stratified is False
    assert is_test.sum() == n_test_of(30, 0.2) + n_test_of(10, 0.2)


# --------------------------------------------------------------------------- evaluate_cell


def test_evaluate_cell_separable_data_gives_auc_near_one():
    X, y = separable(200, 8, seed=0)
    is_test = np.zeros(200, bool)
    is_test[np.random.default_rng(1).choice(200, 50, replace=False)] = True
    cfg = config()
    r = evaluate_cell(4, "last_q", X, y, is_test, n_excluded=7, cfg=cfg)
    assert isinstance(r, CellResult)
    assert (r.layer, r.token, r.status, r.reason) == (4, "last_q", "ok", "")
    assert r.auc > 0.97 and r.train_auc > 0.97
    assert r.ci_low <= r.auc <= r.ci_high and r.ci_low > 0.9
    assert (r.n_train, r.n_test) == (150, 50)
    assert r.n_train_wrong == int(y[~is_test].sum())
    assert r.n_test_wrong == int(y[is_test].sum())
    assert r.n_excluded == 7
    assert r.fit_seconds >= 0
    assert set(r.to_dict()) == {f for f in CellResult.__dataclass_fields__}


def test_evaluate_cell_pure_noise_gives_auc_near_one_half():
    rng = np.random.default_rng(11)
    n = 600
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    is_test = np.arange(n) % 2 == 0
    r = evaluate_cell(0, "-1", X, y, is_test, 0, config())
    assert r.status == "ok"
    assert abs(r.auc - 0.5) < 0.1
    assert r.ci_low < 0.5 < r.ci_high


def test_evaluate_cell_fits_on_training_rows_only(monkeypatch):
    """Every fit of a cell sees training rows only, and the primary probe is the optimum an
    independent solver reaches on them (scikit-learn's L-BFGS run to a tight tolerance)."""
    rng = np.random.default_rng(2)
    X, y = separable(120, 6, seed=3, shift=0.8)
    is_test = rng.random(120) < 0.3
    cfg = config(C=0.5, seed=4)

    batches = []
    real_fit_many = probes.fit_many

    def spying_fit_many(X_fit, y_fit, masks, *args, **kwargs):
        batches.append((np.array(X_fit), np.array(masks), kwargs.get("bases")))
        return real_fit_many(X_fit, y_fit, masks, *args, **kwargs)

    monkeypatch.setattr(probes, "fit_many", spying_fit_many)
    r = evaluate_cell(1, "last_q", X, y, is_test, 0, cfg)

    [(X_seen, masks, bases)] = batches  # one batch: the primary fit and the folds
    assert len(masks) == 1 + r.cv_folds and r.cv_folds == 5
    np.testing.assert_array_equal(masks[0], ~is_test)
    assert not masks[:, is_test].any()  # no fit has a test row
    assert all(0 < m.sum() < (~is_test).sum() for m in masks[1:])  # the folds: parts of the training rows
    assert bases == [0] * 6  # the folds' steps are preconditioned from training rows only

    manual = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10, max_iter=100_000))
    manual.fit(X[~is_test], y[~is_test])
    assert r.auc == pytest.approx(roc_auc_score(y[is_test], manual.decision_function(X[is_test])))
    assert r.test_scores == pytest.approx(manual.decision_function(X[is_test]).tolist(), abs=1e-3)
    train_scores = manual.decision_function(X[~is_test])
    assert r.train_auc == pytest.approx(roc_auc_score(y[~is_test], train_scores))


def test_evaluate_cell_test_labels_do_not_leak_into_the_fit():
    """Test labels contradicting the training rows: an honest probe scores far below 0.5."""
    X, y = separable(200, 4, seed=9)
    is_test = np.arange(200) % 4 == 0
    y_adversarial = y.copy()
    y_adversarial[is_test] = 1 - y[is_test]
    r = evaluate_cell(0, "last_q", X, y_adversarial, is_test, 0, config())
    assert r.auc < 0.05
    assert r.train_auc > 0.95


def test_evaluate_cell_too_few_wrong_in_test_is_skipped():
    X, y = separable(100, 4, seed=0)
    is_test = np.zeros(100, bool)
    wrong = np.flatnonzero(y == 1)
    right = np.flatnonzero(y == 0)
    is_test[wrong[:2]] = True  # 2 wrong answers in test
    is_test[right[:20]] = True
    r = evaluate_cell(3, "-2", X, y, is_test, 5, config(min_per_class=3))
    assert r.status == "skipped"
    for value in (r.auc, r.ci_low, r.ci_high, r.train_auc):
        assert math.isnan(value)
    assert "min_per_class=3" in r.reason
    assert "test has 2 wrong answers" in r.reason
    assert "train" not in r.reason
    assert (r.n_train, r.n_test, r.n_train_wrong, r.n_test_wrong) == (78, 22, 48, 2)
    assert r.n_excluded == 5 and r.fit_seconds == 0.0


def test_evaluate_cell_names_every_short_part_and_class():
    y = np.array([0] * 10 + [1] * 2 + [0] * 1 + [1] * 10)
    is_test = np.array([False] * 12 + [True] * 11)  # train: 2 wrong; test: 1 right
    X = np.random.default_rng(0).normal(size=(len(y), 3))
    r = evaluate_cell(0, "last_q", X, y, is_test, 0, config(min_per_class=3))
    assert r.status == "skipped"
    assert "train has 2 wrong answers" in r.reason
    assert "test has 1 right answers" in r.reason
    assert "train has 10 right" not in r.reason and "test has 10 wrong" not in r.reason


def test_evaluate_cell_exactly_min_per_class_is_fitted():
    y = np.array([0] * 3 + [1] * 3 + [0] * 3 + [1] * 3)
    is_test = np.array([False] * 6 + [True] * 6)
    X = np.random.default_rng(0).normal(size=(12, 2)) + y[:, None]
    assert evaluate_cell(0, "last_q", X, y, is_test, 0, config(min_per_class=3)).status == "ok"


# --------------------------------------------------------------------------- probe_layer


def layer_data(n: int = 160, hidden: int = 5):
    """Two tokens: separable at token 0 (valid everywhere), noise at token 1 (valid for some)."""
    rng = np.random.default_rng(0)
    X0, y = separable(n, hidden, seed=1)
    X = np.stack([X0, rng.normal(size=(n, hidden)).astype(np.float32)], axis=1)
    valid = np.ones((n, 2), bool)
    valid[: n // 4, 1] = False  # the first quarter has no valid position at token 1
    common = valid.all(axis=1)
    is_test = rng.random(n) < 0.25
    return X, valid, y, is_test, common


def features(X, valid, y, is_test, common) -> SplitFeatures:
    return SplitFeatures([f"q{i:03d}" for i in range(len(y))], X, valid, y, is_test, common)


def test_probe_layer_common_mode_uses_the_common_examples_everywhere():
    X, valid, y, is_test, common = layer_data()
    results = probe_layer(2, ["last_q", "-1"], features(X, valid, y, is_test, common), config())
    assert [r.token for r in results] == ["last_q", "-1"]
    assert all(r.layer == 2 for r in results)
    for r in results:
        assert r.n_train + r.n_test == common.sum() == 120
        assert r.n_test == int((is_test & common).sum())
        assert r.n_test_wrong == int(y[is_test & common].sum())
        assert r.n_excluded == 40
    assert results[0].auc > 0.95
    assert abs(results[1].auc - 0.5) < 0.25


def test_probe_layer_per_cell_mode_uses_each_cells_valid_examples():
    X, valid, y, is_test, common = layer_data()
    cfg = config(examples="per_cell")
    results = probe_layer(2, ["last_q", "-1"], features(X, valid, y, is_test, common), cfg)
    first, second = results
    assert first.n_train + first.n_test == 160 and first.n_excluded == 0
    assert first.n_test == int(is_test.sum())
    assert second.n_train + second.n_test == 120 and second.n_excluded == 40
    assert second.n_test == int((is_test & valid[:, 1]).sum())


def test_probe_layer_common_mode_still_drops_invalid_positions():
    """A row marked common but invalid at a token (inconsistent input) is not fed to that cell."""
    X, valid, y, is_test, _ = layer_data()
    everything = np.ones(len(y), bool)
    results = probe_layer(0, ["last_q", "-1"], features(X, valid, y, is_test, everything), config())
    assert results[0].n_excluded == 0
    assert results[1].n_excluded == 40


# --------------------------------------------------------------------------- split_table

TOKENS = ["last_q", "exact_answer_first", "-1"]


def label(qid: str, correct: bool, method: str = "alias", reason: str = "") -> dict:
    return {"id": qid, "correct": correct, "exact_method": method, "reason": reason}


def positions(qid: str, last_q: int, exact: int, last: int) -> dict:
    """A positions row as read back from its TSV (strings)."""
    return {"id": qid, "last_q": str(last_q), "exact_answer_first": str(exact), "-1": str(last)}


def test_split_table_rows_labels_and_reasons():
    labels = [
        label("c", True),
        label("a", False, "none", "NO ANSWER in the generation"),
        label("b", False, "alias"),
        label("d", False, "none", "empty generation"),
    ]
    pos = [
        positions("a", 10, -1, 20),
        positions("b", 11, -1, -1),
        positions("c", 12, 14, 21),
        positions("d", 13, 15, 22),  # no exact answer, but every chosen position exists
        positions("z", 1, 2, 3),  # unlabelled: ignored
    ]
    rows = split_table(labels, pos, TOKENS, SplitSettings())
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert all(tuple(r) == SPLIT_COLUMNS for r in rows)
    assert [r["label"] for r in rows] == [1, 1, 0, 1]
    assert [r["common"] for r in rows] == [0, 0, 1, 1]
    assert rows[0]["reason"] == "no exact answer (NO ANSWER in the generation)"
    assert rows[1]["reason"] == "masked position(s): exact_answer_first, -1"
    assert rows[2]["reason"] == rows[3]["reason"] == ""
    assert {r["split"] for r in rows} <= {"train", "test"}


def test_split_table_without_exact_tokens_keeps_questions_without_an_exact_answer():
    labels = [label("a", False, "none", "NO ANSWER"), label("b", True)]
    pos = [positions("a", 3, -1, 9), positions("b", 4, 6, 9)]
    rows = split_table(labels, pos, ["last_q", "-1"], SplitSettings())
    assert [r["common"] for r in rows] == [1, 1]
    assert [r["reason"] for r in rows] == ["", ""]


def test_split_table_split_is_the_assign_splits_split():
    rng = np.random.default_rng(4)
    ids = question_ids(80)
    correct = rng.random(80) < 0.6
    masked = rng.random(80) < 0.2
    labels = [label(q, bool(c)) for q, c in zip(ids, correct)]
    pos = [positions(q, 5, -1 if m else 7, 9) for q, m in zip(ids, masked)]
    rows = split_table(labels, pos, TOKENS, SplitSettings(test_fraction=0.25, seed=3))
    expected, _ = assign_splits(ids, (~correct).astype(int), ~masked, 0.25, 3)
    assert [r["split"] == "test" for r in rows] == expected.tolist()
    assert sum(r["common"] for r in rows) == int((~masked).sum())


def test_split_table_rejects_a_question_labelled_twice():
    labels = [label("a", True), label("a", False)]
    with pytest.raises(ValueError, match="'a' is labelled twice"):
        split_table(labels, [positions("a", 1, 2, 3)], TOKENS, SplitSettings())


def test_split_table_rejects_a_question_without_positions():
    labels = [label("a", True), label("b", True)]
    with pytest.raises(ValueError, match="1 labelled questions have no positions.*'b'"):
        split_table(labels, [positions("a", 1, 2, 3)], TOKENS, SplitSettings())


# --------------------------------------------------------------------------- train_layer

HIDDEN = 6
N_QUESTIONS = 80
LAYER_TOKENS = ["last_q", "-1"]


def activations(qid: str, layer: int) -> np.ndarray:
    """Deterministic (P, H) hidden states of one question: the id is readable from them."""
    i = int(qid[1:])
    block = np.empty((len(LAYER_TOKENS), HIDDEN), dtype=np.float32)
    rng = np.random.default_rng(1000 * (layer + 1) + i)  # layer -1: the embeddings row
    block[:] = rng.normal(size=block.shape)
    block[0, 0] = 4.0 * (1 if i % 2 else -1)  # separable at last_q: odd questions are wrong
    block[1, 1] = i / 10  # the question's number, to check alignment
    return block


def write_shard(path, ids, labels=None, tokens=LAYER_TOKENS, layers=(3, 5), batches=2, masked=(),
                sites=("residual",)):
    """A shard of ``ids`` written in shuffled order, over several ``write`` calls; each further
    site holds the first one's states scaled by its position in ``sites`` plus one."""
    labels = np.array([int(q[1:]) % 2 for q in ids]) if labels is None else np.asarray(labels)
    pos = np.tile(np.arange(len(tokens), dtype=np.int32) + 5, (len(ids), 1))
    for q in masked:
        pos[ids.index(q), 1] = -1
    rng = np.random.default_rng(len(ids))
    with ActivationWriter(
        path, ids=ids, labels=labels, positions=pos, tokens=tokens, layers=list(layers),
        hidden_size=HIDDEN, widths=dict.fromkeys(sites, HIDDEN), model="tiny",
    ) as writer:
        for rows in np.array_split(rng.permutation(len(ids)), min(batches, len(ids))):
            blocks = {dataset_name(site, lay): (k + 1) * np.stack([activations(ids[r], lay) for r in rows])
                      for k, site in enumerate(sites) for lay in layers}
            writer.write(rows, blocks)
    return str(path)


@pytest.fixture
def split_rows(tmp_path):
    """The split of N_QUESTIONS questions, round-tripped through its TSV like the workflow does."""
    ids = question_ids(N_QUESTIONS)
    masked = {ids[i] for i in range(0, N_QUESTIONS, 10)}  # 8 questions lack the -1 position
    labels = [label(q, int(q[1:]) % 2 == 0) for q in ids]
    pos = [{"id": q, "last_q": "5", "-1": "-1" if q in masked else "6"} for q in ids]
    rows = split_table(labels, pos, LAYER_TOKENS, SplitSettings())
    write_tsv(tmp_path / "split.tsv", rows, SPLIT_COLUMNS)
    return read_tsv(tmp_path / "split.tsv")


@pytest.fixture
def shards(tmp_path, split_rows):
    """Two shards holding the questions in an order unlike the split's."""
    ids = [r["id"] for r in split_rows]
    rng = np.random.default_rng(7)
    ids = [ids[i] for i in rng.permutation(len(ids))]
    masked = [r["id"] for r in split_rows if r["common"] == "0"]
    half = len(ids) // 2
    return [
        write_shard(tmp_path / "a.h5", ids[:half], masked=[q for q in masked if q in ids[:half]]),
        write_shard(tmp_path / "b.h5", ids[half:], masked=[q for q in masked if q in ids[half:]]),
    ]


def test_train_layer_aligns_shard_rows_with_the_split_by_id(monkeypatch, split_rows, shards):
    seen = {}

    def capture(layer, tokens, data, cfg, other_splits=(), site="residual"):
        seen.update(layer=layer, tokens=tokens, X=data.X, valid=data.valid, labels=data.labels,
                    is_test=data.is_test, common=data.common, ids=data.ids)
        return []

    monkeypatch.setattr(probes, "probe_layer", capture)
    train_layer(split_rows, shards, 5, LAYER_TOKENS, config())
    assert seen["layer"] == 5 and seen["tokens"] == LAYER_TOKENS
    expected = np.stack([activations(r["id"], 5) for r in split_rows]).astype(np.float16)
    np.testing.assert_array_equal(seen["X"], expected)
    assert seen["labels"].tolist() == [int(r["label"]) for r in split_rows]
    assert seen["is_test"].tolist() == [r["split"] == "test" for r in split_rows]
    assert seen["common"].tolist() == [r["common"] == "1" for r in split_rows]
    assert seen["valid"][:, 0].all()
    assert seen["valid"][:, 1].tolist() == [r["common"] == "1" for r in split_rows]


def test_train_layer_end_to_end(split_rows, shards):
    results = train_layer(split_rows, shards, 3, LAYER_TOKENS, config())
    assert [(r.layer, r.token) for r in results] == [(3, "last_q"), (3, "-1")]
    n_common = sum(r["common"] == "1" for r in split_rows)
    for r in results:
        assert r.status == "ok"
        assert r.n_train + r.n_test == n_common
        assert r.n_excluded == N_QUESTIONS - n_common
    assert results[0].auc > 0.95  # separable at last_q
    again = train_layer(split_rows, shards[::-1], 3, LAYER_TOKENS, config())
    assert [r.auc for r in again] == [r.auc for r in results]


def test_train_sites_reads_each_site_and_fits_the_embeddings_row_once(tmp_path, split_rows, monkeypatch):
    import truthmap.probes as probes

    sites = ("residual", "mlp_output")
    ids = [r["id"] for r in split_rows]
    masked = [r["id"] for r in split_rows if r["common"] == "0"]
    path = write_shard(tmp_path / "s.h5", ids, masked=masked, layers=(-1, 3), sites=sites)
    first = load_split_features(split_rows, [path], 3, LAYER_TOKENS, site="residual").X.astype(np.float32)
    second = load_split_features(split_rows, [path], 3, LAYER_TOKENS, site="mlp_output").X.astype(np.float32)
    np.testing.assert_allclose(second, 2 * first, rtol=1e-3)  # write_shard scales the second site by 2

    results = train_sites(split_rows, [path], 3, LAYER_TOKENS, sites, config())
    assert [(r.site, r.layer, r.token) for r in results] == [(s, 3, t) for s in sites for t in LAYER_TOKENS]
    for site in sites:
        alone = train_layer(split_rows, [path], 3, LAYER_TOKENS, config(), site=site)
        timeless = [repr({**r.to_dict(), "fit_seconds": 0}) for r in results if r.site == site]  # NaN == NaN
        assert timeless == [repr({**r.to_dict(), "fit_seconds": 0}) for r in alone]

    reads = []
    real = probes.load_split_features
    monkeypatch.setattr(probes, "load_split_features", lambda *a, **k: reads.append(k.get("site")) or real(*a, **k))
    emb = train_sites(split_rows, [path], -1, LAYER_TOKENS, sites, config())
    assert reads == ["residual"]  # the embeddings row is the same at every site: read and fitted once
    assert [(r.site, r.layer) for r in emb] == [(s, -1) for s in sites for _ in LAYER_TOKENS]
    assert [r.auc for r in emb[:2]] == [r.auc for r in emb[2:]]


def test_train_layer_per_cell_uses_more_examples(split_rows, shards):
    results = train_layer(split_rows, shards, 3, LAYER_TOKENS, config(examples="per_cell"))
    n_common = sum(r["common"] == "1" for r in split_rows)
    assert results[0].n_train + results[0].n_test == N_QUESTIONS
    assert results[0].n_excluded == 0
    assert results[1].n_train + results[1].n_test == n_common


def test_train_layer_rejects_a_question_in_two_shards(tmp_path, split_rows, shards):
    extra = write_shard(tmp_path / "c.h5", [split_rows[0]["id"]])
    qid = split_rows[0]["id"]
    with pytest.raises(InputError, match=f"c.h5: question '{qid}' appears in two shards"):
        train_layer(split_rows, shards + [extra], 3, LAYER_TOKENS, config())


def test_train_layer_rejects_a_split_question_in_no_shard(split_rows, shards):
    with pytest.raises(InputError, match=r"40 questions of the split are in no shard"):
        train_layer(split_rows, shards[:1], 3, LAYER_TOKENS, config())


def test_train_layer_rejects_a_shard_question_outside_the_split(tmp_path, split_rows, shards):
    extra = write_shard(tmp_path / "c.h5", ["q9999"])
    with pytest.raises(InputError, match="'q9999' is not in the split table"):
        train_layer(split_rows, shards + [extra], 3, LAYER_TOKENS, config())


def test_train_layer_rejects_disagreeing_labels(tmp_path, split_rows):
    ids = [r["id"] for r in split_rows]
    labels = [int(r["label"]) for r in split_rows]
    labels[3] = 1 - labels[3]
    path = write_shard(tmp_path / "bad.h5", ids, labels=labels)
    with pytest.raises(InputError, match=f"label of '{ids[3]}' disagrees") as err:
        train_layer(split_rows, [path], 3, LAYER_TOKENS, config())
    assert err.value.hint == STALE_SHARD


def test_train_layer_rejects_other_tokens(tmp_path, split_rows):
    ids = [r["id"] for r in split_rows]
    path = write_shard(tmp_path / "tok.h5", ids, tokens=["last_q", "-2"])
    with pytest.raises(ValueError, match=r"tok.h5: holds tokens \['last_q', '-2'\]"):
        train_layer(split_rows, [path], 3, LAYER_TOKENS, config())


def test_per_cell_modules_do_not_import_torch():
    """The probe, gather and plot jobs fan out by the hundred: each must start without torch."""
    import subprocess
    import sys

    code = (
        "import sys; import truthmap.probes, truthmap.h5io, truthmap.results, truthmap.plotting, "
        "truthmap.files, truthmap.settings, truthmap.logs; "
        "sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": "scripts", "PATH": ""}, cwd=__file__.rsplit("/tests/", 1)[0])
    assert done.returncode == 0, done.stderr


def test_cross_validation_folds_and_test_scores():
    from truthmap.probes import cv_folds

    X, y = separable(100, 4, seed=5)
    folds = cv_folds(y, config())
    assert len(folds) == 5 and all(not set(fit) & set(val) and len(fit) + len(val) == 100 for fit, val in folds)
    assert sorted(np.concatenate([val for _, val in folds]).tolist()) == list(range(100))
    assert cv_folds(np.array([0, 0, 0, 1]), config()) == []  # one wrong answer: no folds
    is_test = np.arange(100) % 4 == 0
    ids = [f"q{i}" for i in range(100)]
    r = evaluate_cell(0, "-1", X, y, is_test, 0, config(), ids)
    assert r.test_ids == [ids[i] for i in np.flatnonzero(is_test)]
    assert roc_auc_score(y[is_test], r.test_scores) == pytest.approx(r.auc)


# --------------------------------------------------------------------------- spread across seeded splits


def test_every_cell_is_also_scored_on_further_seeded_splits(split_rows, shards):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from truthmap.probes import assign_splits, load_split_features

    cfg = config(split_seeds=4)
    split = SplitSettings()
    results = train_layer(split_rows, shards, 3, LAYER_TOKENS, cfg, split=split)
    single = train_layer(split_rows, shards, 3, LAYER_TOKENS, cfg)
    data = load_split_features(split_rows, shards, 3, LAYER_TOKENS)
    for p, (cell, alone) in enumerate(zip(results, single)):
        assert len(cell.split_aucs) == 4 and cell.split_aucs[0] == cell.auc == alone.auc
        assert alone.split_aucs == [alone.auc]  # without the split settings: the primary split only
        use = data.common & data.valid[:, p]
        for k, got in enumerate(cell.split_aucs[1:], start=1):
            is_test = assign_splits(data.ids, data.labels, data.common, split.test_fraction, split.seed + k)[0][use]
            assert not np.array_equal(is_test, data.is_test[use])  # really another split
            X, y = data.X[use, p].astype(np.float32), data.labels[use]
            ref = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.C, tol=1e-10, max_iter=100_000))
            ref.fit(X[~is_test], y[~is_test])  # an independent solver, run to the optimum
            assert got == pytest.approx(roc_auc_score(y[is_test], ref.decision_function(X[is_test])), abs=1e-3)
        assert cell.auc_split_mean == pytest.approx(np.mean(cell.split_aucs))
        assert cell.auc_split_std == pytest.approx(np.std(cell.split_aucs, ddof=1))


def test_a_split_with_too_few_of_a_class_counts_as_nan():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.array([0] * 30 + [1] * 10)
    is_test = np.arange(40) % 3 == 0
    starved = np.zeros(40, dtype=bool)
    starved[-8:] = True  # 8 of the 10 wrong answers in its test part: training keeps 2
    other = np.arange(40) % 3 == 1
    r = evaluate_cell(0, "last_q", X, y, is_test, 0, config(min_per_class=3), other_splits=[starved, other])
    assert r.status == "ok" and math.isnan(r.split_aucs[1]) and not math.isnan(r.split_aucs[2])
    assert r.auc_split_mean == pytest.approx(np.mean([r.split_aucs[0], r.split_aucs[2]]))


# --------------------------------------------------------------------------- backends


def backend_layer():
    """Three tokens, each cell with its own rows (``per_cell``): separable, noise valid for three
    quarters, and one valid for too few rows (skipped); further splits, one starved of wrong answers
    in the first cell's training rows."""
    rng = np.random.default_rng(5)
    n, hidden = 200, 7
    X0, y = separable(n, hidden, seed=6, shift=1.0)
    X = np.stack([X0, rng.normal(size=(n, hidden)), rng.normal(size=(n, hidden))], axis=1).astype(np.float16)
    valid = np.ones((n, 3), bool)
    valid[: n // 4, 1] = False
    valid[8:, 2] = False
    is_test = rng.random(n) < 0.25
    starved = y == 1  # every wrong answer in test: no fit
    others = [rng.random(n) < 0.25, starved, rng.random(n) < 0.3]
    return features(X, valid, y, is_test, valid.all(axis=1)), others


def comparable(result: CellResult) -> dict:
    """A result's fields but its timing and solver."""
    return {k: v for k, v in result.to_dict().items() if k not in ("fit_seconds", "backend")}


def test_the_torch_backend_gives_the_numpy_backends_results():
    """All cells of the layer in one torch batch: every field as the numpy solver's, cell by cell."""
    data, others = backend_layer()
    tokens = ["last_q", "-2", "-1"]
    numpy_cells = probe_layer(3, tokens, data, config(examples="per_cell"), others, site="mlp_input")
    torch_cells = probe_layer(3, tokens, data, config(examples="per_cell", backend="torch"), others, site="mlp_input")
    assert [r.status for r in torch_cells] == ["ok", "ok", "skipped"]
    assert [r.backend for r in numpy_cells] == ["numpy", "numpy", ""]
    assert [r.backend for r in torch_cells] == ["torch:cpu", "torch:cpu", ""]
    assert math.isnan(torch_cells[0].split_aucs[2]) and len(torch_cells[0].split_aucs) == 4
    for a, b in zip(numpy_cells, torch_cells):
        a, b = comparable(a), comparable(b)
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float) or (isinstance(a[key], list) and a[key] and isinstance(a[key][0], float)):
                np.testing.assert_allclose(b[key], a[key], atol=1e-6, err_msg=key)
            else:
                assert b[key] == a[key], key
    assert sum(r.fit_seconds for r in torch_cells) > 0 and torch_cells[2].fit_seconds == 0.0


def test_the_sklearn_backend_fits_with_scikit_learn_one_fit_at_a_time(monkeypatch):
    """The reference backend: scikit-learn's pipeline once per fit, AUCs near the numpy solver's."""
    from sklearn import pipeline

    calls = []
    real = pipeline.make_pipeline
    monkeypatch.setattr(pipeline, "make_pipeline", lambda *steps: calls.append(steps) or real(*steps))
    data, others = backend_layer()
    tokens = ["last_q", "-2", "-1"]
    reference = probe_layer(3, tokens, data, config(examples="per_cell", backend="sklearn"), others)
    ours = probe_layer(3, tokens, data, config(examples="per_cell"), others)
    assert len(calls) == sum(1 + r.cv_folds + sum(np.isfinite(r.split_aucs[1:])) for r in reference[:2])
    assert [r.backend for r in reference] == ["sklearn", "sklearn", ""]
    for a, b in zip(reference[:2], ours[:2]):
        assert a.auc == pytest.approx(b.auc, abs=0.005) and a.cv_auc == pytest.approx(b.cv_auc, abs=0.005)
        np.testing.assert_allclose(a.split_aucs, b.split_aucs, atol=0.005)


def test_auto_is_numpy_without_a_gpu_and_imports_no_torch_to_say_so():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from truthmap.probes import resolve_backend; print(resolve_backend('auto'), "
            "resolve_backend('sklearn'), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": "scripts", "PATH": ""}, cwd=__file__.rsplit("/tests/", 1)[0])
    assert done.returncode == 0, done.stderr
    if not Path("/proc/driver/nvidia/version").exists() and not Path("/dev/dxg").exists():
        assert done.stdout.split() == ["numpy", "sklearn", "False"]
    else:
        import torch

        assert done.stdout.split()[0] == ("torch" if torch.cuda.is_available() else "numpy")
