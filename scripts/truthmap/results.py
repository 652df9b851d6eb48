"""Gathering per-cell results into the AUC table, and the run summary."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from truthmap.files import InputError, read_json
from truthmap.settings import EMBEDDINGS_LAYER, TOKEN_NAMES
from truthmap.stats import within_group_summary

#: What every cell's JSON holds (train_probes); auc.tsv adds the within-group columns.
CELL_COLUMNS = (
    "site", "layer", "token", "auc", "ci_low", "ci_high", "auc_split_mean", "auc_split_std", "n_train", "n_test",
    "n_train_wrong", "n_test_wrong", "train_auc", "cv_auc", "cv_folds", "n_excluded", "status", "reason", "backend",
)
WITHIN_COLUMNS = ("auc_within_group", "within_ci_low", "within_ci_high", "groups")
AUC_COLUMNS = (*CELL_COLUMNS[:6], *WITHIN_COLUMNS, *CELL_COLUMNS[6:])


class Cell(NamedTuple):
    """Where a probe reads: a site of a layer at a token position."""

    site: str
    layer: int
    token: str

    @classmethod
    def of(cls, cell: Mapping) -> Cell:
        """The cell a cell result or a selection (``select_cells``) names."""
        return cls(str(cell["site"]), int(cell["layer"]), str(cell["token"]))


def rows_by_site(rows: Sequence[Mapping]) -> dict[str, list]:
    """The rows of each site (``activations.sites``), in the order the sites first appear."""
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(str(r.get("site", "")), []).append(r)
    return out


def gather_cells(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Read cell JSON files, sorted by site (in the order first met), then layer, then token in
    heatmap order."""
    rows = []
    for path in paths:
        cell = read_json(path)
        missing = [c for c in CELL_COLUMNS if c not in cell]
        if missing:
            raise InputError(f"{path}: cell result lacks {missing}")
        if str(cell["token"]) not in TOKEN_NAMES:
            raise InputError(f"{path}: unknown token {cell['token']!r}")
        rows.append(cell)
    order = {name: i for i, name in enumerate(TOKEN_NAMES)}
    sites = {site: i for i, site in enumerate(dict.fromkeys(str(r["site"]) for r in rows))}
    seen = Counter((r["site"], r["layer"], r["token"]) for r in rows)
    dupes = [k for k, n in seen.items() if n > 1]
    if dupes:
        raise InputError(f"duplicate cells {dupes} among the probe results")
    return sorted(rows, key=lambda r: (sites[str(r["site"])], int(r["layer"]), order[str(r["token"])]))


def within_group_cells(rows: Sequence[dict], split_rows: Sequence[dict], groups: dict[str, str] | None,
                       n_boot: int, level: float, seed: int) -> list[dict]:
    """Each cell with its AUC within groups (:func:`truthmap.stats.within_group_auc`) and interval,
    from the test scores the cell kept; NaN and 0 groups without groups or without scores."""
    label = {r["id"]: int(r["label"]) for r in split_rows}
    out = []
    for row in rows:
        within = (math.nan, math.nan, math.nan, 0)
        ids = row.get("test_ids") or []
        if groups is not None and row.get("status") == "ok" and ids and all(q in groups for q in ids):
            within = within_group_summary(np.array([label[q] for q in ids]), np.asarray(row["test_scores"], dtype=float),
                                          np.array([groups[q] for q in ids], dtype=object), n_boot, level, seed)
        out.append({**row, **dict(zip(WITHIN_COLUMNS, within))})
    return out


def best_cells(rows: Sequence[dict], k: int = 5) -> list[dict]:
    """The k cells with the highest test AUC (for a summary, not a result: see the docs); the
    embeddings row, the same at every site, counts once."""
    scored, embeddings = [], set()
    for r in rows:
        is_embeddings = int(r.get("layer", 0)) == EMBEDDINGS_LAYER
        if r.get("auc") is None or _isnan(r["auc"]) or (is_embeddings and r["token"] in embeddings):
            continue
        if is_embeddings:
            embeddings.add(r["token"])
        scored.append(r)
    return sorted(scored, key=lambda r: -float(r["auc"]))[:k]


def honest_best_per_site(rows: Sequence[dict]) -> dict[str, dict | None]:
    """Per site, the cell cross-validation on the training questions chooses
    (:func:`truthmap.detectors.select_cells`) with its test AUC: which site detects errors best,
    without the test set choosing."""
    from truthmap.detectors import BEST_PROBE, select_cells

    out = {}
    for site, cells in rows_by_site(rows).items():
        best = select_cells(cells)[BEST_PROBE]
        out[site] = best and {"layer": int(best["layer"]), "token": best["token"],
                              **{k: float(best[k]) for k in ("cv_auc", "auc", "ci_low", "ci_high")}}
    return out


