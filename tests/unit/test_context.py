"""Fitting prompts into a context: the fewest tokens cut, in the declared order, and the record of it."""

from __future__ import annotations

from truthmap.context import Fit, fit_fields


def render_with(tokenizer):
    def render(question: str, answer: str) -> list[int]:
        return list(tokenizer(f"Q: {question}\nA: {answer}\nTrue?", add_special_tokens=False)["input_ids"])

    return render


QUESTION = "The capital of Burkina Faso is Ouagadougou. " * 6 + "What is 17 + 25?"
ANSWER = "The answer is 42, I think."


def test_a_prompt_that_fits_is_left_whole(tiny_tokenizer):
    render = render_with(tiny_tokenizer)
    fit = fit_fields(render, {"question": QUESTION, "answer": ANSWER}, ["question", "answer"], tiny_tokenizer, 10_000)
    assert fit.ids == render(QUESTION, ANSWER) and fit.note == ""
    assert fit_fields(render, {"question": QUESTION, "answer": ANSWER}, ["question"], tiny_tokenizer, None).ids == fit.ids


def test_the_question_loses_the_fewest_leading_tokens(tiny_tokenizer):
    render = render_with(tiny_tokenizer)
    full = len(render(QUESTION, ANSWER))
    room = full - 15
    fit = fit_fields(render, {"question": QUESTION, "answer": ANSWER}, ["question", "answer"], tiny_tokenizer, room)
    assert len(fit.ids) <= room
    n = fit.cut["question"]
    assert n > 0 and fit.cut["answer"] == 0
    parts = tiny_tokenizer(QUESTION, add_special_tokens=False)["input_ids"]
    one_less = tiny_tokenizer.decode(parts[n - 1 :]).lstrip()
    assert len(render(one_less, ANSWER)) > room  # cutting one token fewer would not fit
    assert tiny_tokenizer.decode(fit.ids).rstrip().endswith("What is 17 + 25?\nA: " + ANSWER + "\nTrue?")
    assert fit.note == f"{n} question tokens cut from the start"


def test_the_answer_is_cut_only_once_the_question_is_gone(tiny_tokenizer):
    render = render_with(tiny_tokenizer)
    room = len(render("", ANSWER)) - 3
    fit = fit_fields(render, {"question": QUESTION, "answer": ANSWER}, ["question", "answer"], tiny_tokenizer, room)
    assert fit.ids is not None and len(fit.ids) <= room
    assert fit.cut["question"] == len(tiny_tokenizer(QUESTION, add_special_tokens=False)["input_ids"])
    assert 0 < fit.cut["answer"] < len(tiny_tokenizer(ANSWER, add_special_tokens=False)["input_ids"])
    assert "question tokens cut" in fit.note and "answer tokens cut" in fit.note


def test_a_prompt_that_cannot_fit_is_skipped_with_the_reason(tiny_tokenizer):
    render = render_with(tiny_tokenizer)
    room = len(render("", "")) - 1
    fit = fit_fields(render, {"question": QUESTION, "answer": ANSWER}, ["question", "answer"], tiny_tokenizer, room)
    assert fit.ids is None
    assert fit.note == f"skipped: longer than the {room} tokens the context leaves, even with question and answer cut"


def test_dropped_demonstrations_are_noted():
    assert Fit([1, 2], 10, {"question": 0}, dropped_demonstrations=4).note == "4 demonstrations dropped"
    assert Fit([1], 10, {"question": 3}, 6).note == "6 demonstrations dropped; 3 question tokens cut from the start"


def test_a_model_without_a_stated_context_is_logged_as_an_assumption(caplog):
    import logging

    from truthmap.context import context_length

    log = logging.getLogger("stage")
    with caplog.at_level(logging.INFO, logger="stage"):
        assert context_length(2048, "known", log) == 2048
        assert caplog.text == ""
        assert context_length(None, "mine", log) is None
    assert "model mine states no context length in its config" in caplog.text
    assert "assuming it takes prompts of any length, none is cut" in caplog.text


def test_the_log_names_every_question_cut_or_skipped(caplog):
    import logging

    from truthmap.context import log_cuts

    log = logging.getLogger("stage")
    with caplog.at_level(logging.INFO, logger="stage"):
        log_cuts(log, "P(True)", {"q1": "", "q2": "3 question tokens cut from the start", "q3": "skipped: long"}, 64)
    assert "2 P(True) prompts did not fit the model's context of 64 tokens: 1 cut, 1 skipped" in caplog.text
    assert "q2 (3 question tokens cut from the start)" in caplog.text and "q3 (skipped: long)" in caplog.text
    assert "q1" not in caplog.text
