"""Batched decoding against transformers' own greedy generate and a full forward; seeded sampling."""

from __future__ import annotations

import pytest
import torch

from truthmap.settings import GenerationSettings
from truthmap.generation import (
    Sampling,
    answer_questions,
    branch_logits,
    distinct_rows,
    eos_ids,
    generate_batched,
    length_batches,
    newline_ids,
    sample_tokens,
)

PROMPTS = ["The capital of France is", "17 + 25 =", "Zürich", "I think it is Rome or"]


def _ids(tokenizer, texts):
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _hf_greedy(model, tok, prompt: list[int], n: int) -> list[int]:
    """transformers' own greedy continuation of one unpadded prompt (no EOS stop)."""
    out = model.generate(
        torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None,
    )
    return out[0, len(prompt):].tolist()


def test_length_batches_cover_every_index_once():
    batches = length_batches([5, 1, 9, 3, 3, 7], 4)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(6))
    assert batches[0] == [2, 5, 0, 3]  # longest first, ties by index


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_matches_transformers_greedy(tiny_model, batch_size):
    model, tok = tiny_model
    prompts = _ids(tok, PROMPTS)
    ours = generate_batched(
        model, prompts, pad_id=tok.pad_token_id, stop_ids=set(), eos=set(), max_new_tokens=6,
        batch_size=batch_size,
    )
    for prompt, gen in zip(prompts, ours):
        assert gen.gen_ids == _hf_greedy(model, tok, prompt, 6)
        assert gen.finish_reason == "length"


def test_logprobs_and_logits_match_a_full_forward(tiny_model):
    model, tok = tiny_model
    prompts = _ids(tok, PROMPTS)
    (gen,) = generate_batched(
        model, prompts[:1], pad_id=tok.pad_token_id, stop_ids=set(), eos=set(), max_new_tokens=5,
        batch_size=1,
    )
    seq = torch.tensor([prompts[0] + gen.gen_ids])
    with torch.no_grad():
        logits = model(seq).logits[0, len(prompts[0]) - 1 : -1]
    chosen = torch.tensor(gen.gen_ids)
    assert torch.allclose(logits.gather(-1, chosen[:, None])[:, 0], torch.tensor(gen.logits), atol=1e-4)
    logp = torch.log_softmax(logits, -1).gather(-1, chosen[:, None])[:, 0]
    assert torch.allclose(logp, torch.tensor(gen.logprobs), atol=1e-4)


def test_stops_at_eos_and_at_stop_ids(tiny_model):
    model, tok = tiny_model
    prompts = _ids(tok, PROMPTS)
    (free,) = generate_batched(model, prompts[:1], pad_id=0, stop_ids=set(), eos=set(), max_new_tokens=6, batch_size=1)
    second = free.gen_ids[1]
    (eos_run,) = generate_batched(model, prompts[:1], pad_id=0, stop_ids=set(), eos={second}, max_new_tokens=6,
                                 batch_size=1)
    assert eos_run.gen_ids == free.gen_ids[:2] and eos_run.finish_reason == "eos"
    (stop_run,) = generate_batched(model, prompts[:1], pad_id=0, stop_ids={second}, eos=set(), max_new_tokens=6,
                                  batch_size=1)
    assert stop_run.gen_ids == free.gen_ids[:2] and stop_run.finish_reason == "stop"


