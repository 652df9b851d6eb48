"""Token positions relative to the model's own answer, as indices into the fed ids.

The sequence fed to the model is ``prompt_ids + gen_ids``. The exact answer is a
character span of the generated *text*; it is mapped onto generated ids through
the character span of every generated token, found by decoding growing prefixes
of ``gen_ids`` (incremental decoding), never by re-tokenizing the text.

A byte-level tokenizer may split one character over several tokens; a prefix
that ends inside such a character decodes to a replacement character. A token
whose bytes only start a character is given that character's span, so every
token that contributes bytes to the answer counts as part of it.

A position that does not exist for an example (no exact answer, nothing after the
answer, a sequence shorter than 8 tokens) is -1: masked, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

from truthmap.settings import TOKEN_NAMES

MASKED = -1


def decode(tokenizer, ids: Sequence[int]) -> str:
    """The text of generated ids, as stored: special tokens dropped, no clean-up."""
    return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


def token_char_spans(tokenizer, gen_ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """The decoded text and, per generated token, its ``[start, end)`` span in it.

    Special tokens (such as the final end-of-sequence) get an empty span at the
    end of the text.
    """
    text = decode(tokenizer, gen_ids)
    bounds = [0]
    clean = [True]
    for k in range(1, len(gen_ids) + 1):
        prefix = decode(tokenizer, gen_ids[:k])
        common = _common_prefix_len(prefix, text)
        bounds.append(common)
        clean.append(common == len(prefix))
    spans = []
    for i in range(len(gen_ids)):
        start, end = bounds[i], bounds[i + 1]
        if not clean[i + 1] and end < len(text):
            end += 1  # the token ends inside a character that a later token completes
        spans.append((start, end))
    return text, spans


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def answer_token_range(spans: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """First and last generated-token index overlapping the char span ``[start, end)``."""
    hits = [i for i, (s, e) in enumerate(spans) if s < end and e > start]
    if not hits:
        return None
    return hits[0], hits[-1]


def resolve_positions(
    prompt_len: int,
    gen_len: int,
    answer_tokens: tuple[int, int] | None,
) -> dict[str, int]:
    """Every named position (see :data:`TOKEN_NAMES`) as an index into prompt + generation.

    ``answer_tokens`` is the (first, last) generated-token index of the exact
    answer, or None when there is no exact answer.
    """
    total = prompt_len + gen_len
    out: dict[str, int] = {name: MASKED for name in TOKEN_NAMES}
    if prompt_len > 0:
        out["last_q"] = prompt_len - 1
    if gen_len >= 1:
        out["first_answer"] = prompt_len
    if gen_len >= 2:
        out["second_answer"] = prompt_len + 1
    if answer_tokens is not None:
        first = prompt_len + answer_tokens[0]
        last = prompt_len + answer_tokens[1]
        out["exact_answer_before_first"] = first - 1 if first >= 1 else MASKED
        out["exact_answer_first"] = first
        out["exact_answer_last"] = last
        out["exact_answer_after_last"] = last + 1 if last + 1 < total else MASKED
    for k in range(1, 9):
        out[str(-k)] = total - k if total - k >= 0 else MASKED
    return out


def find_positions(
    tokenizer,
    prompt_ids: Sequence[int],
    gen_ids: Sequence[int],
    exact_span: tuple[int, int] | None,
) -> dict[str, int]:
    """All named positions of one example, from its exact answer's character span."""
    answer_tokens = None
    if exact_span is not None:
        _, spans = token_char_spans(tokenizer, gen_ids)
        answer_tokens = answer_token_range(spans, *exact_span)
    return resolve_positions(len(prompt_ids), len(gen_ids), answer_tokens)


def positions_table(tokenizer, generations: Sequence[dict], labels: Sequence[dict]) -> list[dict]:
    """One row per example: id, lengths, exact-answer token range and every named position."""
    by_id = {label["id"]: label for label in labels}
    rows = []
    for gen in generations:
        label = by_id.get(gen["id"])
        if label is None:
            raise ValueError(f"example {gen['id']!r} has a generation but no label")
        span = None
        if label["exact_start"] is not None:
            span = (int(label["exact_start"]), int(label["exact_end"]))
        answer_tokens = None
        if span is not None:
            text, spans = token_char_spans(tokenizer, gen["gen_ids"])
            if text != gen["text"]:
                raise ValueError(
                    f"example {gen['id']!r}: decoding the stored generated ids does not give the stored text"
                )
            answer_tokens = answer_token_range(spans, *span)
        positions = resolve_positions(len(gen["prompt_ids"]), len(gen["gen_ids"]), answer_tokens)
        rows.append({
            "id": gen["id"],
            "prompt_len": len(gen["prompt_ids"]),
            "gen_len": len(gen["gen_ids"]),
            "answer_first": answer_tokens[0] if answer_tokens else MASKED,
            "answer_last": answer_tokens[1] if answer_tokens else MASKED,
            **positions,
        })
    return rows


POSITION_COLUMNS = ("id", "prompt_len", "gen_len", "answer_first", "answer_last", *TOKEN_NAMES)
