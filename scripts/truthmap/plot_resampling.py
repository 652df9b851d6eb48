"""Figures of the resampling stage: how often each type of error occurs (matplotlib/seaborn only)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import seaborn as sns

from truthmap.plotting import _save  # also selects the Agg backend

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
