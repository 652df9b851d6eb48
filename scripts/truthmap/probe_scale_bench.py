"""The probe stage at the paper's scale, per backend: 32 layers x 12 tokens, 4,096 features, 10,000 questions.

    PYTHONPATH=scripts .venv/bin/python -m truthmap.probe_scale_bench [--cells 1] [--out results/bench]

Synthetic features with a planted signal (correlated like hidden states: a low-rank part, large
per-feature means, noise; the wrong answers shifted along one direction), split and fitted as
``train_probes`` does with the default settings: the primary split, 5-fold cross-validation of
its training questions and 4 further seeded splits, 10 fits per cell, then the cell's scoring
(test AUC and its bootstrap interval, fold AUCs, split AUCs).

The whole stage, 384 cells, does not fit in a bench run on a small CPU, so a slice is timed at
full size and scaled, and both figures are printed: per backend on the CPU one cell (scikit-learn:
its primary fit alone, times the cell's fits, plus the cell's scoring), x 384; on a GPU the 12
cells of one layer in one torch batch, x 32. Every figure is one process's wall time with the
threads it has (a ``train_probes`` job has one, and 31-32 of them run side by side). Writes
``probe_scale.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Scale:
    """The paper's probe stage (Orgad et al.: a 7B-8B model, 10,000 questions)."""

    layers: int = 32
    tokens: int = 12
    hidden: int = 4096
    questions: int = 10_000

    @property
    def cells(self) -> int:
        return self.layers * self.tokens


@dataclass(frozen=True)
class Timing:
    """One backend's measured slice and what it gives for the whole stage."""

    backend: str
    slice: str
    """What was timed."""
    measured_s: float
    per_cell_s: float
    stage_s: float
    """``per_cell_s`` x the stage's cells (one GPU: a layer's batch x the layers)."""
    primary_auc: float
    """The first cell's test AUC: the backends agree when they reach the same optimum."""


