"""The Layer x Token AUC heatmap (matplotlib/seaborn only; no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from truthmap.config import TOKEN_NAMES  # noqa: E402
from truthmap.files import atomic_path  # noqa: E402


def auc_grid(rows: Sequence[dict]) -> tuple[np.ndarray, list[int], list[str]]:
    """(layers x tokens) AUC matrix, NaN where a cell was skipped, with its axes."""
    layers = sorted({int(r["layer"]) for r in rows})
    present = {str(r["token"]) for r in rows}
    tokens = [t for t in TOKEN_NAMES if t in present]
    grid = np.full((len(layers), len(tokens)), np.nan)
    li = {layer: i for i, layer in enumerate(layers)}
    ti = {token: j for j, token in enumerate(tokens)}
    for r in rows:
        value = r["auc"]
        grid[li[int(r["layer"])], ti[str(r["token"])]] = np.nan if value in (None, "NaN") else float(value)
    return grid, layers, tokens


def plot_heatmap(
    rows: Sequence[dict],
    title: str,
    out_paths: Sequence[str | os.PathLike],
    annotate: bool = True,
) -> None:
    """Layer on y (0 at the top), token on x, Blues from 0.5 to 1.0 with a colour bar."""
    grid, layers, tokens = auc_grid(rows)
    height = max(4.5, 0.28 * len(layers) + 1.8)
    width = max(5.0, 0.62 * len(tokens) + 2.4)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_facecolor("#e8e8e8")  # skipped cells (NaN) show as grey
    sns.heatmap(
        grid, ax=ax, cmap="Blues", vmin=0.5, vmax=1.0,
        xticklabels=tokens, yticklabels=layers,
        annot=annotate, fmt=".2f", annot_kws={"fontsize": 6},
        cbar_kws={"label": "ROC AUC (positive class: wrong answer)", "shrink": 0.9},
        linewidths=0.3, linecolor="white",
    )
    ax.set_xlabel("Token")
    ax.set_ylabel("Layer")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=7)
    if len(layers) > 16:  # thin the layer ticks to every second layer, like the paper
        ax.set_yticks(np.arange(0, len(layers), 2) + 0.5)
        ax.set_yticklabels(layers[::2])
    fig.tight_layout()
    for path in out_paths:
        suffix = os.path.splitext(str(path))[1]
        with atomic_path(path, suffix=suffix) as tmp:
            fig.savefig(tmp, dpi=150, format=suffix.lstrip("."))
    plt.close(fig)
