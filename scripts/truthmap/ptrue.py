"""P(True): the model judges its own answer (Kadavath et al., 2022).

The model sees its question and answer and is asked whether the answer is
true, with options "(A) True (B) False" and, in a second prompt, the other
order; the next-token logits of "A" and "B" after "The possible answer is: ("
give the log-odds of True. The order is chosen later on training questions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from truthmap.prompts import Style

ORDERS: dict[str, tuple[str, str]] = {"ab": ("True", "False"), "ba": ("False", "True")}
P_TRUE_COLUMNS = ("id", "split", "logodds_true_ab", "logodds_true_ba", "prompt_cut")
ANSWER_CUE = "The possible answer is: ("


def p_true_prompt(tokenizer, question: str, answer: str, order: str, style: Style) -> str:
    """The prompt text ending in ``(``, right before the option letter."""
    first, second = ORDERS[order]
    body = (
        f"Question: {question}\nPossible answer: {answer.strip()}\n"
        f"Is the possible answer:\n (A) {first}\n (B) {second}\n"
    )
    if style == "chat":
        chat = tokenizer.apply_chat_template(
            [{"role": "user", "content": body + "Answer with A or B."}],
            add_generation_prompt=True, tokenize=False,
        )
        return chat + ANSWER_CUE
    return body + ANSWER_CUE


def letter_ids(tokenizer, prompt: str, style: Style) -> tuple[int, int]:
    """The ids of "A" and "B" as the token right after ``prompt``."""
    from truthmap.prompts import encode_prompt

    base = encode_prompt(tokenizer, prompt, style)
    ids = []
    for letter in "AB":
        full = encode_prompt(tokenizer, prompt + letter, style)
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ValueError(f"the tokenizer does not give {letter!r} a token of its own after {prompt[-20:]!r}")
        ids.append(full[-1])
    return ids[0], ids[1]


def p_true_log_odds(
    model, tokenizer, items: Sequence[tuple[str, str]], style: Style, batch_size: int,
    max_positions: int | None = None, share_stem: bool = True,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """log P(True) - log P(False) per (question, answer) item, for both option orders, and what
    each item's prompts lost to fit the context.

    A prompt longer than ``max_positions`` loses the start of its question, then
    of its answer; one that cannot fit even so gets NaN, and its note says why.
    ``share_stem=False`` runs each order's prompt whole (what the benchmark compares with).
    """
    from truthmap.context import fit_fields
    from truthmap.generation import branch_logits
    from truthmap.prompts import encode_prompt

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    fits = {}
    for order in ORDERS:
        def render(question: str, answer: str, order: str = order) -> list[int]:
            return encode_prompt(tokenizer, p_true_prompt(tokenizer, question, answer, order, style), style)

        fits[order] = [
            fit_fields(render, {"question": q, "answer": a}, ["question", "answer"], tokenizer, max_positions)
            for q, a in items
        ]
    letters = {}
    for order in ORDERS:
        fed = [i for i, fit in enumerate(fits[order]) if fit.ids is not None]
        if fed:
            letters[order] = letter_ids(tokenizer, p_true_prompt(tokenizer, *items[fed[0]], order, style), style)
    # log-odds of the first option (A) over the second (B), per order; the two orders of an
    # item share everything up to the options, run once
    ab = {order: np.full(len(items), np.nan) for order in ORDERS}
    fed_in = {o: {i for i, fit in enumerate(fits[o]) if fit.ids is not None} for o in ORDERS}
    both = set.intersection(*fed_in.values()) if share_stem else set()
    groups = [(sorted(both), list(ORDERS))] + [(sorted(fed_in[o] - both), [o]) for o in ORDERS]
    for fed, orders in groups:
        if not fed:
            continue
        wanted = [t for o in orders for t in letters[o]]
        logits = branch_logits(model, [[fits[o][i].ids for o in orders] for i in fed], wanted, pad_id=pad,
                               batch_size=batch_size)
        for j, o in enumerate(orders):
            ab[o][fed] = logits[:, j, 2 * j] - logits[:, j, 2 * j + 1]
    out = {order: ab[order] * (1 if first == "True" else -1) for order, (first, _) in ORDERS.items()}
    notes: list[list[str]] = [[] for _ in items]
    for order in ORDERS:
        for note, fit in zip(notes, fits[order]):
            if fit.note and fit.note not in note:
                note.append(fit.note)
    return out, ["; ".join(note) for note in notes]


def questions_to_score(split_rows: Sequence[dict], n_train: int, seed: int) -> dict[str, str]:
    """{id: split} of the probes' test questions plus a seeded sample of their training questions.

    The sample is drawn from the whole split table, so every shard's job agrees on it.
    """
    common = [r for r in split_rows if int(r["common"]) == 1]
    train = sorted(r["id"] for r in common if r["split"] == "train")
    rng = np.random.default_rng(seed)
    sample = set(rng.choice(train, size=min(n_train, len(train)), replace=False).tolist()) if train else set()
    wanted = {r["id"]: "test" for r in common if r["split"] == "test"}
    wanted.update({q: "train" for q in sample})
    return wanted


def score_shard(model, tokenizer, generations: Sequence[dict], wanted: dict[str, str],
                batch_size: int, max_positions: int | None = None) -> list[dict]:
    """P(True) log-odds, both orders, of this shard's wanted questions (their own prompt style).

    ``prompt_cut`` says what a question's prompts lost to fit the model's context (empty: nothing).
    """
    chosen = [g for g in generations if g["id"] in wanted]
    rows = []
    for style in sorted({g["prompt_style"] for g in chosen}):
        part = [g for g in chosen if g["prompt_style"] == style]
        odds, cut = p_true_log_odds(model, tokenizer, [(g["question"], g["text"]) for g in part], style,
                                    batch_size, max_positions)
        rows += [
            {"id": g["id"], "split": wanted[g["id"]], "logodds_true_ab": float(odds["ab"][i]),
             "logodds_true_ba": float(odds["ba"][i]), "prompt_cut": cut[i]}
            for i, g in enumerate(part)
        ]
    return rows
