"""Answering prompts: templates, context, plain-style questions, per-dataset settings."""

from __future__ import annotations

from truthmap.config import GenerationConfig, generation_settings
from truthmap.prompts import answer_prompt_text, render


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
    cfg = GenerationConfig()
    chat = answer_prompt_text(tiny_tokenizer, record, cfg, "chat")
    assert "The nurse met the doctor.\n\nAnswer the question concisely.\nWho does 'she' refer to?" in chat
    plain = answer_prompt_text(tiny_tokenizer, record, cfg, "plain")
    assert plain == "The nurse met the doctor.\n\nThe pronoun 'she' refers to the"
    del record["plain_question"]
    assert answer_prompt_text(tiny_tokenizer, record, cfg, "plain") == (
        "The nurse met the doctor.\n\nQ: Who does 'she' refer to?\nA:"
    )


def test_generation_settings_layering():
    base = {"template": "T {question}", "plain_template": "Q: {question}\nA:", "prompt_style": "auto",
            "max_new_tokens": 32, "batch_size": 32}
    assert generation_settings(base, {"source": "x"}, {"source": "m"}) == base
    math = generation_settings(base, {"format": "gsm8k"}, {})
    assert math["max_new_tokens"] == 200
    mine = generation_settings(base, {"format": "gsm8k", "max_new_tokens": 64, "template": "U {question}"},
                               {"prompt_style": "plain"})
    assert (mine["max_new_tokens"], mine["template"], mine["prompt_style"]) == (64, "U {question}", "plain")
    assert generation_settings(base, {"format": "winobias"}, {}) == base
