"""Prompts as token ids: answering prompts and the exact-answer extraction prompt.

Chat models get their own chat template (with the generation prompt appended);
base models get plain text. The ids returned here are exactly what the model is
fed, and they are stored, so later stages never re-tokenize a prompt.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from truthmap.context import Fit, fit_fields
from truthmap.files import InputError
from truthmap.settings import GenerationSettings

Style = Literal["chat", "plain"]

EXTRACTION_INSTRUCTION = (
    "Extract the short exact answer from the long answer. Copy it word for word from the "
    "long answer and output nothing else. If the long answer does not answer the question, "
    "output NO ANSWER."
)

NO_ANSWER = "NO ANSWER"

#: Few-shot demonstrations for the extractor: (question, long answer, short answer).
#: They show the shape of small models' answers ("The X of Y is Z."), including
#: wrong ones, and one that does not answer; their topics lie outside the
#: built-in dataset. On SmolLM2-135M these shots halved the replies that copy
#: the whole sentence, compared with longer, essay-like demonstrations.
EXTRACTION_SHOTS: tuple[tuple[str, str, str], ...] = (
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Michelangelo.", "Michelangelo"),
    (
        "What is the boiling point of water in Fahrenheit?",
        "Water boils at 100 degrees Fahrenheit at sea level.",
        "100 degrees Fahrenheit",
    ),
    (
        "Which planet is closest to the Sun?",
        "The planet closest to the Sun is Venus, which is very hot.",
        "Venus",
    ),
    ("What is the largest ocean on Earth?", "Oceans cover most of the planet's surface.", NO_ANSWER),
    ("In which year did the Berlin Wall fall?", "The Berlin Wall fell in 1991.", "1991"),
    ("What language is spoken in Brazil?", "In Brazil, people mainly speak Spanish.", "Spanish"),
)


def resolve_style(requested: str, has_chat_template: bool) -> Style:
    """``auto`` means chat when the tokenizer has a chat template, plain otherwise."""
    if requested == "auto":
        return "chat" if has_chat_template else "plain"
    if requested == "chat" and not has_chat_template:
        raise InputError("config key 'generation.prompt_style' is 'chat' but the model has no chat template",
                         hint="set it to 'plain' or 'auto'")
    return requested  # type: ignore[return-value]


def render(template: str, question: str, context: str | None) -> str:
    """Fill ``{question}`` and ``{context}``; a context the template does not place goes first."""
    text = template.replace("{question}", question)
    if "{context}" in template:
        return text.replace("{context}", context or "")
    return f"{context}\n\n{text}" if context else text


def answer_prompt_text(tokenizer, record: dict, cfg: GenerationSettings, style: Style) -> str:
    """The full prompt text for one question record.

    Chat style wraps ``cfg.template`` in the model's chat template (generation
    prompt included). Plain style fills ``cfg.plain_template``, except for a
    record with a ``plain_question``: that is a complete completion prompt for
    base models (Winobias' "... The pronoun 'she' refers to the", MNLI's and
    IMDB's "... is:") and is used as it is.
    """
    context = record.get("context")
    if style == "chat":
        message = render(cfg.template, record["question"], context)
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False
        )
    if record.get("plain_question"):
        return render("{question}", record["plain_question"], context)
    return render(cfg.plain_template, record["question"], context)


def encode_prompt(tokenizer, text: str, style: Style) -> list[int]:
    """Token ids of a prompt. Chat templates carry their own special tokens."""
    return list(tokenizer(text, add_special_tokens=(style == "plain"))["input_ids"])


def extraction_prompt_text(tokenizer, question: str, long_answer: str, style: Style,
                           shots: int = len(EXTRACTION_SHOTS)) -> str:
    """A prompt with the first ``shots`` demonstrations that asks for the short answer inside ``long_answer``."""
    demonstrations = EXTRACTION_SHOTS[:shots]
    if style == "chat":
        messages = []
        for q, long, short in demonstrations:
            messages.append({"role": "user", "content": _extraction_query(q, long)})
            messages.append({"role": "assistant", "content": short})
        messages.append({"role": "user", "content": _extraction_query(question, long_answer)})
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    blocks = [f"{_extraction_query(q, long)} {short}" for q, long, short in demonstrations]
    blocks.append(_extraction_query(question, long_answer))
    return "\n\n".join(blocks)


def extraction_prompt_ids(tokenizer, question: str, long_answer: str, style: Style, room: int | None) -> Fit:
    """The extraction prompt's ids within ``room`` tokens.

    What goes first when it does not fit: demonstrations, from the last one;
    then the start of the question. The long answer is never cut (the reply
    must be found in it); when it alone is too long the fit has no ids.
    """
    def render(shots: int, question: str = question) -> list[int]:
        return encode_prompt(tokenizer, extraction_prompt_text(tokenizer, question, long_answer, style, shots), style)

    for shots in range(len(EXTRACTION_SHOTS), 0, -1):
        ids = render(shots)
        if room is None or len(ids) <= room:
            return Fit(ids, room, dropped_demonstrations=len(EXTRACTION_SHOTS) - shots)
    fit = fit_fields(lambda question: render(0, question), {"question": question}, ["question"], tokenizer, room)
    return replace(fit, dropped_demonstrations=len(EXTRACTION_SHOTS))


def _extraction_query(question: str, long_answer: str) -> str:
    return (
        f"{EXTRACTION_INSTRUCTION}\nQuestion: {question}\nLong answer: {long_answer.strip()}\n"
        "Short answer:"
    )


def parse_extraction(text: str) -> str | None:
    """The extractor's reply as a short answer, or None for NO ANSWER / nothing."""
    reply = text.strip().splitlines()[0].strip() if text.strip() else ""
    reply = reply.removeprefix("Short answer:").strip().strip('"').strip()
    if not reply or NO_ANSWER.lower() in reply.lower():
        return None
    return reply
