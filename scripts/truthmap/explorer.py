"""The run explorer: one self-contained HTML page per (model, dataset) that opens from disk.

The page (``explorer_assets/``: hand-written JavaScript and SVG, no library, no network)
draws the Layer x Token heatmap of every site on the figure's colour scale, a cell's panel
(ROC curve, score distributions of right and wrong answers, interval, split spread,
within-group AUC, and the test questions sorted by the probe's score with the exact answer
and the probed token marked), the detectors table with its interval plot, and the
difference heatmap against a second run's explorer file chosen in the page.

This module builds the data the page embeds, from the run's own outputs: the cell
results (their test questions and scores), the split's labels, the generations with
their exact-answer spans, the token positions and the detectors table. Everything the
page shows of a cell comes from that cell's JSON; the page computes only the ROC
curve and the histograms from the embedded scores.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from matplotlib import colormaps
from matplotlib.colors import to_hex

from truthmap.plotting import AUC_SCALE, DIFFERENCE_SCALE
from truthmap.positions import token_char_spans
from truthmap.results import Cell

#: Colours sampled from each colour map; the page picks the nearest.
SCALE_STEPS = 64
#: Significant digits of the embedded probe scores (ties they create move an AUC by < 1e-4).
SCORE_DIGITS = 6
#: The cell columns the page shows, as the cell JSON names them.
CELL_FIELDS = (
    "auc", "ci_low", "ci_high", "auc_split_mean", "auc_split_std", "n_train", "n_test", "n_train_wrong",
    "n_test_wrong", "train_auc", "cv_auc", "cv_folds", "n_excluded", "status", "reason",
)
WITHIN_FIELDS = ("auc_within_group", "within_ci_low", "within_ci_high", "groups")
DATA_ID = "truthmap-data"


def colour_scale(cmap: str, vmin: float, vmax: float, steps: int = SCALE_STEPS) -> dict:
    """The colour map as ``steps`` hex colours evenly spaced from ``vmin`` to ``vmax``."""
    ramp = colormaps[cmap]
    return {"name": cmap, "vmin": vmin, "vmax": vmax,
            "colors": [to_hex(ramp(i / (steps - 1))) for i in range(steps)]}


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN; the tables write it as text)."""
    if value is None or value == "":
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _score(x: float) -> float:
    return float(f"{x:.{SCORE_DIGITS}g}")


def probed_marks(tokenizer, generation: Mapping, position: Mapping, tokens: Sequence[str]) -> list:
    """Where each named token position falls, for the page to mark it: per token, ``[start, end)``
    in the generated text (``start == end``: a special token, drawn at the end), the token's text
    when it lies in the prompt, or None when the position is masked."""
    prompt_len = len(generation["prompt_ids"])
    _, spans = token_char_spans(tokenizer, generation["gen_ids"])
    marks: list = []
    for token in tokens:
        p = int(position[token])
        if p < 0:
            marks.append(None)
        elif p < prompt_len:
            marks.append(tokenizer.decode([generation["prompt_ids"][p]]))
        else:
            start, end = spans[p - prompt_len]
            marks.append([start, end])
    return marks


def cell_entry(cell: Mapping, within: Mapping | None, question_sets: dict[tuple, int], index: Mapping[str, int]) -> dict:
    """One cell as the page embeds it: its figures, and its test questions (as an index into a
    shared list of question sets) with the probe's scores in the same order."""
    entry: dict[str, Any] = Cell.of(cell)._asdict()
    for name in CELL_FIELDS:
        value = cell.get(name)
        entry[name] = value if isinstance(value, str) else _number(value)
    entry["split_aucs"] = [_number(a) for a in cell.get("split_aucs") or []]
    for name in WITHIN_FIELDS:
        entry[name] = _number((within or {}).get(name))
    ids = tuple(cell.get("test_ids") or ())
    key = tuple(index[q] for q in ids)
    entry["qset"] = question_sets.setdefault(key, len(question_sets))
    entry["scores"] = [_score(float(s)) for s in cell.get("test_scores") or ()]
    return entry


