"""Prompts that fit the model's context: cut what matters least, say what was cut.

Every stage that feeds the model a prompt builds it through here. An answer
prompt (:func:`fit_context`) keeps its end, leaving room for the answer
(:func:`prompt_room`). Other prompts are rebuilt from their text fields
(:func:`fit_fields`): one that fits is left exactly as it is; one that does
not loses, in this order, what the stage declares expendable: few-shot
demonstrations first (see :func:`truthmap.prompts.extraction_prompt_ids`),
then the start of a text field (the question), then the start of another
(the answer being judged).
When even an empty field leaves the prompt too long the caller skips the
item and records why; nothing here raises for a long prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from truthmap.files import InputError

#: Renders a prompt's token ids from the current values of its cuttable fields.
Render = Callable[..., list[int]]


@dataclass(frozen=True)
class Fit:
    """A prompt fitted to the context, and what it lost."""

    ids: list[int] | None
    """The prompt's ids; None when it cannot fit (the item is skipped)."""
    room: int | None
    """The tokens the prompt could have (the context less what the stage generates); None: no limit."""
    cut: dict[str, int] = field(default_factory=dict)
    """Tokens cut from the start of each field, e.g. ``{"question": 12}``."""
    dropped_demonstrations: int = 0

    @property
    def note(self) -> str:
        """What was cut, or why the item was skipped, for the stage's record: empty when nothing was."""
        if self.ids is None:
            fields = " and ".join(self.cut) or "nothing to cut"
            return f"skipped: longer than the {self.room} tokens the context leaves, even with {fields} cut"
        parts = [f"{self.dropped_demonstrations} demonstrations dropped"] if self.dropped_demonstrations else []
        parts += [f"{n} {name} tokens cut from the start" for name, n in self.cut.items() if n]
        return "; ".join(parts)


def prompt_room(max_positions: int | None, max_new_tokens: int, key: str) -> int | None:
    """Tokens a prompt may have so that ``max_new_tokens`` more fit the context; None: no limit."""
    if max_positions is None:
        return None
    room = max_positions - max_new_tokens
    if room < 1:
        raise InputError(
            f"config key {key!r}: {max_new_tokens} leaves no room for a prompt in the model's context of "
            f"{max_positions} tokens", hint=f"lower {key} below {max_positions}",
        )
    return room


def fit_context(prompt_ids: Sequence[int], max_positions: int | None, max_new_tokens: int) -> tuple[list[int], int]:
    """(ids, tokens cut): a prompt that leaves no room for ``max_new_tokens`` in the
    model's context keeps its end (the question and the turn to answer)."""
    ids = list(prompt_ids)
    room = prompt_room(max_positions, max_new_tokens, "generation.max_new_tokens")
    if room is None:
        return ids, 0
    cut = max(0, len(ids) - room)
    return ids[cut:], cut


def fit_fields(render: Render, fields: dict[str, str], order: Sequence[str], tokenizer, room: int | None) -> Fit:
    """Fit ``render(**fields)`` within ``room`` tokens by cutting the starts of ``order``'s fields.

    Fields are cut one after the other, each only as far as needed (the fewest
    of its leading tokens, found by bisection); a field is emptied before the
    next one is touched. ``room`` None means no limit.
    """
    values = dict(fields)
    cut = {name: 0 for name in order}
    ids = render(**values)
    if room is None or len(ids) <= room:
        return Fit(ids, room, cut)
    for name in order:
        kept, n = _cut_start(lambda text: render(**{**values, name: text}), values[name], tokenizer, room)
        if kept is not None:
            values[name] = kept
            cut[name] = n
            return Fit(render(**values), room, cut)
        cut[name] = len(_tokens(tokenizer, values[name]))
        values[name] = ""
    return Fit(None, room, cut)


def _tokens(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _cut_start(render: Callable[[str], list[int]], text: str, tokenizer, room: int) -> tuple[str | None, int]:
    """(text without its fewest leading tokens that make ``render`` fit, tokens cut); (None, 0) when
    even an empty text does not fit.

    Cuts fall only where the kept text starts with a whole character: a cut
    inside a multi-byte character would feed the model a replacement character
    (U+FFFD) that the text never had, and could make the prompt longer.
    """
    if len(render("")) > room:
        return None, 0
    parts = _tokens(tokenizer, text)
    cuts = [n for n in range(1, len(parts)) if not tokenizer.decode(parts[n : n + 4]).startswith("\ufffd")]
    cuts.append(len(parts))  # cutting every token fits

    def kept(n: int) -> str:
        return tokenizer.decode(parts[n:]).lstrip() if n < len(parts) else ""

    low, high = 0, len(cuts) - 1
    while low < high:
        mid = (low + high) // 2
        if len(render(kept(cuts[mid]))) <= room:
            high = mid
        else:
            low = mid + 1
    return kept(cuts[high]), cuts[high]


def context_length(max_positions: int | None, model_name: str, log: logging.Logger) -> int | None:
    """The model's context in tokens, logging the assumption made when its config states none."""
    if max_positions is None:
        log.warning("model %s states no context length in its config (max_position_embeddings / n_positions): "
                    "assuming it takes prompts of any length, none is cut", model_name)
    return max_positions


def log_cuts(log: logging.Logger, what: str, notes: dict[str, str], max_positions: int | None) -> None:
    """Name the questions whose prompts were cut or skipped to fit the context, with what each lost."""
    cut = {qid: note for qid, note in notes.items() if note}
    if not cut:
        return
    skipped = [qid for qid, note in cut.items() if note.startswith("skipped")]
    log.warning("%d %s prompts did not fit the model's context of %s tokens: %d cut, %d skipped; questions: %s",
                len(cut), what, max_positions, len(cut) - len(skipped), len(skipped),
                ", ".join(f"{qid} ({note})" for qid, note in cut.items()))