@pytest.mark.parametrize("sampling", [False, True])
def test_rows_that_stop_early_leave_the_batch_without_changing_the_others(tiny_model, sampling):
    """Rows stop at different steps (stop ids taken from their free continuations); decoded
    together, every row's tokens, log-probabilities and logits are those it gets alone."""
    model, tok = tiny_model
    prompts = _ids(tok, PROMPTS)
    plan = Sampling(temperature=1.0, top_k=5, seeds=[11, 12, 13, 14]) if sampling else None
    free = generate_batched(model, prompts, pad_id=0, stop_ids=set(), eos=set(), max_new_tokens=8, batch_size=4,
                            sampling=plan)
    stops = {free[0].gen_ids[1], free[2].gen_ids[4]}
    together = generate_batched(model, prompts, pad_id=0, stop_ids=stops, eos=set(), max_new_tokens=8,
                                batch_size=4, sampling=plan)
    assert len({len(g.gen_ids) for g in together}) > 1  # rows really stopped at different steps
    kept = generate_batched(model, prompts, pad_id=0, stop_ids=stops, eos=set(), max_new_tokens=8, batch_size=4,
                            sampling=plan, compact=False)  # stopped rows stay in the batch
    assert [g.gen_ids for g in kept] == [g.gen_ids for g in together]
    for i, prompt in enumerate(prompts):
        alone_plan = Sampling(1.0, 5, [plan.seeds[i]]) if sampling else None
        (alone,) = generate_batched(model, [prompt], pad_id=0, stop_ids=stops, eos=set(), max_new_tokens=8,
                                    batch_size=1, sampling=alone_plan)
        assert together[i].gen_ids == alone.gen_ids and together[i].finish_reason == alone.finish_reason
        assert together[i].logprobs == pytest.approx(alone.logprobs, abs=1e-4)
        assert together[i].logits == pytest.approx(alone.logits, abs=1e-4)


def test_eos_and_newline_ids(tiny_model):
    model, tok = tiny_model
    assert tok.eos_token_id in eos_ids(model, tok)
    newlines = newline_ids(tok)
    assert newlines and all("\n" in tok.decode([i]) for i in newlines)


def test_answer_questions_records(tiny_model):
    model, tok = tiny_model
    questions = [{"id": f"q{i}", "question": q, "aliases": ["x"], "meta": {"domain": "d"}} for i, q in enumerate(PROMPTS)]
    records = answer_questions(questions, model, tok, GenerationSettings(max_new_tokens=4, batch_size=2), True)
    assert [r["id"] for r in records] == ["q0", "q1", "q2", "q3"]
    for q, r in zip(questions, records):
        assert r["prompt_style"] == "chat"
        assert r["dtype"] == "float32"  # the tiny model's, as loaded
        assert q["question"] in r["prompt"]
        assert r["prompt"].endswith("<s>assistant\n")  # the generation prompt of the chat template
        assert r["prompt_ids"] == tok(r["prompt"], add_special_tokens=False)["input_ids"]
        assert len(r["gen_ids"]) == len(r["logprobs"]) == len(r["logits"]) <= 4
        assert r["text"] == tok.decode(r["gen_ids"], skip_special_tokens=True)
    plain = answer_questions(questions[:1], model, tok, GenerationSettings(prompt_style="plain", max_new_tokens=4), True)
    assert plain[0]["prompt"] == f"Q: {PROMPTS[0]}\nA:"


def test_shared_prefix_len():
    from truthmap.generation import shared_prefix_len

    assert shared_prefix_len([[1] * 10 + [2], [1] * 10 + [3, 4]]) == 10
    assert shared_prefix_len([[1] * 10, [1] * 10]) == 9  # each keeps one own token
    assert shared_prefix_len([[1, 2, 3], [1, 2, 4]]) == 0  # too short to be worth it


def test_shared_prefix_decoding_matches_transformers_greedy(tiny_model):
    model, tok = tiny_model
    prefix = "Answer the question concisely. The capital of France is Paris. "
    prompts = _ids(tok, [prefix + p for p in PROMPTS])
    ours = generate_batched(model, prompts, pad_id=tok.pad_token_id, stop_ids=set(), eos=set(),
                           max_new_tokens=6, batch_size=4)
    for prompt, gen in zip(prompts, ours):
        assert gen.gen_ids == _hf_greedy(model, tok, prompt, 6)


def test_decoding_without_sharing_the_prefix_gives_the_same_tokens(tiny_model):
    model, tok = tiny_model
    prefix = "Answer the question concisely. The capital of France is Paris. "
    prompts = _ids(tok, [prefix + p for p in PROMPTS])
    seeds = [5, 6, 7, 8]
    runs = [[g.gen_ids for g in generate_batched(
        model, prompts, pad_id=tok.pad_token_id, stop_ids=set(), eos=set(), max_new_tokens=6, batch_size=4,
        sampling=Sampling(1.0, 20, seeds), share_prefix=share)] for share in (True, False)]
    assert runs[0] == runs[1]


