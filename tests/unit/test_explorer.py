"""The explorer page's embedded data, against the cell results and labels it is built from."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.colors import to_hex
from sklearn.metrics import roc_auc_score

from truthmap.explorer import colour_scale, embed_json, explorer_data, probed_marks, read_embedded, render
from truthmap.positions import positions_table
from truthmap.settings import DEFAULT_TOKENS

TOKENS = ["exact_answer_first", "exact_answer_last", "-1"]


def synthetic_run(seed: int = 0, n: int = 40):
    """Cells of two layers that test on overlapping question sets, with the split's labels."""
    rng = np.random.default_rng(seed)
    ids = [f"q{i:02d}" for i in range(n)]
    wrong = rng.integers(0, 2, n)
    split = [{"id": q, "label": str(w), "split": "test" if i % 2 else "train", "common": "1", "reason": ""}
             for i, (q, w) in enumerate(zip(ids, wrong))]
    test = [q for q, r in zip(ids, split) if r["split"] == "test"]
    cells = []
    for layer in (0, 3):
        for k, token in enumerate(TOKENS):
            used = test if k < 2 else test[:-3]  # one cell lost some questions (masked position)
            y = np.array([wrong[ids.index(q)] for q in used])
            scores = y * (layer + 1) * 0.7 + rng.normal(size=len(used))
            cells.append({
                "site": "residual", "layer": layer, "token": token, "auc": roc_auc_score(y, scores),
                "ci_low": 0.5, "ci_high": 0.99, "auc_split_mean": float("nan"), "auc_split_std": float("nan"),
                "n_train": n - len(test), "n_test": len(used), "n_train_wrong": 5, "n_test_wrong": int(y.sum()),
                "train_auc": 0.9, "cv_auc": 0.8, "cv_folds": 5, "n_excluded": 0, "status": "ok", "reason": "",
                "test_ids": list(used), "test_scores": scores.tolist(), "split_aucs": [roc_auc_score(y, scores)],
            })
    questions = {q: {"id": q, "question": f"Question {q}?", "aliases": [f"gold {q}", "alt"]} for q in ids}
    generations = {q: {"id": q, "text": f"The answer is {q} indeed."} for q in ids}
    labels = {q: {"id": q, "exact_start": 14, "exact_end": 17, "exact_answer": q} for q in ids}
    return cells, split, questions, generations, labels, wrong, ids


def build(cells, split, questions, generations, labels, **kw):
    args = dict(
        title="m on d", cells=cells, auc_rows=[], split_rows=split, questions=questions, generations=generations,
        labels=labels, marks={q: [[14, 16], [16, 17], [24, 25]] for q in questions},
        groups={q: ("even" if int(q[1:]) % 2 == 0 else "odd") for q in questions}, group_field="domain",
        tokens=TOKENS, ci_level=0.95,
        detectors=[{"method": "probe", "auc": "0.8", "ci_low": "0.7", "ci_high": "NaN", "detail": ""}],
        selection={"probe": {"site": "residual", "layer": 3, "token": "exact_answer_first"}, "none": None},
    )
    args.update(kw)
    return explorer_data(**args)


def test_each_cell_keeps_its_own_questions_scores_and_auc():
    cells, split, questions, generations, labels, wrong, ids = synthetic_run()
    data = build(cells, split, questions, generations, labels)
    assert len(data["cells"]) == len(cells)
    assert len(data["question_sets"]) == 2  # the full test set and the one with three questions fewer
    for cell, entry in zip(cells, data["cells"]):
        embedded = [data["questions"][i] for i in data["question_sets"][entry["qset"]]]
        assert [q["id"] for q in embedded] == cell["test_ids"]
        assert entry["scores"] == pytest.approx(cell["test_scores"], rel=1e-5)
        y = [q["wrong"] for q in embedded]
        assert y == [int(wrong[ids.index(q)]) for q in cell["test_ids"]]
        # The page's ROC area comes from exactly these scores and labels.
        assert roc_auc_score(y, entry["scores"]) == pytest.approx(cell["auc"], abs=1e-4)
        assert entry["auc"] == cell["auc"] and entry["auc_split_mean"] is None
    tested = {q for c in cells for q in c["test_ids"]}
    assert {q["id"] for q in data["questions"]} == tested


