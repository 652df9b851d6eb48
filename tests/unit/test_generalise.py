"""Train on A, test on B: pairs of groups at a chosen cell."""

from __future__ import annotations

import numpy as np
import pytest

from truthmap.settings import ProbeSettings
from truthmap.generalise import Group, across_datasets, across_domains, domain_groups, transfer
from truthmap.h5io import ActivationWriter
from truthmap.probes import evaluate_cell
from truthmap.results import Cell

TOKENS = ["last_q", "-1"]


def make_dataset(tmp_path, name, n=120, flip=False, seed=0):
    """A split table and one HDF5 shard whose layer-2 'last_q' states encode the label."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int8)
    signal = (1 - y) if flip else y
    X = rng.normal(size=(n, 2, 8)).astype(np.float32)
    X[:, 0, 0] += 2.5 * signal
    ids = [f"{name}-{i:03d}" for i in range(n)]
    path = tmp_path / f"{name}.h5"
    with ActivationWriter(path, ids=ids, labels=y, positions=np.ones((n, 2), int), tokens=TOKENS,
                          layers=[2], hidden_size=8, widths={"residual": 8}, model="m") as w:
        w.write(np.arange(n), {"sites/residual/2": X})
    split = [{"id": q, "label": str(int(label)), "split": "test" if i % 5 == 0 else "train", "common": "1",
              "reason": ""} for i, (q, label) in enumerate(zip(ids, y))]
    return split, [str(path)], X, y


def test_same_group_equals_the_ordinary_held_out_auc(tmp_path):
    split, shards, X, y = make_dataset(tmp_path, "a")
    cfg = ProbeSettings()
    is_test = np.array([r["split"] == "test" for r in split])
    cell = evaluate_cell(2, "last_q", X[:, 0].astype(np.float16), y, is_test, 0, cfg)  # as stored
    rows = across_datasets({"a": {"split": split, "shards": shards, "cell": {"site": "residual", "layer": 2, "token": "last_q"}}},
                           TOKENS, cfg)
    assert len(rows) == 1 and rows[0].auc == pytest.approx(cell.auc)
    assert (rows[0].n_train, rows[0].n_test) == (cell.n_train, cell.n_test)


def test_transfer_to_a_dataset_with_the_opposite_signal(tmp_path):
    a = make_dataset(tmp_path, "a", seed=1)
    b = make_dataset(tmp_path, "b", flip=True, seed=2)
    cell = {"site": "residual", "layer": 2, "token": "last_q"}
    datasets = {name: {"split": d[0], "shards": d[1], "cell": cell} for name, d in (("a", a), ("b", b))}
    rows = {(r.train, r.test): r for r in across_datasets(datasets, TOKENS, ProbeSettings())}
    assert set(rows) == {("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")}
    assert rows[("a", "a")].auc > 0.9 and rows[("b", "b")].auc > 0.9
    assert rows[("a", "b")].auc < 0.1 and rows[("b", "a")].auc < 0.1


def test_no_chosen_cell_is_a_recorded_skip(tmp_path):
    split, shards, _, _ = make_dataset(tmp_path, "a")
    rows = across_datasets({"a": {"split": split, "shards": shards, "cell": None}}, TOKENS, ProbeSettings())
    assert rows[0].status == "skipped" and "no cell" in rows[0].reason


def test_domains_split_and_small_groups_are_skipped(tmp_path):
    split, shards, _, _ = make_dataset(tmp_path, "a")
    domain_of = {r["id"]: ("geo" if i < 100 else "math") for i, r in enumerate(split)}
    cell = {"site": "residual", "layer": 2, "token": "last_q"}
    rows = across_domains(split, shards, TOKENS, cell, domain_of, ProbeSettings())
    by = {(r.train, r.test): r for r in rows}
    assert set(by) == {("geo", "geo"), ("geo", "math"), ("math", "geo"), ("math", "math")}
    assert by[("geo", "geo")].status == "ok" and by[("geo", "geo")].auc > 0.9
    assert by[("math", "math")].status == "skipped" and "min_per_class" in by[("math", "math")].reason


def test_domain_groups_and_transfer_counts():
    g = Group(ids=["a", "b", "c", "d"], X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]),
              is_test=np.array([False, False, True, True]))
    groups = domain_groups(g, {"a": "x", "b": "x", "c": "y"})
    assert list(groups) == ["all", "x", "y"] and groups["x"].ids == ["a", "b"]
    t = transfer("x", "y", g, g, Cell("mlp_output", 1, "last_q"), ProbeSettings(min_per_class=1))
    assert (t.site, t.layer, t.token) == ("mlp_output", 1, "last_q")
    assert (t.n_train, t.n_train_wrong, t.n_test, t.n_test_wrong) == (2, 1, 2, 1)