def test_a_prompt_too_long_for_the_context_keeps_its_end_and_says_so(tiny_model):
    from truthmap.files import InputError
    from truthmap.generation import fit_context

    assert fit_context(list(range(10)), None, 4) == (list(range(10)), 0)
    assert fit_context(list(range(10)), 20, 4) == (list(range(10)), 0)
    assert fit_context(list(range(10)), 12, 4) == (list(range(2, 10)), 2)
    with pytest.raises(InputError, match="generation.max_new_tokens"):
        fit_context([1, 2], 4, 4)
    model, tok = tiny_model
    long_question = " ".join(["Zürich İstanbul São Tomé"] * 60) + " What is 17 + 25?"
    questions = [{"id": "long", "question": long_question, "aliases": ["42"]},
                 {"id": "short", "question": PROMPTS[0], "aliases": ["x"]}]
    records = answer_questions(questions, model, tok, GenerationSettings(max_new_tokens=4), True, max_positions=64)
    long, short = records
    assert long["prompt_tokens_cut"] > 0 and len(long["prompt_ids"]) == 60
    assert long["prompt_ids"][-5:] == tok(long["prompt"], add_special_tokens=False)["input_ids"][-5:]
    assert short["prompt_tokens_cut"] == 0


# --------------------------------------------------------------------------- seeded sampling


def _sampled(model, tok, prompts, seeds, batch_size, top_k=50, temperature=1.0):
    return [g.gen_ids for g in generate_batched(
        model, prompts, pad_id=tok.pad_token_id, stop_ids=set(), eos=set(), max_new_tokens=6,
        batch_size=batch_size, sampling=Sampling(temperature, top_k, seeds),
    )]


def test_sampling_draws_from_the_top_k_at_the_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -5.0]])
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_tokens(logits, [generator], temperature=0.5, top_k=3) for _ in range(4000)])
    expected = torch.softmax(torch.tensor([4.0, 2.0, 0.0]), -1)
    observed = torch.bincount(draws, minlength=5).float() / len(draws)
    assert observed[3:].sum() == 0  # never outside the top 3
    assert torch.allclose(observed[:3], expected, atol=0.02)


def test_top_p_keeps_the_fewest_likeliest_tokens_reaching_it():
    # probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps the first two (0.5 < 0.7 <= 0.8), renormalised
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_tokens(logits, [generator], 1.0, top_k=4, top_p=0.7) for _ in range(4000)])
    observed = torch.bincount(draws, minlength=4).float() / len(draws)
    assert observed[2:].sum() == 0
    assert torch.allclose(observed[:2], torch.tensor([0.625, 0.375]), atol=0.03)
    # a top_p below the likeliest token's probability still keeps it
    tiny = torch.cat([sample_tokens(logits, [generator], 1.0, top_k=4, top_p=0.1) for _ in range(50)])
    assert set(tiny.tolist()) == {0}
    # top_p 1.0 draws exactly what the top-k sampler drew before top_p existed (written out here)
    a, b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(200):
        values, ids = logits[0].topk(3)
        before = ids[torch.multinomial(torch.softmax(values / 0.8, -1), 1, generator=b)]
        assert int(sample_tokens(logits, [a], 0.8, 3, 1.0)) == int(before)


def test_sampling_with_top_1_is_greedy(tiny_model):
    model, tok = tiny_model
    prompts = _ids(tok, PROMPTS)
    greedy = [g.gen_ids for g in generate_batched(model, prompts, pad_id=tok.pad_token_id, stop_ids=set(),
                                                  eos=set(), max_new_tokens=6, batch_size=4)]
    assert _sampled(model, tok, prompts, [1, 2, 3, 4], batch_size=4, top_k=1) == greedy