def synthetic_cells(scale: Scale, n_cells: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Features (questions, hidden) of ``n_cells`` cells of one layer, float32, and the labels they
    share (1 = wrong, 40%); each cell's signal is planted at its own strength."""
    rng = np.random.default_rng(seed)
    y = (rng.random(scale.questions) < 0.4).astype(int)
    cells = []
    for c in range(n_cells):
        rank = 64
        X = rng.standard_normal((scale.questions, rank), dtype=np.float32) @ (
            rng.standard_normal((rank, scale.hidden), dtype=np.float32) * 0.5)
        X += rng.standard_normal((scale.questions, scale.hidden), dtype=np.float32)
        X += rng.normal(scale=3.0, size=scale.hidden).astype(np.float32)  # large means, as hidden states have
        direction = rng.standard_normal(scale.hidden).astype(np.float32)
        direction *= (2.0 + 0.1 * c) / np.linalg.norm(direction)  # the classes this far apart along it
        X += np.outer(y - 0.5, direction)
        cells.append(X)
    return cells, y


def cell_data(features: Sequence[np.ndarray], y: np.ndarray, cfg, split) -> list:
    """The cells as ``train_probes`` has them: the primary split and the further seeded ones."""
    from truthmap.probes import CellData, assign_splits

    ids = [f"q{i:05d}" for i in range(len(y))]
    every = np.ones(len(y), dtype=bool)
    is_test = assign_splits(ids, y, every, split.test_fraction, split.seed)[0]
    others = [assign_splits(ids, y, every, split.test_fraction, split.seed + k)[0] for k in range(1, cfg.split_seeds)]
    return [CellData(0, str(-p - 1), X, y, is_test, 0, ids, others) for p, X in enumerate(features)]


def time_cells(cells: Sequence, cfg, backend: str, device: str | None = None) -> tuple[float, list]:
    """Seconds to fit and score ``cells`` as ``train_probes`` does, and their results."""
    from truthmap.probes import fit_cells, plan_fits, score_cell

    start = time.perf_counter()
    plans = [plan_fits(c.y, c.is_test, c.other_splits, cfg) for c in cells]
    fits, seconds, label = fit_cells(cells, plans, cfg, backend, device=device)
    results = [score_cell(c, p, f, s, cfg, label) for c, p, f, s in zip(cells, plans, fits, seconds)]
    return time.perf_counter() - start, results


def time_reference(cell, cfg) -> tuple[float, float]:
    """scikit-learn on the cell's primary fit alone: seconds, and the test AUC."""
    from truthmap.probes import plan_fits, reference_fits
    from truthmap.stats import roc_auc

    plan = plan_fits(cell.y, cell.is_test, cell.other_splits, cfg)
    start = time.perf_counter()
    fits = reference_fits(cell.X, cell.y, plan.masks[:1], cfg.C, cfg.max_iter)
    seconds = time.perf_counter() - start
    return seconds, roc_auc(cell.y[cell.is_test], fits.decision_function(cell.X[cell.is_test], 0))


def run(scale: Scale, n_cpu_cells: int = 1, gpu_cells: int | None = None,
        say: Callable[[str], None] = print) -> dict:
    """Time every backend on its slice; a dict of the figures (``probe_scale.json``)."""
    import torch

    from truthmap.probes import plan_fits
    from truthmap.settings import ProbeSettings, SplitSettings

    cfg, split = ProbeSettings(), SplitSettings()
    gpu = torch.cuda.is_available()
    n_gpu = (gpu_cells or scale.tokens) if gpu else 0
    start = time.perf_counter()
    features, y = synthetic_cells(scale, max(n_cpu_cells, n_gpu))
    cells = cell_data(features, y, cfg, split)
    say(f"probe stage at {scale.layers} layers x {scale.tokens} tokens = {scale.cells} cells, {scale.hidden} features, "
        f"{scale.questions:,} questions (synthetic, made in {time.perf_counter() - start:.1f} s); "
        f"{torch.get_num_threads()} CPU threads")
    n_fits = len(plan_fits(cells[0].y, cells[0].is_test, cells[0].other_splits, cfg).masks)
    fit_s, auc = time_reference(cells[0], cfg)
    per_cell = fit_s * n_fits + scoring_seconds(cells[0], cfg)
    timings = [Timing("sklearn", f"1 of a cell's {n_fits} fits; x {n_fits}, plus the cell's scoring", fit_s,
                      per_cell, per_cell * scale.cells, auc)]
    for backend in ("numpy", "torch"):
        seconds, results = time_cells(cells[:n_cpu_cells], cfg, backend, device="cpu")
        timings.append(Timing(results[0].backend, f"{n_cpu_cells} cell(s) of {n_fits} fits", seconds,
                              seconds / n_cpu_cells, seconds / n_cpu_cells * scale.cells, results[0].auc))
    if gpu:
        time_cells(cells[:1], cfg, "torch", device="cuda")  # CUDA's start-up, not the stage's
        seconds, results = time_cells(cells[:n_gpu], cfg, "torch", device="cuda")
        timings.append(Timing(results[0].backend, f"{n_gpu} cells of one layer in one batch", seconds,
                              seconds / n_gpu, seconds * scale.cells / n_gpu, results[0].auc))
    report = {"scale": asdict(scale), "threads": torch.get_num_threads(),
              "gpu": torch.cuda.get_device_name(0) if gpu else None,
              "timings": [asdict(t) for t in timings]}
    for line in format_table(timings, scale):
        say(line)
    return report


def scoring_seconds(cell, cfg) -> float:
    """Seconds of a cell's scoring alone (test AUC, bootstrap, folds, splits), from numpy's fits."""
    from truthmap.logistic import fit_many
    from truthmap.probes import plan_fits, score_cell

    plan = plan_fits(cell.y, cell.is_test, cell.other_splits, cfg)
    fits = fit_many(cell.X, cell.y, plan.masks, cfg.C, 1, bases=plan.bases)  # one step: scoring costs the same
    start = time.perf_counter()
    score_cell(cell, plan, fits, 0.0, cfg, "numpy")
    return time.perf_counter() - start


def format_table(timings: Sequence[Timing], scale: Scale) -> list[str]:
    lines = ["| backend | measured slice | measured s | per cell s | whole stage, extrapolated | test AUC, cell 1 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for t in timings:
        lines.append(f"| {t.backend} | {t.slice} | {t.measured_s:.1f} | {t.per_cell_s:.2f} | "
                     f"{t.stage_s:,.0f} s = {t.stage_s / 3600:.2f} h ({scale.cells} cells) | {t.primary_auc:.4f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m truthmap.probe_scale_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1, help="cells timed per CPU backend (default 1)")
    parser.add_argument("--gpu-cells", type=int, default=None, help="cells in the GPU's batch (default: a layer's 12)")
    parser.add_argument("--questions", type=int, default=Scale.questions)
    parser.add_argument("--hidden", type=int, default=Scale.hidden)
    parser.add_argument("--out", default="results/bench")
    opts = parser.parse_args(argv)
    scale = Scale(questions=opts.questions, hidden=opts.hidden)
    report = run(scale, opts.cells, opts.gpu_cells, say=lambda line: print(line, flush=True))
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe_scale.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {out / 'probe_scale.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
