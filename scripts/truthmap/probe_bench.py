"""The probe solver measured A/B on one layer of a finished run: scikit-learn vs the batched fits.

    PYTHONPATH=scripts .venv/bin/python -m truthmap.probe_bench [--layer 15] [--repeats 3] [--backend torch]

Run it in a run's folder (it reads ``probes/split.tsv`` and the activation shards). Both
sides fit every cell of the layer exactly as ``train_probes`` needs (the primary split, the
cross-validation folds, the further seeded splits), alternately, in one process with one
thread, as a probe job runs: A, scikit-learn's ``StandardScaler`` + ``LogisticRegression``
one fit at a time; B, :func:`truthmap.logistic.fit_many`, one batch per cell (``--backend
torch``: :func:`truthmap.torch_logistic.fit_cells`, the layer's cells in one batch). How near each
stops to the optimum: the largest gap, over the cells, between its primary fit's test AUC and
that of a fit run to a gradient of 1e-9 (or 3,000 steps).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def cell_data(run: Path, model: str, dataset: str, layer: int, cfg, split) -> list[tuple]:
    """(X, y, is_test, plan) of every fitted cell of ``layer`` at the residual site."""
    from truthmap.files import read_tsv
    from truthmap.h5io import read_meta
    from truthmap.probes import cell_rows, class_shortfall, load_split_features, plan_fits, seeded_test_masks

    out = run / "results" / model / dataset
    shards = sorted(str(p) for p in (out / "activations").glob("*.h5"))
    tokens = read_meta(shards[0]).tokens
    data = load_split_features(read_tsv(out / "probes" / "split.tsv"), shards, layer, tokens)
    others = seeded_test_masks(data, split, cfg.split_seeds)
    cells = []
    for p in range(len(tokens)):
        use = cell_rows(data, p, cfg)
        X, y, is_test = data.X[use, p].astype(np.float32), data.labels[use], data.is_test[use]
        if not class_shortfall({"train": y[~is_test], "test": y[is_test]}, cfg.min_per_class):
            cells.append((X, y, is_test, plan_fits(y, is_test, [o[use] for o in others], cfg)))
    return cells


def one_at_a_time(cells, cfg) -> list[float]:
    """scikit-learn, every fit on its own: the primary fits' test AUCs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from truthmap.stats import roc_auc

    aucs = []
    for X, y, is_test, plan in cells:
        fitted = [make_pipeline(StandardScaler(), LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)).fit(X[m], y[m])
                  for m in plan.masks]
        aucs.append(roc_auc(y[is_test], fitted[0].decision_function(X[is_test])))
    return aucs


def batched(cells, cfg, tol: float | None = None, primary_only: bool = False) -> list[float]:
    """:func:`truthmap.logistic.fit_many`, a cell's fits in one batch: the primary fits' test AUCs."""
    from truthmap.logistic import TOL, fit_many
    from truthmap.stats import roc_auc

    aucs = []
    for X, y, is_test, plan in cells:
        masks, bases = (plan.masks[:1], [0]) if primary_only else (plan.masks, plan.bases)
        max_iter = 3000 if tol is not None else cfg.max_iter
        fits = fit_many(X, y, masks, cfg.C, max_iter, tol=TOL if tol is None else tol, bases=bases)
        aucs.append(roc_auc(y[is_test], fits.decision_function(X[is_test], 0)))
    return aucs


def layer_batch(cells, cfg) -> list[float]:
    """The torch backend: every cell of the layer with all its fits in one batch (on a GPU when
    one is present): the primary fits' test AUCs."""
    from truthmap.stats import roc_auc
    from truthmap.torch_logistic import CellFits, fit_cells

    fits = fit_cells([CellFits(X, y, plan.masks, plan.bases) for X, y, _, plan in cells], cfg.C, cfg.max_iter)
    return [roc_auc(y[is_test], f.decision_function(X[is_test], 0)) for (X, y, is_test, _), f in zip(cells, fits)]


def main(argv: Sequence[str] | None = None) -> int:
    from truthmap.lever_bench import Lever, alternate, format_row, header
    from truthmap.settings import ProbeSettings, SplitSettings

    parser = argparse.ArgumentParser(prog="python -m truthmap.probe_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=".", help="the run's folder (default: here)")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--dataset", default="builtin")
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=("numpy", "torch"), default="numpy",
                        help="side B: numpy (a cell's fits in one batch) or torch (a layer's cells in one batch)")
    opts = parser.parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: a probe job runs with one thread; set OMP_NUM_THREADS=1 for its figures")
    cfg, split = ProbeSettings(), SplitSettings()
    cells = cell_data(Path(opts.run), opts.model, opts.dataset, opts.layer, cfg, split)
    fits = sum(len(plan.masks) for *_, plan in cells)
    print(f"layer {opts.layer}: {len(cells)} cells, {fits} fits; median of {opts.repeats}")
    side_b = (lambda: layer_batch(cells, cfg)) if opts.backend == "torch" else (lambda: batched(cells, cfg))
    a_s, b_s, a_auc, b_auc = alternate(lambda: one_at_a_time(cells, cfg), side_b, opts.repeats)
    optimum = batched(cells, cfg, tol=1e-9, primary_only=True)
    gap = {side: max(abs(a - o) for a, o in zip(aucs, optimum)) for side, aucs in (("a", a_auc), ("b", b_auc))}
    print(header())
    print(format_row(Lever("probe fits of one layer", "scikit-learn", f"batched ({opts.backend})", a_s, b_s,
                           f"test AUC within {gap['a']:.1e} (A) / {gap['b']:.1e} (B) of the optimum")))
    print(f"largest test-AUC difference, scikit-learn vs {opts.backend}: "
          f"{max(abs(a - b) for a, b in zip(a_auc, b_auc)):.1e} over {len(cells)} cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