def test_sampling_is_seeded_per_prompt_whatever_the_batches(tiny_model):
    model, tok = tiny_model
    prompts = _ids(tok, PROMPTS)
    seeds = [11, 22, 33, 44]
    together = _sampled(model, tok, prompts, seeds, batch_size=4)
    assert _sampled(model, tok, prompts, seeds, batch_size=4) == together  # reproducible
    assert _sampled(model, tok, prompts, seeds, batch_size=1) == together  # one at a time
    order = [2, 0, 3, 1]
    shuffled = _sampled(model, tok, [prompts[i] for i in order], [seeds[i] for i in order], batch_size=3)
    assert [shuffled[order.index(i)] for i in range(4)] == together  # other batch mates
    assert _sampled(model, tok, prompts, [s + 1 for s in seeds], batch_size=4) != together
    with pytest.raises(ValueError, match="3 seeds for 4 prompts"):
        _sampled(model, tok, prompts, seeds[:3], batch_size=4)


def test_distinct_rows():
    assert distinct_rows([[1, 2], [3], [1, 2], [3], [4]]) == ([0, 1, 4], [0, 1, 0, 1, 2])
    assert distinct_rows([[5]]) == ([0], [0])


def test_rows_that_share_a_prompt_run_it_once_and_sample_as_alone(tiny_model):
    """An answer's sampled tries (a question's resampled answers) are rows with one prompt: its
    forward runs once for them, and each row samples what it samples alone."""
    model, tok = tiny_model
    prompts = _ids(tok, PROMPTS[:2])
    rows = [prompts[0]] * 3 + [prompts[1]] * 2
    seeds = [11, 12, 13, 21, 22]
    fed = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: fed.append(kwargs["input_ids"].shape),
                                           with_kwargs=True)
    try:
        together = _sampled(model, tok, rows, seeds, batch_size=5)
    finally:
        hook.remove()
    assert fed[0][0] == 2 and fed[1][0] == 5  # the two prompts, then the five rows' first tokens
    assert len(set(map(tuple, together[:3]))) > 1  # the copies drew different tokens
    alone = [_sampled(model, tok, [row], [seed], batch_size=1)[0] for row, seed in zip(rows, seeds)]
    assert together == alone


def test_sampled_extraction_keeps_each_pairs_seed_when_a_prompt_is_skipped(tiny_model):
    from truthmap.generation import extract_short_answers

    model, tok = tiny_model
    pairs = [("Capital of France?", "It is Paris."), ("Capital?", "Rome " * 400), ("What is 17 + 25?", "42.")]
    seeds = [5, 6, 7]

    def replies(chosen):
        return extract_short_answers([pairs[i] for i in chosen], model, tok, 4, 2, True, max_positions=256,
                                     sampling=Sampling(1.0, 50, [seeds[i] for i in chosen]))

    all_three = replies([0, 1, 2])
    assert all_three[1][0] is None and "skipped" in all_three[1][1]  # too long even without demonstrations
    assert [all_three[0], all_three[2]] == replies([0, 2])


@pytest.mark.parametrize("batch_size", [1, 3])
def test_branch_logits_match_a_full_forward_of_each_branch(tiny_model, batch_size):
    """Stems of different lengths (one empty), k = 3 branches of different lengths, one item per
    batch or all together: each branch's next-token logits are those of its whole sequence."""
    model, tok = tiny_model
    stems = _ids(tok, ["Question: the capital of France? Answer", "17 + 25 ="]) + [[]]
    ends = _ids(tok, [" Paris (A", " Lyon, surely (A", " it is (B"])
    items = [[stem + end[: 1 + (j + i) % len(end)] for j, end in enumerate(ends)] for i, stem in enumerate(stems)]
    wanted = [5, 17, 40]
    got = branch_logits(model, items, wanted, pad_id=tok.pad_token_id, batch_size=batch_size)
    assert got.shape == (3, 3, 3)
    for i, seqs in enumerate(items):
        for j, seq in enumerate(seqs):
            with torch.no_grad():
                full = model(torch.tensor([seq])).logits[0, -1, wanted]
            assert torch.allclose(torch.from_numpy(got[i, j]), full, atol=1e-4), (i, j)
