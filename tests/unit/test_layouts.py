"""Every model stage on tiny random models of three layouts, each with a short context.

Llama (rotary positions), GPT-2 (learned position embeddings: a position past
``n_positions`` is an ``IndexError``) and GPT-NeoX (rotary, parallel residual)
are built from configs with a context of :data:`CONTEXT` tokens, saved with
safetensors and the tiny tokenizer, and prepared like any Hugging Face folder.
Each stage (generation, exact-answer extraction and labels, positions,
activations at both sites, P(True)) is then fed prompts far longer than that
context. A guard on every model's transformer body fails the test the moment
anything is fed past the context, whatever the layout (GPT-2 would crash
there anyway; the rotary layouts would silently run on). Results are checked
against plain unbatched forward passes of the same model.

The context is 256 tokens, not 64: with the tiny tokenizer (vocabulary 320)
the extraction prompt without any demonstration is already 180 tokens and the
P(True) prompt with an empty question and answer 101, so at 64 every
extraction and P(True) prompt would only ever be skipped. 256 still leaves the
full few-shot extraction prompt (~1600 tokens) six times too long.
"""

from __future__ import annotations

import itertools

import dataclasses
import re

import numpy as np
import pytest
import torch

from truthmap.activations import extract_to_h5, fit_sequences, shard_inputs
from truthmap.context import Fit
from truthmap.generation import answer_questions, eos_ids, extract_short_answers, newline_ids
from truthmap.h5io import read_layer, read_meta
from truthmap.labels import label_shard, shard_items
from truthmap.matching import match_alias
from truthmap.models import ModelInfo, decoder_body, decoder_layers, load_model, prepare_model
from truthmap.positions import decode, positions_table
from truthmap.prompts import (
    EXTRACTION_SHOTS,
    answer_prompt_text,
    encode_prompt,
    extraction_prompt_ids,
    extraction_prompt_text,
)
from truthmap.ptrue import p_true_log_odds, p_true_prompt, score_shard
from truthmap.settings import GenerationSettings

CONTEXT = 256
MAX_NEW = 8
NUM_LAYERS = 3
LAYOUTS = ["llama", "gpt2", "gpt_neox"]
SHOTS = len(EXTRACTION_SHOTS)

SHORT_QUESTIONS = {
    "short_1": "What is the capital of France?",
    "short_2": "What is 17 + 25?",
    "short_3": "Which city is the capital of Burkina Faso?",
}
LONG_QUESTIONS = {
    "long_1": "The capital of France is Paris. " * 28 + "What is the capital of France?",
    "long_2": "Zürich, İstanbul, São Tomé and 東京 are cities. " * 12 + "What is 17 + 25?",
}
#: A generation "of another model": a short prompt and an answer that alone is longer than the context.
OTHER_ID = "other"
OTHER_ANSWER = "I am not sure, but I think it is Rome or Romeo. " * 16 + "The answer is 42."
TOKENS = ["last_q", "exact_answer_first", "exact_answer_last", "-8", "-1"]


# --------------------------------------------------------------------------- models


def _build(layout: str, tok):
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    if layout == "llama":
        return LlamaForCausalLM(LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=NUM_LAYERS, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=CONTEXT, tie_word_embeddings=False, **ids))
    if layout == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_embd=32, n_inner=64, n_layer=NUM_LAYERS, n_head=4,
                                          n_positions=CONTEXT, **ids))
    return GPTNeoXForCausalLM(GPTNeoXConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=NUM_LAYERS, num_attention_heads=4,
        max_position_embeddings=CONTEXT, **ids))


