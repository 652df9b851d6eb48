"""The Layer x Token AUC heatmap (matplotlib/seaborn only; no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from truthmap.results import rows_by_site  # noqa: E402
from truthmap.settings import EMBEDDINGS_LAYER, TOKEN_NAMES  # noqa: E402
from truthmap.files import atomic_path  # noqa: E402

#: The colour scale of AUC heatmaps, and of differences of two AUCs (the explorer uses the same).
AUC_SCALE = {"cmap": "Blues", "vmin": 0.5, "vmax": 1.0}
DIFFERENCE_SCALE = {"cmap": "RdBu", "vmin": -0.5, "vmax": 0.5}


def auc_grid(rows: Sequence[dict], column: str = "auc") -> tuple[np.ndarray, list[int], list[str]]:
    """(layers x tokens) matrix of ``column`` (the AUC), NaN where a cell was skipped, with its axes."""
    layers = sorted({int(r["layer"]) for r in rows})
    present = {str(r["token"]) for r in rows}
    tokens = [t for t in TOKEN_NAMES if t in present]
    grid = np.full((len(layers), len(tokens)), np.nan)
    li = {layer: i for i, layer in enumerate(layers)}
    ti = {token: j for j, token in enumerate(tokens)}
    for r in rows:
        value = r.get(column)
        grid[li[int(r["layer"])], ti[str(r["token"])]] = np.nan if value in (None, "", "NaN") else float(value)
    return grid, layers, tokens


def plot_heatmap(
    rows: Sequence[dict],
    title: str,
    out_paths: Sequence[str | os.PathLike],
    annotate: bool = True,
    column: str = "auc",
    colour_label: str = "ROC AUC (positive class: wrong answer)",
) -> None:
    """Layer on y (0 at the top), token on x, Blues from 0.5 to 1.0 with a colour bar; one panel
    per site, side by side on the same scale.

    ``column`` picks the value drawn: the pooled ``auc`` or ``auc_within_group``.
    """
    panels = {site: auc_grid(part, column) for site, part in (rows_by_site(rows) or {"": []}).items()}
    _draw_grids(panels, title, out_paths, annotate, dict(AUC_SCALE), colour_label)


def plot_difference(
    rows: Sequence[dict],
    baseline: str,
    baseline_auc: float,
    title: str,
    out_paths: Sequence[str | os.PathLike],
    annotate: bool = True,
) -> None:
    """Each cell's AUC minus ``baseline_auc`` (a baseline detector's on the same test questions):
    blue where the probe beats the baseline, red where it does worse, white at a tie."""
    panels = {}
    for site, part in (rows_by_site(rows) or {"": []}).items():
        grid, layers, tokens = auc_grid(part)
        panels[site] = (grid - baseline_auc, layers, tokens)
    _draw_grids(panels, title, out_paths, annotate, dict(DIFFERENCE_SCALE, center=0.0),
                f"AUC minus {baseline} ({baseline_auc:.3f})")


def _draw_grids(panels: dict[str, tuple[np.ndarray, list[int], list[str]]], title: str,
                out_paths: Sequence[str | os.PathLike], annotate: bool, scale: dict, colour_label: str,
                per_row: int = 3) -> None:
    """One Layer x Token grid per site (at most ``per_row`` to a row): layer on y (0 at the top),
    token on x, skipped cells grey, one colour bar for all."""
    n_layers = max(len(layers) for _, layers, _ in panels.values())
    n_tokens = max(len(tokens) for _, _, tokens in panels.values())
    height = max(4.5, 0.28 * n_layers + 1.8)
    width = max(4.0, 0.62 * n_tokens + 1.4)
    cols = min(per_row, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols + 1, figsize=(cols * width + 1.0, rows * height), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * cols + [0.04]})
    colour_bar = axes[0][cols]
    for i, (site, (grid, layers, tokens)) in enumerate(panels.items()):
        ax = axes[i // cols][i % cols]
        _draw_panel(ax, grid, layers, tokens, annotate, scale, colour_bar if i == 0 else None, colour_label)
        if len(panels) > 1:
            ax.set_title(f"site: {site}", fontsize=10)
        elif site:
            ax.set_xlabel(f"Token (site: {site})")
        if i % cols:
            ax.set_ylabel("")
    for i in range(len(panels), rows * cols):  # empty slots of the last row
        fig.delaxes(axes[i // cols][i % cols])
    for r in range(1, rows):
        fig.delaxes(axes[r][cols])
    if len(panels) > 1:
        fig.suptitle(title)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.7 / fig.get_figheight()))  # room for the two-line title
    else:
        axes[0][0].set_title(title)
        fig.tight_layout()
    _save(fig, out_paths)


def _draw_panel(ax, grid: np.ndarray, layers: Sequence[int], tokens: Sequence[str], annotate: bool, scale: dict,
                colour_bar, colour_label: str) -> None:
    """One site's grid; the colour bar goes to ``colour_bar`` (an axes), or nowhere when None."""
    ax.set_facecolor("#e8e8e8")  # skipped cells (NaN) show as grey
    labels = ["emb" if layer == EMBEDDINGS_LAYER else layer for layer in layers]
    sns.heatmap(
        grid, ax=ax, **scale,
        xticklabels=tokens, yticklabels=labels,
        annot=annotate, fmt=".2f", annot_kws={"fontsize": 6},
        cbar=colour_bar is not None, cbar_ax=colour_bar, cbar_kws={"label": colour_label},
        linewidths=0.3, linecolor="white",
    )
    ax.set_xlabel("Token")
    ax.set_ylabel("Layer")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=7)
    if len(layers) > 16:  # thin the layer ticks to the even layers, like the paper (and the embeddings row)
        rows = [i for i, layer in enumerate(layers) if layer == EMBEDDINGS_LAYER or layer % 2 == 0]
        ax.set_yticks(np.array(rows) + 0.5)
        ax.set_yticklabels([labels[i] for i in rows])


