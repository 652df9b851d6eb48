"""Token positions, checked against an independent byte-level decode.

The reference maps every generated token to the raw bytes it stands for (the
byte-level BPE alphabet, inverted by hand), converts the answer's character
span to a byte span and takes the tokens overlapping it. The code under test
never looks at bytes: it decodes growing prefixes.
"""

from __future__ import annotations

import pytest

from truthmap.settings import TOKEN_NAMES
from truthmap.positions import (
    MASKED,
    answer_token_range,
    decode,
    find_positions,
    positions_table,
    resolve_positions,
    token_char_spans,
)


def _byte_decoder() -> dict[str, int]:
    """Inverse of the byte-level BPE alphabet: printable bytes map to themselves, others to 256+."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in visible:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


BYTES = _byte_decoder()


def reference_range(tokenizer, gen_ids, text, start, end):
    special = set(tokenizer.all_special_ids)
    pieces = [
        b"" if i in special else bytes(BYTES[c] for c in tokenizer.convert_ids_to_tokens(i)) for i in gen_ids
    ]
    assert b"".join(pieces).decode("utf-8") == text, "the reference decode disagrees with the text"
    lo, hi = len(text[:start].encode()), len(text[:end].encode())
    hits, offset = [], 0
    for k, piece in enumerate(pieces):
        if piece and offset < hi and offset + len(piece) > lo:
            hits.append(k)
        offset += len(piece)
    return (hits[0], hits[-1]) if hits else None


CASES = [
    # (generated text, exact answer, add EOS)
    ("The capital of France is Paris.", "Paris", True),
    (" Paris is the capital.", "Paris", True),  # leading space, answer first
    ("The capital of Burkina Faso is Ouagadougou.", "Ouagadougou", True),  # multi-token word
    ("It is Zürich, I think.", "Zürich", True),  # 2-byte character inside a word
    ("İstanbul is the city.", "İstanbul", True),  # answer starts with a 2-byte character
    ("The city is 東京.", "東京", True),  # 3-byte characters split over tokens
    ("🙂 Paris", "Paris", True),  # 4-byte emoji before the answer
    ("São Tomé", "Tomé", False),  # answer at the very end, no EOS
    ("The answer is 42", "42", False),
    ("17 + 25 = 42.", "42", True),
]


@pytest.fixture(params=["tiny", "smollm2"])
def tokenizer(request, tiny_tokenizer):
    if request.param == "tiny":
        return tiny_tokenizer
    return request.getfixturevalue("smollm_tokenizer")


@pytest.mark.parametrize(("text", "answer", "eos"), CASES)
def test_answer_tokens_match_byte_reference(tokenizer, text, answer, eos):
    gen_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
    decoded, spans = token_char_spans(tokenizer, gen_ids)
    assert decoded == text
    assert len(spans) == len(gen_ids)
    start = text.index(answer)
    end = start + len(answer)
    assert answer_token_range(spans, start, end) == reference_range(tokenizer, gen_ids, text, start, end)


@pytest.mark.parametrize(("text", "answer", "eos"), CASES)
def test_named_positions(tokenizer, text, answer, eos):
    prompt_ids = [5, 6, 7]
    gen_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
    start = text.index(answer)
    first, last = reference_range(tokenizer, gen_ids, text, start, start + len(answer))
    pos = find_positions(tokenizer, prompt_ids, gen_ids, (start, start + len(answer)))
    total = len(prompt_ids) + len(gen_ids)
    assert pos["last_q"] == 2
    assert pos["exact_answer_first"] == 3 + first
    assert pos["exact_answer_last"] == 3 + last
    assert pos["exact_answer_before_first"] == 3 + first - 1
    expected_after = 3 + last + 1 if 3 + last + 1 < total else MASKED
    assert pos["exact_answer_after_last"] == expected_after
    assert pos["-1"] == total - 1
    # the decoded answer tokens contain the answer
    assert answer in decode(tokenizer, gen_ids[first : last + 1])


def test_answer_at_the_very_end_has_no_after_last(tiny_tokenizer):
    gen_ids = tiny_tokenizer("The answer is 42", add_special_tokens=False)["input_ids"]
    text = decode(tiny_tokenizer, gen_ids)
    pos = find_positions(tiny_tokenizer, [1, 2], gen_ids, (text.index("42"), len(text)))
    assert pos["exact_answer_last"] == 2 + len(gen_ids) - 1
    assert pos["exact_answer_after_last"] == MASKED


def test_absent_answer_masks_exact_positions_only(tiny_tokenizer):
    gen_ids = tiny_tokenizer("I am not sure.", add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    pos = find_positions(tiny_tokenizer, [1, 2, 3], gen_ids, None)
    for name in TOKEN_NAMES:
        if name.startswith("exact_answer"):
            assert pos[name] == MASKED
    assert pos["last_q"] == 2
    assert pos["-1"] == 3 + len(gen_ids) - 1
    assert pos["first_answer"] == 3 and pos["second_answer"] == 4  # no exact answer needed


def test_first_and_second_answer_are_the_first_generated_tokens(tiny_tokenizer):
    prompt_ids = [7, 8, 9, 10]
    gen_ids = tiny_tokenizer("Paris.", add_special_tokens=False)["input_ids"]
    pos = find_positions(tiny_tokenizer, prompt_ids, gen_ids, None)
    fed = prompt_ids + gen_ids
    assert fed[pos["first_answer"]] == gen_ids[0] and fed[pos["second_answer"]] == gen_ids[1]
    assert pos["first_answer"] == pos["last_q"] + 1
    one = resolve_positions(prompt_len=4, gen_len=1, answer_tokens=None)
    assert one["first_answer"] == 4 and one["second_answer"] == MASKED
    assert resolve_positions(prompt_len=4, gen_len=0, answer_tokens=None)["first_answer"] == MASKED


def test_short_sequences_mask_far_negative_positions():
    pos = resolve_positions(prompt_len=2, gen_len=3, answer_tokens=(0, 0))
    assert pos["-5"] == 0
    assert pos["-6"] == MASKED and pos["-8"] == MASKED
    assert pos["exact_answer_before_first"] == 1  # the last prompt token
    assert resolve_positions(0, 1, (0, 0))["exact_answer_before_first"] == MASKED


def test_span_outside_every_token_gives_none():
    assert answer_token_range([(0, 3), (3, 6), (6, 6)], 6, 9) is None


def test_positions_table_checks_stored_text(tiny_tokenizer):
    gen_ids = tiny_tokenizer("The capital of France is Paris.", add_special_tokens=False)["input_ids"]
    text = decode(tiny_tokenizer, gen_ids)
    start = text.index("Paris")
    gens = [{"id": "q1", "prompt_ids": [1, 2], "gen_ids": gen_ids, "text": text}]
    labels = [{"id": "q1", "exact_start": start, "exact_end": start + 5}]
    (row,) = positions_table(tiny_tokenizer, gens, labels)
    assert row["exact_answer_first"] == 2 + row["answer_first"]
    assert decode(tiny_tokenizer, gen_ids[row["answer_first"] : row["answer_last"] + 1]).strip() == "Paris"
    gens[0]["text"] = "something else"
    with pytest.raises(ValueError, match="q1"):
        positions_table(tiny_tokenizer, gens, labels)
    with pytest.raises(ValueError, match="no label"):
        positions_table(tiny_tokenizer, [{**gens[0], "id": "q2"}], labels)
