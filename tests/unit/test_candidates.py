"""Sampled answers' hidden states at one cell, against a plain forward pass of the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from truthmap.candidates import candidate_inputs, distinct_answers, extract_candidates, read_candidates
from truthmap.files import InputError
from truthmap.models import decoder_layers
from truthmap.results import Cell

TEXTS = ["The answer is 42.", "I think it is Rome.", "The answer is 42.", "I am not sure.", "Paris, I think."]
EXACT = ["42", "Rome", "42", None, "Paris"]


def _records(tok, qid, texts=TEXTS, exact=EXACT):
    prompt = tok.encode(f"Answer the question concisely. What is 17 + 25? ({qid})", add_special_tokens=False)
    samples = [{"gen_ids": tok.encode(t, add_special_tokens=False), "text": t, "finish_reason": "eos"} for t in texts]
    labels = []
    for t, e in zip(texts, exact):
        start = None if e is None else t.index(e)
        labels.append({"correct": e == "42", "exact_answer": e, "exact_start": start,
                       "exact_end": None if e is None else start + len(e), "no_answer": e is None,
                       "reason": "" if e else "no answer given"})
    return ({"id": qid, "prompt_ids": prompt, "prompt_tokens_cut": 0, "samples": samples},
            {"id": qid, "labels": labels})


def _first_answer_token(tok, text, exact):
    """Index of the first token overlapping the exact answer, from the tokenizer's own offsets."""
    start = text.index(exact)
    offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return next(i for i, (s, e) in enumerate(offsets) if s < start + len(exact) and e > start)


def _reference(model, seq, layer, site):
    ids = torch.tensor([seq])
    if site == "residual":
        with torch.no_grad():
            return model(ids, output_hidden_states=True).hidden_states[layer + 1][0].numpy()
    kept = {}
    handle = decoder_layers(model)[layer].mlp.register_forward_hook(lambda m, a, o: kept.setdefault("x", a[0]))
    with torch.no_grad():
        model(ids)
    handle.remove()
    return kept["x"][0].numpy()


def test_distinct_answers_keep_every_sample_index_in_order():
    samples = [{"gen_ids": g} for g in ([1, 2], [3], [1, 2], [4], [3], [1, 2])]
    assert distinct_answers(samples) == [[0, 2, 5], [1, 4], [3]]


@pytest.mark.parametrize("site", ["residual", "mlp_input"])
def test_candidates_match_a_plain_forward_pass(tmp_path, tiny_model, site):
    model, tok = tiny_model
    q1, l1 = _records(tok, "q1")
    q2, l2 = _records(tok, "q2", texts=["Fe.", "Fe."], exact=["Fe", "Fe"])
    q3, l3 = _records(tok, "q3")  # a training question: no candidates
    cell = Cell(site, 2, "exact_answer_first")
    inputs = candidate_inputs(tok, [q1, q2, q3], [l1, l2, l3], {"q1", "q2"}, cell.token)
    assert inputs.ids == ["q1"] * 4 + ["q2"]
    assert inputs.samples == [[0, 2], [1], [3], [4], [0, 1]] and inputs.sample == [0, 1, 3, 4, 0]
    out = tmp_path / "c.h5"
    extract_candidates(model, out, inputs, cell, model_name="tiny", pad_id=tok.pad_token_id, batch_tokens=64)
    got = read_candidates([out])
    assert got.cell == cell and got.ids == inputs.ids and got.samples == inputs.samples
    assert got.valid.tolist() == [True, True, False, True, True]
    assert "no exact answer" in got.reasons[2] and not got.X[2].any()
    assert got.X.dtype == np.float32 and got.X.shape == (5, 32)
    for row, (rec, k) in enumerate([(q1, 0), (q1, 1), (q1, 3), (q1, 4), (q2, 0)]):
        if not got.valid[row]:
            continue
        text = (TEXTS + ["Fe."])[k] if rec is q1 else "Fe."
        exact = EXACT[k] if rec is q1 else "Fe"
        seq = rec["prompt_ids"] + rec["samples"][k]["gen_ids"]
        pos = len(rec["prompt_ids"]) + _first_answer_token(tok, text, exact)
        ref = _reference(model, seq, cell.layer, site)[pos]
        np.testing.assert_allclose(got.X[row], ref, rtol=2e-3, atol=2e-3)


def test_a_token_that_needs_no_exact_answer_scores_every_sample(tmp_path, tiny_model):
    model, tok = tiny_model
    q1, l1 = _records(tok, "q1")
    cell = Cell("residual", 1, "-1")
    inputs = candidate_inputs(tok, [q1], [l1], {"q1"}, cell.token)
    extract_candidates(model, tmp_path / "c.h5", inputs, cell, model_name="tiny", pad_id=tok.pad_token_id,
                       batch_tokens=16)
    got = read_candidates([tmp_path / "c.h5"])
    assert got.valid.all()
    seq = q1["prompt_ids"] + q1["samples"][3]["gen_ids"]
    np.testing.assert_allclose(got.X[2], _reference(model, seq, 1, "residual")[-1], rtol=2e-3, atol=2e-3)


def test_no_cell_writes_an_empty_file_and_labels_must_match_samples(tmp_path, tiny_model):
    model, tok = tiny_model
    q1, l1 = _records(tok, "q1")
    inputs = candidate_inputs(tok, [q1], [l1], set(), "-1")
    extract_candidates(model, tmp_path / "c.h5", inputs, None, model_name="tiny", pad_id=0, batch_tokens=16)
    got = read_candidates([tmp_path / "c.h5"])
    assert got.cell is None and got.ids == [] and got.X.shape[0] == 0
    with pytest.raises(InputError, match="5 samples but 4 sample labels"):
        candidate_inputs(tok, [q1], [{"id": "q1", "labels": l1["labels"][:4]}], {"q1"}, "-1")
