"""Answering prompts: templates, context, plain-style questions."""

from __future__ import annotations

from truthmap.prompts import answer_prompt_text, render
from truthmap.settings import GenerationSettings


def test_render_places_or_prepends_the_context():
    assert render("Q: {question}\nA:", "Who?", None) == "Q: Who?\nA:"
    assert render("Q: {question}\nA:", "Who?", "Some passage.") == "Some passage.\n\nQ: Who?\nA:"
    assert render("Context: {context}\nQ: {question}", "Who?", "P.") == "Context: P.\nQ: Who?"
    assert render("{context}{question}", "Who?", None) == "Who?"
    # braces in the question are text, not placeholders
    assert render("Q: {question}", "What is {x}?", None) == "Q: What is {x}?"


def test_chat_and_plain_prompts(tiny_tokenizer):
    record = {"question": "Who does 'she' refer to?", "plain_question": "The pronoun 'she' refers to the",
              "context": "The nurse met the doctor."}
    cfg = GenerationSettings()
    chat = answer_prompt_text(tiny_tokenizer, record, cfg, "chat")
    assert "The nurse met the doctor.\n\nAnswer the question concisely.\nWho does 'she' refer to?" in chat
    plain = answer_prompt_text(tiny_tokenizer, record, cfg, "plain")
    assert plain == "The nurse met the doctor.\n\nThe pronoun 'she' refers to the"
    del record["plain_question"]
    assert answer_prompt_text(tiny_tokenizer, record, cfg, "plain") == (
        "The nurse met the doctor.\n\nQ: Who does 'she' refer to?\nA:"
    )