def _isnan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def label_summary(labels: Sequence[dict], generations: Sequence[dict]) -> dict:
    """Accuracy, exact-answer coverage and finish reasons of a (model, dataset)."""
    n = len(labels)
    correct = sum(bool(r["correct"]) for r in labels)
    wrong = [r for r in labels if not r["correct"]]
    methods = Counter(r["exact_method"] for r in labels)
    domains: dict[str, list[bool]] = {}
    for gen, lab in zip(generations, labels):
        domains.setdefault(gen.get("domain") or "all", []).append(bool(lab["correct"]))
    return {
        "n_questions": n,
        "n_correct": correct,
        "accuracy": correct / n if n else float("nan"),
        "accuracy_by_domain": {d: sum(v) / len(v) for d, v in sorted(domains.items())},
        "exact_answer_methods": dict(sorted(methods.items())),
        "n_no_exact_answer": methods.get("none", 0),
        "n_no_answer": sum(bool(r["no_answer"]) for r in labels),
        "no_answer_rate": sum(bool(r["no_answer"]) for r in labels) / n if n else float("nan"),
        "n_wrong_no_exact_answer": sum(r["exact_method"] == "none" for r in wrong),
        "no_exact_answer_reasons": dict(
            sorted(Counter(reason_kind(r["reason"]) for r in labels if r["exact_method"] == "none").items())
        ),
        "exact_answer_coverage": exact_answer_coverage(labels),
        "finish_reasons": dict(sorted(Counter(g["finish_reason"] for g in generations).items())),
        "mean_generated_tokens": (
            sum(len(g["gen_ids"]) for g in generations) / len(generations) if generations else float("nan")
        ),
    }


def exact_answer_coverage(labels: Sequence[dict]) -> dict:
    """How many wrong answers have an exact answer after the first extraction try and after the
    retries, how many tries the found ones took, and why the rest have none (by kind of reason).

    A wrong answer whose exact answer needed no extraction (a named choice) counts as found at
    the first try; the first try's outcome is in every label (``extraction_tries``), so one run
    gives both figures.
    """
    wrong = [r for r in labels if not r["correct"]]
    found = [r for r in wrong if r["exact_method"] != "none"]
    first = [r for r in found if r.get("extraction_tries", 0) <= 1]
    share = (lambda k: k / len(wrong)) if wrong else (lambda k: float("nan"))
    return {
        "n_wrong": len(wrong),
        "n_found_first_try": len(first),
        "n_found": len(found),
        "share_first_try": share(len(first)),
        "share_after_retries": share(len(found)),
        "tries_of_found": {str(k): n for k, n in sorted(Counter(r.get("extraction_tries", 0) for r in found).items())},
        "first_try_failures": dict(sorted(Counter(
            reason_kind(r["extraction_failures"][0]) for r in wrong if r.get("extraction_failures")).items())),
        "not_found_reasons": dict(sorted(Counter(
            reason_kind(r["reason"]) for r in wrong if r["exact_method"] == "none").items())),
    }


def reason_kind(reason: str) -> str:
    """A reason without its example-specific details, for counting."""
    for kind in ("no choice named", "NO ANSWER", "reply is empty", "not in the generated text",
                 "not a short answer", "does not fit the extractor's context", "empty generation"):
        if kind in reason:
            return kind
    return reason


def run_summary(generations: Sequence[dict], labels: Sequence[dict], split: Sequence[dict],
                auc: Sequence[dict], skipped: Sequence[dict] = ()) -> dict:
    """Everything a reader wants first: accuracy, coverage, probe set sizes, top cells."""
    label_by_id = {r["id"]: r for r in labels}
    ordered = [label_by_id[g["id"]] for g in generations]
    common = [r for r in split if int(r["common"]) == 1]
    return {
        **label_summary(ordered, generations),
        "dtype": ", ".join(sorted({g.get("dtype", "unrecorded") for g in generations})),
        "n_malformed_rows_skipped": len(skipped),
        "positive_class": "wrong answer (label 1)",
        "n_probe_examples": len(common),
        "n_left_out_of_cells": len(split) - len(common),
        "left_out_reasons": dict(Counter(r["reason"].split(" (")[0] for r in split if int(r["common"]) != 1)),
        "n_probe_test": sum(r["split"] == "test" for r in common),
        "n_probe_test_wrong": sum(r["split"] == "test" and int(r["label"]) == 1 for r in common),
        "best_cells_on_test_grid": [
            {"site": r["site"], "layer": int(r["layer"]), "token": r["token"],
             **{k: float(r[k]) for k in ("auc", "ci_low", "ci_high")}}
            for r in best_cells(auc)
        ],
        "best_cells_note": "the maximum of the test grid is optimistic; it is a summary, not a held-out result",
        "best_cell_per_site": honest_best_per_site(auc),
    }
