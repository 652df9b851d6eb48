"""The extractor loads at its first call only, and answers like extract_short_answers."""

from __future__ import annotations

import logging

from truthmap.extraction import LazyExtractor
from truthmap.generation import extract_short_answers
from truthmap.models import ModelInfo, load_model
from truthmap.settings import ExactAnswerSettings

PAIRS = [("What is the capital of France?", "I think it is Paris."), ("17 + 25?", "It is 42.")]


def test_loads_at_the_first_call_and_matches_the_direct_call(tiny_model_dir):
    cfg = ExactAnswerSettings(max_new_tokens=4, batch_size=2)
    extract = LazyExtractor(str(tiny_model_dir), "cpu", "float32", cfg, logging.getLogger("test"))
    assert not extract.loaded
    replies = extract(PAIRS, None)
    assert extract.loaded
    info = ModelInfo.read(tiny_model_dir)
    model, tok = load_model(tiny_model_dir, dtype="float32")
    assert replies == extract_short_answers(PAIRS, model, tok, 4, 2, info.has_chat_template,
                                            max_positions=info.max_positions)
    assert extract.name_and_context == (info.name, info.max_positions)
    assert extract(PAIRS, [1, 2]) == extract(PAIRS, [1, 2])  # a sampled retry, seeded
