"""P(True) prompts and log-odds, against a plain forward pass of the tiny model."""

from __future__ import annotations

import numpy as np
import torch

from truthmap.ptrue import letter_ids, p_true_log_odds, p_true_prompt, questions_to_score, score_shard


def test_prompts_offer_both_orders(tiny_tokenizer):
    ab = p_true_prompt(tiny_tokenizer, "Capital of France?", " Paris. ", "ab", "plain")
    assert ab.startswith("Question: Capital of France?\nPossible answer: Paris.\n")
    assert "(A) True\n (B) False\n" in ab and ab.endswith("The possible answer is: (")
    ba = p_true_prompt(tiny_tokenizer, "Capital of France?", "Paris", "ba", "chat")
    assert "(A) False\n (B) True\n" in ba and ba.endswith("<s>assistant\nThe possible answer is: (")


def test_log_odds_match_a_full_forward(tiny_model):
    model, tok = tiny_model
    items = [("Capital of France?", "Paris"), ("What is 17 + 25?", "The answer is 42, I think.")]
    odds, cut = p_true_log_odds(model, tok, items, "plain", batch_size=2)
    assert cut == ["", ""]
    for order, sign in (("ab", 1), ("ba", -1)):
        for i, (q, a) in enumerate(items):
            text = p_true_prompt(tok, q, a, order, "plain")
            a_id, b_id = letter_ids(tok, text, "plain")
            ids = torch.tensor([tok(text)["input_ids"]])
            with torch.no_grad():
                logits = model(ids).logits[0, -1]
            expected = sign * float(logits[a_id] - logits[b_id])
            assert np.isclose(odds[order][i], expected, atol=1e-4)
    whole, _ = p_true_log_odds(model, tok, items, "plain", batch_size=2, share_stem=False)
    for order in ("ab", "ba"):
        np.testing.assert_allclose(whole[order], odds[order], atol=1e-4)


def test_questions_to_score_are_the_test_set_plus_a_stable_training_sample():
    split = [{"id": f"q{i:02d}", "split": "test" if i % 4 == 0 else "train", "common": "1"} for i in range(40)]
    split.append({"id": "x", "split": "test", "common": "0"})
    wanted = questions_to_score(split, n_train=5, seed=0)
    assert {q for q, s in wanted.items() if s == "test"} == {f"q{i:02d}" for i in range(0, 40, 4)}
    assert sum(s == "train" for s in wanted.values()) == 5
    assert "x" not in wanted
    assert wanted == questions_to_score(list(reversed(split)), n_train=5, seed=0)


def test_score_shard_keeps_only_wanted_questions(tiny_model):
    model, tok = tiny_model
    gens = [{"id": q, "question": "Capital of France?", "text": "Paris", "prompt_style": "chat"} for q in "abc"]
    rows = score_shard(model, tok, gens, {"a": "test", "c": "train"}, batch_size=4)
    assert [(r["id"], r["split"]) for r in rows] == [("a", "test"), ("c", "train")]
    assert rows[0]["logodds_true_ab"] == rows[1]["logodds_true_ab"]  # same prompt, same score