def _save(fig, out_paths: Sequence[str | os.PathLike]) -> None:
    for path in out_paths:
        suffix = os.path.splitext(str(path))[1]
        with atomic_path(path, suffix=suffix) as tmp:
            fig.savefig(tmp, dpi=150, format=suffix.lstrip("."))
    plt.close(fig)


def _num(value) -> float:
    return np.nan if value in (None, "", "NaN") else float(value)


def plot_detectors(rows: Sequence[dict], title: str, out_paths: Sequence[str | os.PathLike]) -> None:
    """Every detector's test AUC with its 95% interval, best first; probes in blue, the group
    control in orange, other baselines grey. Where the questions have groups, a hollow diamond
    below each dot is the AUC within groups, with its own interval."""
    rows = [r for r in rows if not np.isnan(_num(r["auc"]))]
    within_any = any(not np.isnan(_num(r.get("auc_within_group"))) for r in rows)
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, (0.42 if within_any else 0.32) * len(rows) + 1.6)))
    for i, r in enumerate(rows):
        auc, low, high = _num(r["auc"]), _num(r["ci_low"]), _num(r["ci_high"])
        method = str(r["method"])
        colour = "#1f5fa8" if method.startswith("probe") else "#d9730d" if method == "group_prior" else "#777777"
        ax.errorbar(auc, i, xerr=[[auc - low], [high - auc]], fmt="o", color=colour, capsize=3)
        within = _num(r.get("auc_within_group"))
        if not np.isnan(within):
            w_low, w_high = _num(r.get("within_ci_low")), _num(r.get("within_ci_high"))
            ax.errorbar(within, i + 0.3, xerr=[[within - w_low], [w_high - within]], fmt="D", color=colour,
                        markerfacecolor="white", markersize=4, capsize=2, linewidth=0.8)
        p = _num(r.get("p_vs_best_probe"))
        label = "" if np.isnan(p) else ("p<0.001" if p < 0.001 else f"p={p:.3f}")
        ax.text(1.005, i, label, va="center", fontsize=7, transform=ax.get_yaxis_transform())
    ax.axvline(0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["method"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ROC AUC on the test questions (positive class: wrong answer), 95% CI")
    if within_any:
        from matplotlib.lines import Line2D

        ax.legend(handles=[Line2D([], [], marker="o", color="#444444", linestyle="", label="pooled"),
                           Line2D([], [], marker="D", color="#444444", markerfacecolor="white", linestyle="",
                                  markersize=4, label="within groups")],
                  loc="lower left", fontsize=7, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, out_paths)


def plot_generalisation(rows: Sequence[dict], title: str, out_paths: Sequence[str | os.PathLike]) -> None:
    """Train group on y, test group on x, AUC in Blues from 0.5 to 1.0 (grey: skipped)."""
    train = list(dict.fromkeys(str(r["train"]) for r in rows))
    test = list(dict.fromkeys(str(r["test"]) for r in rows))
    grid = np.full((len(train), len(test)), np.nan)
    for r in rows:
        grid[train.index(str(r["train"])), test.index(str(r["test"]))] = _num(r["auc"])
    side = max(3.5, 0.7 * max(len(train), len(test)) + 2.2)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    ax.set_facecolor("#e8e8e8")
    sns.heatmap(grid, ax=ax, **AUC_SCALE, xticklabels=test, yticklabels=train,
                annot=True, fmt=".2f", annot_kws={"fontsize": 7}, linewidths=0.3, linecolor="white",
                cbar_kws={"label": "ROC AUC (positive class: wrong answer)", "shrink": 0.8})
    ax.set_xlabel("Tested on")
    ax.set_ylabel("Trained on")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    fig.tight_layout()
    _save(fig, out_paths)