class ContextGuard:
    """A pre-hook on the transformer body: fail on any call that reaches past the context."""

    def __init__(self, body, limit: int) -> None:
        self.limit = limit
        self.longest = 0
        self.calls = 0
        self.handle = body.register_forward_pre_hook(self._check, with_kwargs=True)

    def _check(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        past = kwargs.get("past_key_values")
        past_len = past.get_seq_length() if past is not None else 0
        total = past_len + ids.shape[1]
        position_ids = kwargs.get("position_ids")
        if position_ids is not None:
            total = max(total, int(position_ids.max()) + 1)
        self.calls += 1
        self.longest = max(self.longest, total)
        assert total <= self.limit, f"fed {total} positions to a model with a context of {self.limit}"


@pytest.fixture(scope="module", params=LAYOUTS)
def layout(request, tmp_path_factory, tiny_tokenizer):
    """(layout name, prepared model folder, model, tokenizer, manifest, context guard)."""
    name = request.param
    hf_dir = tmp_path_factory.mktemp(f"hf_{name}")
    model = _build(name, tiny_tokenizer).eval()
    model.save_pretrained(hf_dir, safe_serialization=True)
    tiny_tokenizer.save_pretrained(hf_dir)
    prepared = tmp_path_factory.mktemp(f"prepared_{name}") / name
    prepare_model(name, str(hf_dir), prepared)
    model, tok = load_model(prepared, device_map="cpu", dtype="float32")  # the references are float32
    guard = ContextGuard(decoder_body(model), CONTEXT)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32-wide model gains nothing from more, and loses on a busy machine
    try:
        yield name, prepared, model, tok, ModelInfo.read(prepared), guard
    finally:
        torch.set_num_threads(threads)
        guard.handle.remove()


# --------------------------------------------------------------------------- references


@torch.no_grad()
def _greedy(model, ids, max_new: int, stop: set[int]) -> list[int]:
    """Greedy decoding the slow way: one full unbatched forward per new token."""
    ids, out = list(ids), []
    for _ in range(max_new):
        token = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
        out.append(token)
        if token in stop:
            break
    return out


@torch.no_grad()
def _reference_states(model, seq, site: str) -> dict[int, np.ndarray]:
    """Per layer, the (len(seq), H) hidden states of one unpadded sequence run alone.

    Residual: ``hidden_states[layer + 1]``, except for the last block (its entry has the final norm
    applied), which is read by a hook on the block. MLP input: a pre-hook on each block's MLP.
    """
    blocks = decoder_layers(model)
    kept, handles = {}, []
    for layer, block in enumerate(blocks):
        if site == "mlp_input":
            handles.append(block.mlp.register_forward_pre_hook(
                lambda m, a, layer=layer: kept.__setitem__(layer, a[0][0].clone())))
        elif layer == len(blocks) - 1:
            handles.append(block.register_forward_hook(
                lambda m, a, o, layer=layer: kept.__setitem__(layer, (o[0] if isinstance(o, tuple) else o)[0])))
    try:
        out = model(torch.tensor([list(seq)]), output_hidden_states=True)
    finally:
        for handle in handles:
            handle.remove()
    if site == "residual":
        for layer in range(len(blocks) - 1):
            kept[layer] = out.hidden_states[layer + 1][0]
    return {layer: t.float().numpy() for layer, t in kept.items()}


def _tokens(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _chat_ids(tok, question: str) -> list[int]:
    text = answer_prompt_text(tok, {"question": question}, GenerationSettings(), "chat")
    return encode_prompt(tok, text, "chat")


def _questions() -> list[dict]:
    return [{"id": qid, "question": q, "aliases": ["Ouagadougou"], "meta": {"domain": "d"}}
            for qid, q in {**SHORT_QUESTIONS, **LONG_QUESTIONS}.items()]


# --------------------------------------------------------------------------- the stages, once per layout


@pytest.fixture(scope="module")
def stages(layout):
    """Generation, labels (with the real extractor) and positions of one layout."""
    name, _, model, tok, info, _ = layout
    cfg = dataclasses.replace(GenerationSettings(), max_new_tokens=MAX_NEW, batch_size=2)
    questions = _questions()
    generations = answer_questions(questions, model, tok, cfg, info.has_chat_template, max_positions=CONTEXT)

    # A question answered right: its alias is the model's own (non-empty) answer.
    right = next((g["id"] for g in generations
                  if g["id"] in SHORT_QUESTIONS and match_alias(g["text"], [g["text"].strip()]) is not None), None)
    label_questions = [{**q, "aliases": [g["text"].strip()]} if q["id"] == right else q
                       for q, g in zip(questions, generations)]
    other_ids = _tokens(tok, OTHER_ANSWER)
    other = {"id": OTHER_ID, "question": SHORT_QUESTIONS["short_1"], "prompt_style": "chat",
             "prompt_ids": _chat_ids(tok, SHORT_QUESTIONS["short_1"]), "prompt_tokens_cut": 0,
             "gen_ids": other_ids, "text": decode(tok, other_ids)}
    label_questions.append({"id": OTHER_ID, "question": other["question"], "aliases": ["Ouagadougou"]})
    all_generations = [*generations, other]

    calls = []

    def extract(pairs, seeds=None):
        replies = extract_short_answers(pairs, model, tok, MAX_NEW, 2, info.has_chat_template,
                                        max_positions=CONTEXT)
        calls.append((list(pairs), replies))
        return replies

    labels = label_shard(shard_items(label_questions, all_generations), extract, max_words=8)
    rows = positions_table(tok, all_generations, [label.to_dict() for label in labels])
    return dict(name=name, generations=generations, all_generations=all_generations, right=right,
                calls=calls, labels=labels, rows=rows)


# --------------------------------------------------------------------------- tests


def test_prepared_model_states_its_short_context(layout):
    name, prepared, model, tok, info, _ = layout
    assert info.name == name
    assert info.max_positions == CONTEXT
    assert info.num_layers == NUM_LAYERS == len(decoder_layers(model))
    assert info.has_chat_template
    assert info.model_type == name
    inside = torch.tensor([[5] * CONTEXT])
    assert model(inside).logits.shape == (1, CONTEXT, len(tok))
    if name == "gpt2":  # learned position embeddings: one token too many is an error
        guard = layout[5]
        guard.limit = CONTEXT + 1  # let it reach the model
        try:
            with pytest.raises(IndexError, match="index out of range"):
                model(torch.tensor([[5] * (CONTEXT + 1)]))
        finally:
            guard.limit = CONTEXT


def test_the_guard_catches_an_overflow(layout):
    model = layout[2]
    with pytest.raises(AssertionError, match=f"fed {CONTEXT + 1} positions"):
        model(torch.tensor([[5] * (CONTEXT + 1)]))
    model(torch.tensor([[5] * CONTEXT]))


def test_generation_cuts_long_prompts_to_fit_the_context(layout, stages):
    model, tok = layout[2], layout[3]
    room = CONTEXT - MAX_NEW
    by_id = {g["id"]: g for g in stages["generations"]}
    assert set(by_id) == {*SHORT_QUESTIONS, *LONG_QUESTIONS}
    stop = eos_ids(model, tok)
    for qid, g in by_id.items():
        full = encode_prompt(tok, g["prompt"], "chat")
        assert g["prompt_style"] == "chat"
        assert len(g["prompt_ids"]) + len(g["gen_ids"]) <= CONTEXT
        if qid in LONG_QUESTIONS:
            assert len(full) > CONTEXT  # the test's premise: the prompt alone overflows
            assert g["prompt_tokens_cut"] == len(full) - room > 0
        else:
            assert g["prompt_tokens_cut"] == 0
        assert g["prompt_ids"] == full[g["prompt_tokens_cut"]:]  # the end (the turn to answer) is kept
        assert g["gen_ids"] == _greedy(model, g["prompt_ids"], MAX_NEW, stop), qid
        assert g["text"] == decode(tok, g["gen_ids"])
        assert len(g["logprobs"]) == len(g["gen_ids"])


def test_extraction_prompt_fits_the_room(tiny_tokenizer):
    tok = tiny_tokenizer
    question = LONG_QUESTIONS["long_1"]
    for style in ("chat", "plain"):
        def ids(shots, q=question, style=style):
            return encode_prompt(tok, extraction_prompt_text(tok, q, "Paris.", style, shots), style)

        whole = extraction_prompt_ids(tok, question, "Paris.", style, None)
        assert isinstance(whole, Fit) and whole.ids == ids(SHOTS) and whole.note == ""
        two = len(ids(2))
        fit = extraction_prompt_ids(tok, question, "Paris.", style, two)
        assert fit.ids == ids(2) and fit.dropped_demonstrations == SHOTS - 2
        assert fit.note == f"{SHOTS - 2} demonstrations dropped"
        fit = extraction_prompt_ids(tok, question, "Paris.", style, two - 1)
        assert fit.dropped_demonstrations == SHOTS - 1 and len(fit.ids) <= two - 1

        room = 200
        assert len(ids(0)) > room
        fit = extraction_prompt_ids(tok, question, "Paris.", style, room)
        assert isinstance(fit, Fit) and fit.ids is not None and len(fit.ids) <= room
        n = fit.cut["question"]
        assert fit.dropped_demonstrations == SHOTS and n > 0
        assert fit.note == f"{SHOTS} demonstrations dropped; {n} question tokens cut from the start"
        q_ids = _tokens(tok, question)
        kept = tok.decode(q_ids[n:]).lstrip()
        assert question.endswith(kept) and kept.endswith("What is the capital of France?")
        assert fit.ids == ids(0, kept)
        assert len(ids(0, tok.decode(q_ids[n - 1:]).lstrip())) > room  # the fewest tokens were cut
        text = tok.decode(fit.ids)
        assert "Long answer: Paris.\nShort answer:" in text and "Michelangelo" not in text

        skipped = extraction_prompt_ids(tok, "Q?", OTHER_ANSWER, style, room)
        assert skipped.ids is None and skipped.note.startswith("skipped")
        assert f"the {room} tokens the context leaves" in skipped.note


def test_labels_with_a_short_context_extractor(layout, stages):
    model, tok = layout[2], layout[3]
    labels = {label.id: label for label in stages["labels"]}
    gens = {g["id"]: g for g in stages["all_generations"]}
    right = stages["right"]
    assert right is not None, "no short answer had a word to serve as its alias"
    assert labels[right].correct and labels[right].exact_method == "text"
    assert labels[right].extractor_prompt_cut == "" and labels[right].extractor_reply is None
    assert gens[right]["text"][labels[right].exact_start:labels[right].exact_end] == labels[right].exact_answer

    assert len(stages["calls"]) == 1
    pairs, replies = stages["calls"][0]
    wrong = [g["id"] for g in stages["all_generations"] if g["id"] != right and g["text"].strip()]
    assert pairs == [(gens[i]["question"], gens[i]["text"]) for i in wrong]

    room = CONTEXT - MAX_NEW
    stop = eos_ids(model, tok) | newline_ids(tok)
    for qid, (reply, note) in zip(wrong, replies):
        label = labels[qid]
        assert not label.correct and label.extractor_prompt_cut == note
        if qid == OTHER_ID:  # its long answer alone does not fit: not fed, and said why
            assert reply is None and note.startswith("skipped")
            assert label.exact_method == "none" and label.exact_answer is None and label.extractor_reply is None
            assert "context" in label.reason and note in label.reason, label.reason
            continue
        assert note.startswith(f"{SHOTS} demonstrations dropped")
        assert ("question tokens cut from the start" in note) == (qid in LONG_QUESTIONS), note
        fit = extraction_prompt_ids(tok, gens[qid]["question"], gens[qid]["text"], "chat", room)
        assert len(fit.ids) <= room and fit.note == note
        assert reply == decode(tok, _greedy(model, fit.ids, MAX_NEW, stop))
        assert label.extractor_reply == reply
        assert label.exact_method in ("extracted", "none")
        assert (label.exact_answer is None) == (label.exact_method == "none")


def test_positions_index_the_fed_tokens(layout, stages):
    tok = layout[3]
    labels = {label.id: label for label in stages["labels"]}
    gens = {g["id"]: g for g in stages["all_generations"]}
    rows = {r["id"]: r for r in stages["rows"]}
    assert set(rows) == set(gens)
    for qid, row in rows.items():
        g, label = gens[qid], labels[qid]
        prompt_len, gen_len = len(g["prompt_ids"]), len(g["gen_ids"])
        total = prompt_len + gen_len
        assert (row["prompt_len"], row["gen_len"]) == (prompt_len, gen_len)
        assert row["last_q"] == prompt_len - 1
        assert row["-1"] == total - 1 and row["-8"] == total - 8
        if qid != OTHER_ID:
            assert total <= CONTEXT
        if label.exact_start is None:
            assert row["answer_first"] == row["exact_answer_first"] == row["exact_answer_last"] == -1
            continue
        first, last = row["answer_first"], row["answer_last"]
        assert row["exact_answer_first"] == prompt_len + first and row["exact_answer_last"] == prompt_len + last
        assert label.exact_answer in decode(tok, g["gen_ids"][first:last + 1])
        assert len(decode(tok, g["gen_ids"][:first])) <= label.exact_start
        assert len(decode(tok, g["gen_ids"][:last])) < label.exact_end
    assert rows[stages["right"]]["exact_answer_first"] >= 0


def test_fit_sequences_cuts_the_start_and_masks_what_it_lost():
    seqs = [list(range(10, 20)), [1, 2, 3, 4]]
    positions = np.array([[0, 5, 9, -1], [0, 3, -1, 2]])
    fitted, pos, cuts = fit_sequences(seqs, positions, 6)
    assert fitted == [list(range(14, 20)), [1, 2, 3, 4]]
    assert cuts == [4, 0]
    assert pos.tolist() == [[-1, 1, 5, -1], [0, 3, -1, 2]]
    assert positions.tolist() == [[0, 5, 9, -1], [0, 3, -1, 2]]  # the input is left as it was
    for row in range(2):  # every kept position still names the same token
        for p, q in zip(positions[row], pos[row]):
            if q >= 0:
                assert fitted[row][q] == seqs[row][p]
    fitted, pos, cuts = fit_sequences(seqs, positions, None)
    assert fitted == seqs and cuts == [0, 0] and pos.tolist() == positions.tolist()
    fitted, pos, cuts = fit_sequences(seqs, positions, 10)
    assert fitted == seqs and cuts == [0, 0]


_REFERENCES: dict = {}


@pytest.mark.parametrize("batch_tokens", [64, 200])
def test_activations_match_an_unbatched_forward(layout, stages, batch_tokens, tmp_path, monkeypatch):
    import truthmap.activations

    name, _, model, tok, info, guard = layout
    shared = []
    prefix_cache = truthmap.activations.prefix_cache

    def spy(body, capture, prefix, copies, device):
        shared.append((len(prefix), copies))
        return prefix_cache(body, capture, prefix, copies, device)

    monkeypatch.setattr(truthmap.activations, "prefix_cache", spy)
    labels = [label.to_dict() for label in stages["labels"]]
    ids, seqs, positions, y = shard_inputs(stages["all_generations"], labels, stages["rows"], TOKENS)
    fitted, pos, cuts = fit_sequences(seqs, positions, CONTEXT)
    other = ids.index(OTHER_ID)
    assert len(seqs[other]) > CONTEXT and cuts[other] == len(seqs[other]) - CONTEXT
    assert all(c == 0 for i, c in enumerate(cuts) if i != other)
    assert max(len(s) for s in fitted) == CONTEXT
    assert pos[other, TOKENS.index("last_q")] == -1  # its prompt was cut away
    assert (pos[other] >= 0).sum() == 2  # "-8" and "-1" remain

    layers = [0, 1, NUM_LAYERS - 1]
    out = tmp_path / "shard.h5"
    calls, guard.longest = guard.calls, 0
    sites = ["residual", "mlp_input"]
    extract_to_h5(model, str(out), ids=ids, seqs=fitted, positions=pos, labels=y, tokens=TOKENS, layers=layers,
                  sites=sites, model_name=info.name, pad_id=tok.pad_token_id, batch_tokens=batch_tokens,
                  share_prefix=True)
    assert guard.calls > calls and guard.longest == CONTEXT  # right up to the context, not past it
    # Small batches run every sequence alone; large ones batch the short prompts behind a shared prefix.
    assert bool(shared) == (batch_tokens == 200) and all(n >= 8 and copies >= 2 for n, copies in shared), shared

    meta = read_meta(out)
    assert meta.ids == ids and meta.tokens == TOKENS and meta.layers == layers
    assert meta.sites == sites and meta.model == name and meta.hidden_size == 32
    assert meta.labels.tolist() == y.tolist()
    assert meta.valid.tolist() == (pos >= 0).tolist()
    assert meta.valid[:, TOKENS.index("exact_answer_first")].any()

    for site, (row, seq) in itertools.product(sites, enumerate(fitted)):
        key = (name, site, ids[row])
        if key not in _REFERENCES:
            _REFERENCES[key] = _reference_states(model, seq, site)
    for site, layer in itertools.product(sites, layers):
        block = read_layer(out, site, layer)
        assert block.shape == (len(ids), len(TOKENS), 32) and block.dtype == np.float16
        for row in range(len(ids)):
            ref = _REFERENCES[(name, site, ids[row])][layer]
            for p, at in enumerate(pos[row]):
                got = block[row, p].astype(np.float32)
                if at < 0:
                    assert not got.any(), (ids[row], TOKENS[p])
                    continue
                want = ref[at]
                scale = float(np.abs(want).max())
                np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * max(scale, 1e-3),
                                           err_msg=f"{name} {site} layer {layer} {ids[row]} {TOKENS[p]}")


def _ptrue_prompt_ids(tok, question: str, answer: str, order: str, cut: int) -> tuple[str, list[int]]:
    """The chat P(True) prompt (text, ids) with the first ``cut`` question tokens dropped."""
    kept = tok.decode(_tokens(tok, question)[cut:]).lstrip() if cut else question
    text = p_true_prompt(tok, kept, answer, order, "chat")
    return text, encode_prompt(tok, text, "chat")


@torch.no_grad()
def _ptrue_reference(model, tok, text: str, ids: list[int], order: str) -> float:
    """log P(True) - log P(False) from one unbatched forward of the prompt."""
    a_id = _tokens(tok, text + "A")[-1]
    b_id = _tokens(tok, text + "B")[-1]
    logits = model(torch.tensor([ids])).logits[0, -1]
    return (1 if order == "ab" else -1) * float(logits[a_id] - logits[b_id])


def test_p_true_scores_cut_prompts(layout, stages):
    model, tok = layout[2], layout[3]
    generations = stages["generations"]
    wanted = {g["id"]: ("test" if i % 2 else "train") for i, g in enumerate(generations)}
    rows = score_shard(model, tok, generations, wanted, 2, CONTEXT)
    assert [r["id"] for r in rows] == [g["id"] for g in generations]
    by_id = {g["id"]: g for g in generations}
    for row in rows:
        g = by_id[row["id"]]
        assert row["split"] == wanted[row["id"]]
        if row["id"] in LONG_QUESTIONS:
            one = r"\d+ question tokens cut from the start"
            assert re.fullmatch(rf"{one}(; {one})?", row["prompt_cut"]), row["prompt_cut"]
            candidates = [int(n) for n in re.findall(r"(\d+) question tokens cut", row["prompt_cut"])]
        else:
            assert row["prompt_cut"] == ""
            candidates = [0]
        for order in ("ab", "ba"):
            value = row[f"logodds_true_{order}"]
            assert np.isfinite(value)
            # The note names the cut: the prompt with that many question tokens dropped fits, one fewer
            # does not, and the log-odds are those of a plain forward of it.
            matches = []
            for n in candidates:
                text, ids = _ptrue_prompt_ids(tok, g["question"], g["text"], order, n)
                if len(ids) > CONTEXT or (n and len(_ptrue_prompt_ids(tok, g["question"], g["text"], order,
                                                                      n - 1)[1]) <= CONTEXT):
                    continue
                matches.append(_ptrue_reference(model, tok, text, ids, order))
            assert any(value == pytest.approx(m, abs=1e-4) for m in matches), (row["id"], order, value, matches)


def test_p_true_cuts_the_answer_last_and_skips_what_cannot_fit(layout):
    model, tok = layout[2], layout[3]
    items = [("What is the capital of France?", OTHER_ANSWER), ("", ""), ("Q?", "Paris")]
    odds, notes = p_true_log_odds(model, tok, items, "chat", 2, CONTEXT)
    for order in ("ab", "ba"):
        assert np.isfinite(odds[order]).all()
    n_question = len(_tokens(tok, items[0][0]))
    match = re.fullmatch(rf"{n_question} question tokens cut from the start; "
                         r"(\d+) answer tokens cut from the start", notes[0])
    assert match, notes[0]
    assert notes[1:] == ["", ""]
    answer_ids = _tokens(tok, items[0][1])
    kept = tok.decode(answer_ids[int(match.group(1)):]).lstrip()
    for order in ("ab", "ba"):
        text = p_true_prompt(tok, "", kept, order, "chat")
        ids = encode_prompt(tok, text, "chat")
        assert len(ids) <= CONTEXT
        assert odds[order][0] == pytest.approx(_ptrue_reference(model, tok, text, ids, order), abs=1e-4)
    for i in (1, 2):
        for order in ("ab", "ba"):
            text, ids = _ptrue_prompt_ids(tok, *items[i], order, 0)
            assert odds[order][i] == pytest.approx(_ptrue_reference(model, tok, text, ids, order), abs=1e-4)

    odds, notes = p_true_log_odds(model, tok, items, "chat", 2, 5)
    for order in ("ab", "ba"):
        assert np.isnan(odds[order]).all()
    assert all(note.startswith("skipped") and "5 tokens the context leaves" in note for note in notes)


def _whole_character_cuts(tok, text: str) -> list[int]:
    """Token counts whose cut leaves ``text`` starting with a whole character (no U+FFFD)."""
    parts = _tokens(tok, text)
    return [n for n in range(1, len(parts) + 1) if not tok.decode(parts[n:]).startswith("\ufffd")]


def _fewest_cut(render, text: str, tok, room: int) -> int:
    """The fewest leading tokens of ``text`` to drop, at a whole character, so that ``render`` fits: every
    count tried in turn."""
    parts = _tokens(tok, text)
    return next(n for n in _whole_character_cuts(tok, text) if len(render(tok.decode(parts[n:]).lstrip())) <= room)


@pytest.mark.parametrize("answer", ["RomRom", "\nRomRomRomRomRomRomRom", "Rom" * 13])
def test_fit_fields_cuts_the_fewest_tokens_at_a_whole_character(tiny_tokenizer, answer):
    """Against a linear search: the cut prompt fits, no smaller cut does, and the kept question starts
    with a character of the question (a cut inside a multi-byte character would decode to U+FFFD)."""
    from truthmap.context import fit_fields

    tok = tiny_tokenizer
    question = LONG_QUESTIONS["long_2"]

    def render(question, answer=answer):
        return encode_prompt(tok, p_true_prompt(tok, question, answer, "ab", "chat"), "chat")

    fit = fit_fields(render, {"question": question, "answer": answer}, ["question", "answer"], tok, CONTEXT)
    n = fit.cut["question"]
    assert fit.cut["answer"] == 0 and len(fit.ids) <= CONTEXT
    kept = tok.decode(_tokens(tok, question)[n:]).lstrip()
    assert fit.ids == render(kept) and "\ufffd" not in kept and question.endswith(kept)
    assert n == _fewest_cut(render, question, tok, CONTEXT)


# --------------------------------------------------------------------------- every site, computed by hand

SITES = ["residual", "mlp_input", "mlp_output", "mlp_down_input", "attention_output"]


def _by_hand(name: str, block, h_in: torch.Tensor, attention: torch.Tensor) -> dict[str, torch.Tensor]:
    """One block's sites from its input ``h_in`` and its attention output, written out per layout:
    (mlp_input, mlp_down_input, mlp_output, block output)."""
    if name == "llama":
        mlp_in = block.post_attention_layernorm(h_in + attention)
        down_in = block.mlp.act_fn(block.mlp.gate_proj(mlp_in)) * block.mlp.up_proj(mlp_in)
        mlp_out = block.mlp.down_proj(down_in)
    elif name == "gpt2":
        mlp_in = block.ln_2(h_in + attention)
        down_in = block.mlp.act(block.mlp.c_fc(mlp_in))
        mlp_out = block.mlp.c_proj(down_in)
    else:  # GPT-NeoX: attention and MLP both read the block's input (parallel residual)
        assert block.use_parallel_residual
        mlp_in = block.post_attention_layernorm(h_in)
        down_in = block.mlp.act(block.mlp.dense_h_to_4h(mlp_in))
        mlp_out = block.mlp.dense_4h_to_h(down_in)
    return {"mlp_input": mlp_in, "mlp_down_input": down_in, "mlp_output": mlp_out,
            "residual": h_in + attention + mlp_out}


@torch.no_grad()
def test_every_site_is_the_block_computed_by_hand(layout, stages, tmp_path):
    """All five sites of layers 0 and 1, extracted in batches, against each block written out by hand
    from the unbatched forward's hidden states: the block's input and output anchor the chain
    attention_output -> mlp_input -> mlp_down_input -> mlp_output -> residual."""
    name, _, model, tok, info, _ = layout
    labels = [label.to_dict() for label in stages["labels"]]
    gens = stages["generations"]
    ids, seqs, positions, y = shard_inputs(gens, [x for x in labels if x["id"] != OTHER_ID],
                                           [r for r in stages["rows"] if r["id"] != OTHER_ID], TOKENS)
    layers = [0, 1]
    out = tmp_path / "sites.h5"  # every site from the same forward passes
    extract_to_h5(model, str(out), ids=ids, seqs=seqs, positions=positions, labels=y, tokens=TOKENS,
                  layers=layers, sites=SITES, model_name=info.name, pad_id=tok.pad_token_id, batch_tokens=200)
    assert read_meta(out).sites == SITES
    read = {site: {layer: read_layer(out, site, layer).astype(np.float32) for layer in layers} for site in SITES}
    assert read["mlp_down_input"][0].shape[2] == 64  # the intermediate size
    assert all(read[s][0].shape[2] == 32 for s in SITES if s != "mlp_down_input")

    blocks = decoder_layers(model)
    for row, seq in enumerate(seqs):
        states = model(torch.tensor([seq]), output_hidden_states=True).hidden_states
        for layer in layers:
            at = [int(p) for p in positions[row] if p >= 0]
            cols = [p for p in range(len(TOKENS)) if positions[row, p] >= 0]
            attention = torch.tensor(read["attention_output"][layer][row, cols])
            h_in = states[layer][0, at]
            manual = _by_hand(name, blocks[layer], h_in, attention)
            manual["attention_output"] = states[layer + 1][0, at] - h_in - manual["mlp_output"]
            for site in SITES:
                got = read[site][layer][row, cols]
                want = (states[layer + 1][0, at] if site == "residual" else manual[site]).float().numpy()
                scale = float(np.abs(want).max())
                np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2 * max(scale, 1e-3),
                                           err_msg=f"{name} {site} layer {layer} {ids[row]}")
            # and the block's own output from the captured parts alone
            np.testing.assert_allclose(manual["residual"].float().numpy(), states[layer + 1][0, at].float().numpy(),
                                       rtol=2e-2, atol=2e-2 * max(float(states[layer + 1].abs().max()), 1e-3))