def test_questions_carry_answer_span_gold_group_and_marks():
    cells, split, questions, generations, labels, wrong, ids = synthetic_run()
    labels["q01"] = {"id": "q01", "exact_start": None, "exact_end": None, "exact_answer": None}
    data = build(cells, split, questions, generations, labels)
    by_id = {q["id"]: q for q in data["questions"]}
    q = by_id["q03"]
    assert q["answer"][slice(*q["exact"])] == "q03"
    assert q["aliases"] == ["gold q03", "alt"] and q["group"] == "odd" and q["marks"][0] == [14, 16]
    assert by_id["q01"]["exact"] is None
    assert data["chosen"] == {"probe": {"site": "residual", "layer": 3, "token": "exact_answer_first"}, "none": None}
    assert data["detectors"][0]["ci_high"] is None and data["detectors"][0]["auc"] == 0.8


def test_within_group_columns_come_from_the_auc_table():
    cells, split, questions, generations, labels, *_ = synthetic_run()
    row = {"site": "residual", "layer": "3", "token": "-1", "auc_within_group": "0.61", "within_ci_low": "0.5",
           "within_ci_high": "0.7", "groups": "2"}
    data = build(cells, split, questions, generations, labels, auc_rows=[row])
    entry = next(e for e in data["cells"] if (e["layer"], e["token"]) == (3, "-1"))
    assert (entry["auc_within_group"], entry["within_ci_low"], entry["groups"]) == (0.61, 0.5, 2.0)
    other = next(e for e in data["cells"] if (e["layer"], e["token"]) == (0, "-1"))
    assert other["auc_within_group"] is None


def test_colour_scales_are_the_figures():
    scale = colour_scale("Blues", 0.5, 1.0, steps=5)
    assert scale["colors"][0] == to_hex(colormaps["Blues"](0.0))
    assert scale["colors"][-1] == to_hex(colormaps["Blues"](1.0))
    assert scale["colors"][2] == to_hex(colormaps["Blues"](0.5))
    cells, split, questions, generations, labels, *_ = synthetic_run()
    data = build(cells, split, questions, generations, labels)
    assert (data["scale"]["name"], data["scale"]["vmin"], data["scale"]["vmax"]) == ("Blues", 0.5, 1.0)
    assert (data["diff_scale"]["name"], data["diff_scale"]["vmin"]) == ("RdBu", -0.5)


def test_the_page_embeds_text_that_would_close_a_script_safely():
    cells, split, questions, generations, labels, *_ = synthetic_run()
    nasty = "</script><script>alert(1)</script><!-- & \u2028"
    questions["q03"] = {**questions["q03"], "question": nasty}
    data = build(cells, split, questions, generations, labels)
    page = render(data)
    assert "/*DATA*/" not in page and "/*SCRIPT*/" not in page and "<!--TITLE-->" not in page
    assert page.count("</script>") == 2  # the data element's and the script's own
    assert "alert(1)" in page and "<script>alert(1)" not in page
    assert read_embedded(page) == json.loads(json.dumps(data))
    assert json.loads(embed_json({"a": nasty})) == {"a": nasty}


def test_nan_never_reaches_the_page():
    cells, split, questions, generations, labels, *_ = synthetic_run()
    cells[0] = {**cells[0], "auc": float("nan"), "status": "skipped", "reason": "too few", "test_ids": [],
                "test_scores": []}
    data = build(cells, split, questions, generations, labels)
    assert data["cells"][0]["auc"] is None and data["cells"][0]["reason"] == "too few"
    json.loads(embed_json(data))  # allow_nan=False would have raised


def test_probed_marks_point_at_the_tokens_of_the_exact_answer(smollm_tokenizer):
    """Marks against the positions stage's own output: the first and last exact-answer tokens
    cover the exact answer's first and last characters; the last question token is in the prompt."""
    tok = smollm_tokenizer
    prompt_ids = tok("Question: What is the capital of France?\nAnswer:")["input_ids"]
    text = " The capital of France is Paris, a city on the Seine."
    gen_ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    decoded = tok.decode(gen_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    start = decoded.index("Paris")
    gen = {"id": "q", "prompt_ids": prompt_ids, "gen_ids": gen_ids, "text": decoded}
    label = {"id": "q", "exact_start": start, "exact_end": start + 5, "exact_method": "text"}
    [position] = positions_table(tok, [gen], [label])
    tokens = list(DEFAULT_TOKENS)
    marks = dict(zip(tokens, probed_marks(tok, gen, position, tokens)))
    first, last = marks["exact_answer_first"], marks["exact_answer_last"]
    assert first[0] <= start < first[1] and last[0] < start + 5 <= last[1]
    after = marks["exact_answer_after_last"]
    assert decoded[after[0]:after[1]] == ","
    assert isinstance(marks["last_q"], str) and marks["last_q"] in "Answer:"
    assert marks["-1"] == [len(decoded), len(decoded)]  # the end-of-sequence token: an empty span at the end
