"""Resampled answers: seeded per question and sample, whatever the shards, order or batches; labels."""

from __future__ import annotations

from truthmap.generation import answer_questions, generate_batched
from truthmap.resampling import distinct_texts, label_samples, sample_answers, sample_seed
from truthmap.settings import GenerationSettings

QUESTIONS = [
    {"id": f"q{i}", "question": q, "aliases": ["Paris"], "meta": {"domain": "d"}}
    for i, q in enumerate(["The capital of France is", "17 + 25 =", "Zürich", "I think it is Rome or", "Name a fruit"])
]
CFG = GenerationSettings(max_new_tokens=6, batch_size=2)


def _sample(model, tok, questions, n=4, seed=0, temperature=1.0, cfg=CFG):
    return sample_answers(questions, model, tok, cfg, True, n=n, temperature=temperature, top_p=0.9, top_k=20,
                          seed=seed)


def test_samples_do_not_depend_on_shards_order_or_batch_size(tiny_model):
    model, tok = tiny_model
    whole = {r["id"]: r for r in _sample(model, tok, QUESTIONS)}
    shard_a = _sample(model, tok, QUESTIONS[0::2])  # round-robin shards, as the workflow makes them
    shard_b = _sample(model, tok, QUESTIONS[1::2])
    reversed_ = _sample(model, tok, QUESTIONS[::-1])
    # the batches (rows of several questions, CFG's 2 and 7 splitting a question's 4 samples) do
    # not reach the samples: each equals its decoding alone, one row per batch
    other_batches = _sample(model, tok, QUESTIONS, cfg=GenerationSettings(max_new_tokens=6, batch_size=7))
    alone = _sample(model, tok, QUESTIONS, cfg=GenerationSettings(max_new_tokens=6, batch_size=1))
    for records in (shard_a + shard_b, reversed_, other_batches, alone):
        assert {r["id"]: r for r in records} == whole
    assert _sample(model, tok, QUESTIONS) == [whole[q["id"]] for q in QUESTIONS]  # a rerun


def test_a_decoding_batch_holds_the_samples_of_several_questions(tiny_model, monkeypatch):
    import truthmap.resampling as resampling

    calls = []

    def spy(model, prompts, **kwargs):
        calls.append((list(prompts), kwargs["batch_size"]))
        return generate_batched(model, prompts, **kwargs)

    monkeypatch.setattr(resampling, "generate_batched", spy)
    model, tok = tiny_model
    records = _sample(model, tok, QUESTIONS, n=3, cfg=GenerationSettings(max_new_tokens=6, batch_size=8))
    (prompts, batch_size), = calls  # one call: every sample of the shard
    assert batch_size == 8 and len(prompts) == 3 * len(QUESTIONS)
    assert prompts == [r["prompt_ids"] for r in records for _ in range(3)]


def test_samples_differ_by_sample_and_seed_and_share_the_greedy_prompt(tiny_model):
    model, tok = tiny_model
    records = _sample(model, tok, QUESTIONS, n=6)
    greedy = answer_questions(QUESTIONS, model, tok, CFG, True)
    for record, g in zip(records, greedy):
        assert record["prompt_ids"] == g["prompt_ids"] and len(record["samples"]) == 6
        assert len({tuple(s["gen_ids"]) for s in record["samples"]}) > 1
        for s in record["samples"]:
            assert s["text"] == tok.decode(s["gen_ids"], skip_special_tokens=True)
    other = _sample(model, tok, QUESTIONS, n=6, seed=1)
    assert [r["samples"] for r in other] != [r["samples"] for r in records]
    assert sample_seed(0, "q0", 1) != sample_seed(0, "q0", 2) != sample_seed(1, "q0", 2)


def test_temperature_zero_is_the_greedy_answer(tiny_model):
    model, tok = tiny_model
    records = _sample(model, tok, QUESTIONS, n=1, temperature=0)
    greedy = answer_questions(QUESTIONS, model, tok, CFG, True)
    assert [r["samples"][0]["gen_ids"] for r in records] == [g["gen_ids"] for g in greedy]


def _records(texts_by_question):
    return [{"id": qid, "samples": [{"text": t} for t in texts]} for qid, texts in texts_by_question.items()]


def test_distinct_texts_are_labelled_once_with_every_sample_keeping_its_own_id():
    records = _records({"q0": ["It is Paris.", "Lyon", "It is Paris.", "Lyon", "Nice"], "q1": ["", "Paris"]})
    generations, members = distinct_texts(records)
    assert [g["id"] for g in generations] == ["q0#0", "q0#1", "q0#4", "q1#0", "q1#1"]
    assert members["q0#0"] == [0, 2] and members["q0#1"] == [1, 3]
    calls = []

    def extract(pairs, seeds):
        calls.append((pairs, seeds))
        return [("Lyon" if "Lyon" in text else "NO ANSWER" if not text else "Nice", "") for _, text in pairs]

    questions = [QUESTIONS[0], {**QUESTIONS[1], "id": "q1"}]
    questions[0] = {**questions[0], "id": "q0"}
    labelled, saved = label_samples(questions, records, extract, max_words=8, tries=1)
    assert saved == 2
    assert len(calls) == 1 and [text for _, text in calls[0][0]] == ["Lyon", "Nice"]  # wrong, non-empty, once each
    q0 = labelled[0]["labels"]
    assert [x["id"] for x in q0] == [f"q0#{k}" for k in range(5)]
    assert [x["correct"] for x in q0] == [True, False, True, False, False]
    assert q0[1]["exact_answer"] == q0[3]["exact_answer"] == "Lyon" and q0[4]["exact_answer"] == "Nice"
    q1 = labelled[1]["labels"]
    assert q1[0]["reason"] == "empty generation" and q1[1]["correct"]
