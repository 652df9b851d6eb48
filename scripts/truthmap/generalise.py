"""Does an error detector trained on one set of questions work on another?

The probe of a chosen (site, layer, token) cell is trained on the training questions
of group A and scored on the test questions of group B, for every ordered pair
(A = B included: that is the ordinary held-out AUC). Groups are the datasets of
a run (each with its own chosen cell, whose hidden states are read from every
dataset), or the domains of one dataset (one cell for all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from truthmap.settings import ProbeSettings
from truthmap.probes import cell_rows, class_shortfall, load_split_features, make_probe
from truthmap.results import Cell
from truthmap.stats import bootstrap_auc, roc_auc

GENERALISATION_COLUMNS = (
    "train", "test", "site", "layer", "token", "auc", "ci_low", "ci_high", "n_train", "n_train_wrong",
    "n_test", "n_test_wrong", "status", "reason",
)


@dataclass(frozen=True)
class Group:
    """The probe set of one group at one cell: ids, features (N, H), labels, test membership."""

    ids: list[str]
    X: np.ndarray
    y: np.ndarray
    is_test: np.ndarray


@dataclass(frozen=True)
class Transfer:
    """One ordered pair: trained on ``train``, tested on ``test``."""

    train: str
    test: str
    site: str
    layer: int
    token: str
    auc: float
    ci_low: float
    ci_high: float
    n_train: int
    n_train_wrong: int
    n_test: int
    n_test_wrong: int
    status: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def cell_group(split_rows: list[dict], shard_paths: list[str], tokens: list[str], cell: Cell,
               cfg: ProbeSettings) -> Group:
    """The questions one cell's probe uses, read at that cell only."""
    data = load_split_features(split_rows, shard_paths, cell.layer, tokens, token=cell.token, site=cell.site)
    use = cell_rows(data, 0, cfg)
    ids = [data.ids[i] for i in np.flatnonzero(use)]
    return Group(ids=ids, X=data.X[use, 0], y=data.labels[use], is_test=data.is_test[use])


def subgroup(group: Group, keep: np.ndarray) -> Group:
    ids = [group.ids[i] for i in np.flatnonzero(keep)]
    return Group(ids=ids, X=group.X[keep], y=group.y[keep], is_test=group.is_test[keep])


def transfer(train_name: str, test_name: str, train: Group, test: Group, cell: Cell,
             cfg: ProbeSettings) -> Transfer:
    """Fit on ``train``'s training rows, score ``test``'s test rows; too few of a class: NaN and why."""
    y_fit, y_eval = train.y[~train.is_test], test.y[test.is_test]
    base = dict(
        train=train_name, test=test_name, **cell._asdict(), n_train=len(y_fit),
        n_train_wrong=int(y_fit.sum()), n_test=len(y_eval), n_test_wrong=int(y_eval.sum()),
    )
    short = class_shortfall({"train": y_fit, "test": y_eval}, cfg.min_per_class)
    if short:
        nan = float("nan")
        return Transfer(**base, auc=nan, ci_low=nan, ci_high=nan, status="skipped", reason=short)
    probe = make_probe(cfg).fit(train.X[~train.is_test].astype(np.float32), y_fit)
    scores = probe.decision_function(test.X[test.is_test].astype(np.float32))
    low, high = bootstrap_auc(y_eval, scores, cfg.bootstrap, cfg.ci_level, cfg.seed)
    return Transfer(**base, auc=roc_auc(y_eval, scores), ci_low=low, ci_high=high, status="ok", reason="")


def across_groups(groups: Mapping[str, Group], cell: Cell, cfg: ProbeSettings) -> list[Transfer]:
    """Every ordered pair of groups at one cell."""
    return [
        transfer(a, b, groups[a], groups[b], cell, cfg) for a in groups for b in groups
    ]


def domain_groups(group: Group, domain_of: Mapping[str, str]) -> dict[str, Group]:
    """Split a cell's probe set by the questions' domains (sorted by name; none: "all")."""
    domains = np.array([domain_of.get(q) or "all" for q in group.ids])
    return {d: subgroup(group, domains == d) for d in sorted(set(domains))}


def across_datasets(datasets: Mapping[str, Mapping], tokens: list[str], cfg: ProbeSettings) -> list[Transfer]:
    """Every ordered pair of datasets, each trained at its own chosen cell.

    ``datasets[name]`` holds ``split`` (rows), ``shards`` (HDF5 paths) and
    ``cell`` (the chosen best cell, or None when none could be fitted).
    """
    cache: dict[tuple[str, Cell], Group] = {}

    def group(name: str, cell: Cell) -> Group:
        if (name, cell) not in cache:
            d = datasets[name]
            cache[name, cell] = cell_group(d["split"], d["shards"], tokens, cell, cfg)
        return cache[name, cell]

    out = []
    for a, spec in datasets.items():
        cell = spec["cell"]
        for b in datasets:
            if cell is None:
                nan = float("nan")
                out.append(Transfer(a, b, "", -1, "", nan, nan, nan, 0, 0, 0, 0, "skipped",
                                    f"no cell of {a} could be fitted"))
                continue
            at = Cell.of(cell)
            out.append(transfer(a, b, group(a, at), group(b, at), at, cfg))
    return out


def across_domains(split_rows: list[dict], shard_paths: list[str], tokens: list[str], cell: Mapping | None,
                   domain_of: Mapping[str, str], cfg: ProbeSettings) -> list[Transfer]:
    """Every ordered pair of a dataset's domains at its chosen cell."""
    if cell is None:
        nan = float("nan")
        return [Transfer("all", "all", "", -1, "", nan, nan, nan, 0, 0, 0, 0, "skipped", "no cell could be fitted")]
    at = Cell.of(cell)
    return across_groups(domain_groups(cell_group(split_rows, shard_paths, tokens, at, cfg), domain_of), at, cfg)
