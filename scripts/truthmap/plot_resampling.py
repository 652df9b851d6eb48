"""Figures of the resampling stages: error-type probes and answers chosen by the probe (no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from truthmap.plotting import _num, _save  # noqa: E402

STRATEGY_COLOURS = {"greedy": "#777777", "random": "#c9b458", "majority": "#d9730d", "probe": "#1f5fa8"}


def plot_error_probes(rows: Sequence[dict], title: str, out_paths: Sequence[str | os.PathLike]) -> None:
    """One bar per error type: the probe's test AUC with its interval, the chance line at 0.5,
    and the type's test prevalence under its name; fine types blue, coarse types orange, skipped
    types an empty slot marked "skipped"."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * len(rows) + 1.6), 4.6))
    for i, r in enumerate(rows):
        auc, low, high = _num(r["auc"]), _num(r["ci_low"]), _num(r["ci_high"])
        if np.isnan(auc):
            ax.text(i, 0.03, "skipped", rotation=90, ha="center", va="bottom", fontsize=7, color="#888888")
            continue
        colour = "#1f5fa8" if r["kind"] == "fine" else "#d9730d"
        ax.bar(i, auc, color=colour, width=0.7)
        ax.errorbar(i, auc, yerr=[[auc - low], [high - auc]], fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['type']}\n({_prevalence(r)})" for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0.0, 1.15)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("Test AUC (positive: of this type), CI")
    ax.set_xlabel("Error type (share of test questions of this type)")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#1f5fa8", label="fine type"), Patch(color="#d9730d", label="coarse, one vs rest")],
              loc="upper left", ncols=2, fontsize=7, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, out_paths)


def _prevalence(row: dict) -> str:
    value = _num(row.get("prevalence"))
    return "n/a" if np.isnan(value) else f"{100 * value:.0f}%"


def plot_answer_selection(rows: Sequence[dict], title: str, out_paths: Sequence[str | os.PathLike]) -> None:
    """Grouped bars: accuracy of each strategy with its interval, for all test questions and for
    each coarse error type (``n`` questions under each group's name); a star marks a strategy
    that differs from greedy at p < 0.05 (exact McNemar)."""
    groups = [t for t in dict.fromkeys(str(r["type"]) for r in rows if r["kind"] in ("all", "coarse"))]
    strategies = [s for s in STRATEGY_COLOURS if any(r["strategy"] == s for r in rows)]
    at = {(str(r["type"]), str(r["strategy"])): r for r in rows}
    width = 0.8 / max(1, len(strategies))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2.0), 4.4))
    for k, strategy in enumerate(strategies):
        for g, group in enumerate(groups):
            r = at.get((group, strategy))
            if r is None or np.isnan(_num(r["accuracy"])):
                continue
            acc, low, high = _num(r["accuracy"]), _num(r["ci_low"]), _num(r["ci_high"])
            x = g - 0.4 + width * (k + 0.5)
            ax.bar(x, acc, width=width * 0.95, color=STRATEGY_COLOURS[strategy], label=strategy if g == 0 else None)
            ax.errorbar(x, acc, yerr=[[acc - low], [high - acc]], fmt="none", ecolor="black", capsize=2, linewidth=0.8)
            if _num(r.get("p_vs_greedy")) < 0.05:
                ax.text(x, min(high, 1.0) + 0.02, "*", ha="center", fontsize=9)
    counts = {str(r["type"]): r["n"] for r in rows}
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g}\n(n={counts[g]})" for g in groups], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0.0, 1.18)
    ax.set_ylabel("Accuracy on the test questions, CI")
    ax.legend(fontsize=8, frameon=False, ncols=len(strategies), loc="upper center")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, out_paths)
