"""Labels and exact answers of a shard, with a scripted extractor standing in for the model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from truthmap.labels import (
    Item, apply_extraction, label_by_alias, label_by_choice, label_shard, retried, try_seed,
)
from truthmap.prompts import (
    EXTRACTION_SHOTS,
    NO_ANSWER,
    extraction_prompt_text,
    parse_extraction,
    resolve_style,
)


def test_correct_answer_gets_the_alias_span():
    text = "The capital of France is Paris."
    label = label_by_alias("q", text, ["Paris"])
    assert label.correct and label.exact_method == "text"
    assert text[label.exact_start : label.exact_end] == "Paris" == label.exact_answer


def test_numbers_compare_as_numbers():
    label = label_by_alias("q", "17 + 25 = 42.0", ["42"])
    assert label.correct and label.exact_method == "number" and label.exact_answer == "42.0"
    assert not label_by_alias("q", "The answer is 420.", ["42"]).correct


def test_shard_labelling_calls_the_extractor_once_with_incorrect_answers_only():
    items = [
        Item(*row)
        for row in [
            ("a", "Capital of France?", "The capital of France is Paris.", ["Paris"]),
            ("b", "Capital of Mali?", "The capital of Mali is Dakar.", ["Bamako"]),
            ("c", "Capital of Peru?", "I do not know.", ["Lima"]),
            ("d", "Capital of Chad?", "Chad is in Africa.", ["N'Djamena"]),
            ("e", "Capital of Fiji?", "   ", ["Suva"]),
            ("f", "Capital of Oman?", "Oman is a country in the Middle East with a long coast on the sea.", ["Muscat"]),
        ]
    ]
    calls = []
    replies = {
        "Capital of Mali?": "Dakar",
        "Capital of Peru?": NO_ANSWER,
        "Capital of Chad?": "Khartoum",
        "Capital of Oman?": "Oman is a country in the Middle East with a long coast",
    }

    def extract(pairs, seeds=None):
        calls.append(pairs)
        return [(replies[q], "") for q, _ in pairs]

    labels = {x.id: x for x in label_shard(items, extract, max_words=8)}
    assert len(calls) == 1 and [q for q, _ in calls[0]] == ["Capital of Mali?", "Capital of Peru?",
                                                            "Capital of Chad?", "Capital of Oman?"]
    assert labels["a"].correct and labels["a"].extractor_reply is None
    b = labels["b"]
    assert not b.correct and b.exact_method == "extracted"
    assert labels["c"].no_answer and labels["c"].exact_method == "none" and "NO ANSWER" in labels["c"].reason
    assert labels["d"].exact_method == "none" and "not in the generated text" in labels["d"].reason
    assert labels["e"].reason == "empty generation"
    assert items[1].text[b.exact_start : b.exact_end] == "Dakar"
    assert labels["f"].exact_method == "none" and "max_words=8" in labels["f"].reason


def test_no_extractor_call_when_everything_is_correct():
    def extract(pairs, seeds=None):
        raise AssertionError("must not be called")

    (label,) = label_shard([Item("a", "q", "Paris", ["Paris"])], extract)
    assert label.correct


def test_extraction_is_matched_case_insensitively_and_trimmed():
    base = label_by_alias("q", "the capital is dakar.", ["Bamako"])
    label = apply_extraction(base, "the capital is dakar.", "Dakar.", max_words=None)
    assert label.exact_answer == "dakar" and label.exact_method == "extracted"


def test_parse_extraction():
    assert parse_extraction("Paris\nmore") == "Paris"
    assert parse_extraction("Short answer: \"Paris\"") == "Paris"
    assert parse_extraction("no answer") is None
    assert parse_extraction("   ") is None


def test_extraction_prompt_has_the_shots_and_the_question(tiny_tokenizer):
    text = extraction_prompt_text(tiny_tokenizer, "What is X?", "It is Y.", "chat")
    for question, long_answer, short in EXTRACTION_SHOTS:
        assert question in text and long_answer in text and short in text
    assert text.rstrip().endswith("assistant")
    plain = extraction_prompt_text(tiny_tokenizer, "What is X?", "It is Y.", "plain")
    assert plain.endswith("Long answer: It is Y.\nShort answer:")


def test_resolve_style():
    assert resolve_style("auto", True) == "chat"
    assert resolve_style("auto", False) == "plain"
    assert resolve_style("plain", True) == "plain"
    import pytest

    with pytest.raises(ValueError, match="chat template"):
        resolve_style("chat", False)


def test_shard_items_join_by_id_and_name_strays():
    import pytest

    from truthmap.labels import shard_items

    questions = [{"id": "a", "question": "qa", "aliases": ["x"]}, {"id": "b", "question": "qb", "aliases": ["y"]}]
    gens = [{"id": "b", "question": "qb", "text": "tb"}]
    assert shard_items(questions, gens) == [Item("b", "qb", "tb", ["y"])]
    with pytest.raises(ValueError, match="'c'"):
        shard_items(questions, [{"id": "c", "question": "q", "text": "t"}])


MNLI = {
    "entailment": ["entailment", "entail", "entails"],
    "neutral": ["neutral", "neutrality"],
    "contradiction": ["contradiction", "contradict", "contradicts"],
}


def test_first_choice_named_decides():
    text = "The hypothesis contradicts the premise, so it is not entailment."
    label = label_by_choice("m", text, MNLI, "contradiction")
    assert label.correct and label.choice == "contradiction" and label.exact_method == "choice"
    assert text[label.exact_start : label.exact_end] == "contradicts"
    wrong = label_by_choice("m", "It is neutral.", MNLI, "entailment")
    assert not wrong.correct and wrong.choice == "neutral" and wrong.exact_answer == "neutral"


def test_no_choice_named_is_a_recorded_no_answer():
    label = label_by_choice("w", "I cannot tell.", {"Sarah": ["Sarah"], "Mary": ["Mary"]}, "Mary")
    assert not label.correct and label.no_answer and label.exact_method == "none"
    assert "NO ANSWER" in label.reason


def test_choice_items_never_reach_the_extractor():
    items = [
        Item("w1", "Who?", "Mary worried.", ["Mary"], "choice", {"Sarah": ["Sarah"], "Mary": ["Mary"]}, "Mary"),
        Item("w2", "Who?", "Sarah, not Mary.", ["Mary"], "choice", {"Sarah": ["Sarah"], "Mary": ["Mary"]}, "Mary"),
    ]

    def extract(pairs, seeds=None):
        raise AssertionError("choice tasks need no extractor")

    first, second = label_shard(items, extract)
    assert first.correct and first.exact_answer == "Mary"
    assert not second.correct and second.choice == "Sarah" and second.exact_answer == "Sarah"


def test_extraction_prompts_cut_or_skipped_to_fit_are_recorded():
    items = [Item("a", "Capital of Mali?", "It is Dakar.", ["Bamako"]), Item("b", "Capital of Peru?", "Quito.", ["Lima"])]
    skipped = "skipped: longer than the 40 tokens the context leaves, even with question cut"

    def extract(pairs, seeds=None):
        return [("Dakar", "6 demonstrations dropped"), (None, skipped)]

    a, b = label_shard(items, extract)
    assert a.exact_answer == "Dakar" and a.extractor_prompt_cut == "6 demonstrations dropped" and a.reason == ""
    assert b.exact_method == "none" and b.extractor_reply is None and b.extractor_prompt_cut == skipped
    assert b.reason == f"extraction prompt does not fit the extractor's context ({skipped})"


# --------------------------------------------------------------------------- retries


RETRY_ITEMS = [
    Item("ok", "Capital of Mali?", "The capital of Mali is Dakar.", ["Bamako"]),
    Item("subject", "Capital of Chad?", "The capital of Chad is Abuja.", ["N'Djamena"]),
    Item("never", "Capital of Peru?", "Peru is a country in South America.", ["Lima"]),
    Item("none", "Capital of Fiji?", "I do not know.", ["Suva"]),
    Item("long", "Capital of Oman?", "Oman's capital is the old port city of Sohar on the coast.", ["Muscat"]),
    Item("empty", "Capital of Laos?", "The capital of Laos is Hanoi.", ["Vientiane"]),
    Item("right", "Capital of Togo?", "The capital of Togo is Lome.", ["Lome"]),
]


def scripted_extractor(calls: list | None = None):
    """A stand-in extractor whose reply depends only on the question and the seed (like the model
    with its per-question generator): first tries are scripted, retries draw from candidates."""
    import random

    greedy = {"Capital of Mali?": "Dakar", "Capital of Chad?": "Chad", "Capital of Peru?": "Lima",
              "Capital of Fiji?": NO_ANSWER, "Capital of Laos?": "",
              "Capital of Oman?": "Oman's capital is the old port city of Sohar on the"}
    sampled = {"Capital of Chad?": ["Chad", "Ndjamena", "Abuja"], "Capital of Peru?": ["Lima", "Cusco"],
               "Capital of Laos?": ["Hanoi"], "Capital of Oman?": ["Sohar", "Muscat"]}

    def extract(pairs, seeds):
        if calls is not None:
            calls.append(([q for q, _ in pairs], seeds))
        if seeds is None:
            return [(greedy[q], "") for q, _ in pairs]
        return [(random.Random(seed).choice(sampled[q]), "") for (q, _), seed in zip(pairs, seeds, strict=True)]

    return extract


def test_one_try_is_the_greedy_extraction_alone():
    calls = []
    labels = {x.id: x for x in label_shard(RETRY_ITEMS, scripted_extractor(calls), max_words=8, tries=1)}
    assert len(calls) == 1 and calls[0][1] is None
    assert labels == {x.id: x for x in label_shard(RETRY_ITEMS, scripted_extractor(), max_words=8)}
    assert labels["ok"].exact_answer == "Dakar" and labels["ok"].extraction_tries == 1
    assert labels["subject"].exact_answer == "Chad"  # the subject, not the answer: the greedy try is kept as it is
    assert labels["never"].exact_method == "none" and labels["never"].extraction_failures == [labels["never"].reason]
    assert labels["empty"].reason == "extractor's reply is empty" and not labels["empty"].no_answer
    assert labels["right"].extraction_tries == 0 and labels["right"].extraction_failures == []


def test_only_failed_tries_that_may_succeed_are_retried():
    calls = []
    label_shard(RETRY_ITEMS, scripted_extractor(calls), max_words=8, tries=5)
    first, *retries = calls
    assert first == (["Capital of Mali?", "Capital of Chad?", "Capital of Peru?", "Capital of Fiji?",
                      "Capital of Oman?", "Capital of Laos?"], None)
    assert len(retries) == 1  # every sampled try in one call, an answer's four side by side
    questions, seeds = retries[0]
    assert questions == ["Capital of Peru?"] * 4 + ["Capital of Oman?"] * 4 + ["Capital of Laos?"] * 4  # not in
    # the text, too long, empty
    assert seeds == [try_seed(0, item, attempt) for item in ("never", "long", "empty") for attempt in range(1, 5)]


def one_try_at_a_time(items, extract, max_words, tries, seed=0):
    """The reference: a round per try, each sending only the answers still worth another try."""
    out = {}
    for it in items:
        label = label_by_alias(it.id, it.text, it.aliases)
        if label.correct or not it.text.strip():
            continue
        failures = []
        for attempt in range(tries):
            seeds = None if attempt == 0 else [try_seed(seed, it.id, attempt)]
            reply, cut = extract([(it.question, it.text)], seeds)[0]
            done = apply_extraction(label, it.text, reply, max_words)
            failures = failures + ([done.reason] if done.reason else [])
            out[it.id] = replace(done, extractor_prompt_cut=cut, extraction_tries=attempt + 1,
                                 extraction_failures=failures)
            if not retried(out[it.id]):
                break
    return out


@pytest.mark.parametrize("tries", [1, 2, 5])
@pytest.mark.parametrize("seed", [0, 3, 11])
def test_all_sampled_tries_at_once_label_as_one_try_at_a_time(tries, seed):
    got = {x.id: x for x in label_shard(RETRY_ITEMS, scripted_extractor(), max_words=8, tries=tries, seed=seed)}
    want = one_try_at_a_time(RETRY_ITEMS, scripted_extractor(), 8, tries, seed)
    assert {k: got[k] for k in want} == want


def test_tries_and_failures_are_recorded():
    labels = {x.id: x for x in label_shard(RETRY_ITEMS, scripted_extractor(), max_words=8, tries=5)}
    never = labels["never"]
    assert never.exact_method == "none" and never.extraction_tries == 5
    assert len(never.extraction_failures) == 5 and never.reason == never.extraction_failures[-1]
    assert all("not in the generated text" in r for r in never.extraction_failures)
    empty = labels["empty"]
    assert empty.exact_answer == "Hanoi" and empty.extraction_tries == 2 and empty.reason == ""
    assert empty.extraction_failures == ["extractor's reply is empty"] and not empty.no_answer
    long = labels["long"]
    assert long.extraction_failures[0].endswith("not a short answer")
    assert (long.exact_answer, long.extraction_tries) in [("Sohar", len(long.extraction_failures) + 1), (None, 5)]
    assert labels["none"].extraction_tries == 1 and labels["none"].no_answer  # NO ANSWER is final
    assert labels["ok"].extraction_tries == 1 and labels["ok"].extraction_failures == []


def test_retries_are_seeded_and_reproducible():
    once = label_shard(RETRY_ITEMS, scripted_extractor(), max_words=8, tries=5, seed=3)
    again = label_shard(RETRY_ITEMS, scripted_extractor(), max_words=8, tries=5, seed=3)
    assert once == again
    seeds = {}
    for seed in (3, 4):
        calls = []
        label_shard(RETRY_ITEMS, scripted_extractor(calls), max_words=8, tries=5, seed=seed)
        seeds[seed] = calls[1][1]
    assert seeds[3] != seeds[4]
    assert try_seed(3, "never", 1) == try_seed(3, "never", 1) != try_seed(3, "never", 2) != try_seed(4, "never", 1)
    assert 0 <= try_seed(0, "x", 1) < 2**63


def test_retries_do_not_depend_on_shards_or_order():
    whole = {x.id: x for x in label_shard(RETRY_ITEMS, scripted_extractor(), max_words=8, tries=5)}
    halves = [list(reversed(RETRY_ITEMS[:3])), RETRY_ITEMS[3:]]
    parts = {x.id: x for half in halves for x in label_shard(half, scripted_extractor(), max_words=8, tries=5)}
    assert parts == whole
    assert any(x.extraction_tries > 1 and x.exact_method == "extracted" for x in whole.values())