def question_entry(qid: str, question: Mapping, generation: Mapping, label: Mapping, wrong: int, group: str | None,
                   marks: list) -> dict:
    """One test question: its text, the model's answer with the exact answer's span, the gold
    aliases, right or wrong, its group and where each probed token falls."""
    start, end = label.get("exact_start"), label.get("exact_end")
    return {
        "id": qid, "question": question["question"], "answer": generation["text"],
        "exact": [int(start), int(end)] if start is not None and end is not None else None,
        "aliases": list(question.get("aliases") or []), "wrong": int(wrong), "group": group, "marks": marks,
    }


def tested_ids(cells: Sequence[Mapping]) -> set[str]:
    """The questions some cell tests on: the only ones the page embeds."""
    return {q for c in cells for q in c.get("test_ids") or ()}


def explorer_data(
    *,
    title: str,
    cells: Sequence[Mapping],
    auc_rows: Sequence[Mapping],
    split_rows: Sequence[Mapping],
    questions: Mapping[str, Mapping],
    generations: Mapping[str, Mapping],
    labels: Mapping[str, Mapping],
    marks: Mapping[str, list],
    groups: Mapping[str, str],
    group_field: str,
    tokens: Sequence[str],
    ci_level: float,
    detectors: Sequence[Mapping],
    selection: Mapping[str, Mapping | None],
) -> dict:
    """Everything the page shows, keyed as ``explorer.js`` reads it.

    ``cells`` are the cell JSONs; ``auc_rows`` the AUC table (its within-group columns);
    ``marks[id]`` each test question's :func:`probed_marks`. Questions enter once, in the
    order of the split table, only when some cell tests on them.
    """
    wrong = {str(r["id"]): int(r["label"]) for r in split_rows}
    tested = tested_ids(cells)
    order = [str(r["id"]) for r in split_rows if str(r["id"]) in tested]
    index = {q: i for i, q in enumerate(order)}
    within = {Cell.of(r): r for r in auc_rows}
    sets: dict[tuple, int] = {}
    entries = [cell_entry(c, within.get(Cell.of(c)), sets, index) for c in cells]
    chosen = {family: cell and Cell.of(cell)._asdict() for family, cell in selection.items()}
    return {
        "title": title,
        "tokens": list(tokens),
        "sites": list(dict.fromkeys(e["site"] for e in entries)),
        "layers": sorted({e["layer"] for e in entries}),
        "scale": colour_scale(**AUC_SCALE),
        "diff_scale": colour_scale(**DIFFERENCE_SCALE),
        "group_field": group_field,
        "ci_level": float(ci_level),
        "cells": entries,
        "question_sets": [list(k) for k in sets],
        "questions": [question_entry(q, questions[q], generations[q], labels[q], wrong[q], groups.get(q), marks[q])
                      for q in order],
        "detectors": [{k: (v if k in ("method", "detail") else _number(v)) for k, v in row.items()}
                      for row in detectors],
        "chosen": chosen,
    }


def _asset(name: str) -> str:
    return resources.files("truthmap").joinpath("explorer_assets", name).read_text(encoding="utf-8")


def embed_json(data: Mapping) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: every ``<`` is escaped, so no
    text of a question or an answer can close the element or open a comment."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


SLOT = re.compile(r"/\*(STYLE|SCRIPT|DATA)\*/|<!--TITLE-->")


def render(data: Mapping) -> str:
    """The page: the template with the stylesheet, the script, the data and the title inlined
    (one pass over the template, so nothing inlined is searched for slots)."""
    fill = {"STYLE": _asset("explorer.css"), "SCRIPT": _asset("explorer.js"), "DATA": embed_json(data),
            None: html.escape(data["title"], quote=False)}
    page = _asset("explorer.html")
    missing = [k for k in fill if k is not None and f"/*{k}*/" not in page]
    if missing:
        raise ValueError(f"explorer template lacks the slot(s) {missing}")
    return SLOT.sub(lambda m: fill[m.group(1)], page)


def read_embedded(page: str) -> dict:
    """The data a rendered page embeds (what the page's run picker reads of a second file)."""
    start_tag = f'<script type="application/json" id="{DATA_ID}">'
    start = page.index(start_tag) + len(start_tag)
    return json.loads(page[start:page.index("</script>", start)])
