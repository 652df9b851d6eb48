"""Figures of the resampling stages: the share of each error type, the probes that predict the
error type, and the answers chosen by the probe (matplotlib/seaborn, no torch)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from truthmap.plotting import _num, _save  # also selects the Agg backend

ALL = "all questions"
GREEDY_WRONG = "greedy answer wrong"


def _share(value) -> float:
    """A share to draw: an undefined one (NaN, a share of no questions) as 0, beside its count of 0."""
    share = math.nan if value in (None, "", "NaN") else float(value)
    return 0.0 if math.isnan(share) else share


def plot_error_types(summary_rows: Sequence[Mapping], title: str, out_paths: Sequence[str | os.PathLike]) -> None:
    """Each type's share of the questions as horizontal bars, fine types (they overlap) and coarse
    types (one per question) in two panels; a second bar per type is its share among the questions
    whose greedy answer is wrong. The count is printed at the end of each bar.

    ``summary_rows`` are :func:`truthmap.error_types.type_summary` rows, as built or read back
    from ``error_type_summary.tsv`` (strings).
    """
    panels = {kind: [r for r in summary_rows if r["kind"] == kind] for kind in ("fine", "coarse")}
    height = 0.5 * max(len(rows) for rows in panels.values()) + 1.8
    fig, axes = plt.subplots(1, 2, figsize=(12.5, height))
    for ax, (kind, rows) in zip(axes, panels.items(), strict=True):
        _draw_shares(ax, rows)
        overlap = "they overlap" if kind == "fine" else "one per question"
        ax.set_title(f"{kind.capitalize()} types ({overlap})", fontsize=10)
    n = int(summary_rows[0]["n"]) if summary_rows else 0
    n_wrong = int(summary_rows[0]["n_greedy_wrong"]) if summary_rows else 0
    fig.suptitle(title, fontsize=11)
    handles, _ = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend():
            ax.get_legend().remove()
    fig.legend(handles, [f"share of all questions (n={n})", f"share of those with a wrong greedy answer (n={n_wrong})"],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, out_paths)


def _draw_shares(ax, rows: Sequence[Mapping]) -> None:
    """One panel: a bar per type and population, counts at the bars' ends."""
    data = {"type": [], "share": [], "count": [], "of": []}
    for r in rows:
        for of, share, count in ((ALL, r["share"], r["count"]),
                                 (GREEDY_WRONG, r["share_greedy_wrong"], r["count_greedy_wrong"])):
            data["type"].append(str(r["type"]))
            data["share"].append(_share(share))
            data["count"].append(int(count))
            data["of"].append(of)
    sns.barplot(data=data, x="share", y="type", hue="of", hue_order=[ALL, GREEDY_WRONG], ax=ax,
                palette=["#1f5fa8", "#d9730d"], orient="h", errorbar=None)
    for container, of in zip(ax.containers, (ALL, GREEDY_WRONG), strict=False):
        counts = [c for c, o in zip(data["count"], data["of"], strict=True) if o == of]
        ax.bar_label(container, labels=[str(c) for c in counts], padding=2, fontsize=7)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("Share of questions")
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", linewidth=0.3, alpha=0.6)

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