def test_a_site_the_blocks_lack_names_the_model_and_the_site(layout):
    from truthmap.files import InputError

    name, _, model, _, _, _ = layout
    from truthmap.activations import PositionCapture

    class Bare(torch.nn.Module):
        pass

    with pytest.raises(InputError, match=rf"model tiny-{name}: its decoder blocks \(Bare\) have no attention "
                                         r"output projection .* 'activations.sites' asks for 'attention_output'") as err:
        from truthmap.models import site_module

        site_module(Bare(), "attention_output", f"tiny-{name}")
    assert "leave 'attention_output' out of 'activations.sites'" in err.value.hint
    capture = PositionCapture(model, [0], ["mlp_down_input", "residual"])
    assert capture.widths == {"mlp_down_input": 64, "residual": 32}
    capture.remove()


@torch.no_grad()
@pytest.mark.parametrize("sites", [["residual"], ["mlp_down_input", "attention_output"]])
def test_the_embeddings_row_is_the_first_blocks_input(layout, stages, tmp_path, sites):
    """Layer -1 holds the first block's input (hidden_states[0] of a plain forward) at the model's
    hidden size, whatever the site's width."""
    name, _, model, tok, info, _ = layout
    labels = [label.to_dict() for label in stages["labels"] if label.id != OTHER_ID]
    rows = [r for r in stages["rows"] if r["id"] != OTHER_ID]
    ids, seqs, positions, y = shard_inputs(stages["generations"], labels, rows, TOKENS)
    out = tmp_path / "emb.h5"
    extract_to_h5(model, str(out), ids=ids, seqs=seqs, positions=positions, labels=y, tokens=TOKENS,
                  layers=[-1, 1], sites=sites, model_name=info.name, pad_id=tok.pad_token_id, batch_tokens=200)
    emb, deeper = read_layer(out, sites[0], -1).astype(np.float32), read_layer(out, sites[0], 1)
    assert emb.shape[2] == 32 and deeper.shape[2] == (64 if sites[0] == "mlp_down_input" else 32)
    np.testing.assert_array_equal(read_layer(out, sites[-1], -1), emb.astype(np.float16))  # one row for all sites
    for row, seq in enumerate(seqs):
        first = model(torch.tensor([seq]), output_hidden_states=True).hidden_states[0][0].float().numpy()
        for p, at in enumerate(positions[row]):
            if at >= 0:
                np.testing.assert_allclose(emb[row, p], first[at], rtol=1e-2, atol=1e-3)
            else:
                assert not emb[row, p].any()
    only = tmp_path / "only.h5"  # the embeddings alone: the pass stops before the first block
    extract_to_h5(model, str(only), ids=ids, seqs=seqs, positions=positions, labels=y, tokens=TOKENS,
                  layers=[-1], sites=sites, model_name=info.name, pad_id=tok.pad_token_id, batch_tokens=200)
    np.testing.assert_array_equal(read_layer(only, sites[0], -1), read_layer(out, sites[0], -1))
