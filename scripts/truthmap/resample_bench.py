"""Resampling throughput: samples of many questions per decoding step, against one question's.

``python -m truthmap.resample_bench [--questions 4 --n 10]`` times, in one run and
on the same questions, seeds and settings as the ``resample_answers`` stage:

- ``across_questions``: what the stage does: batches of ``--batch-size`` rows, the
  n copies of each question's prompt side by side;
- ``shared_prompt``: the n samples of one question as one batch over its prompt,
  whose key/value cache is computed once (the stage until 2026-12-04);
- ``batched_no_sharing``: those batches, every copy of the prompt run whole;
- ``one_at_a_time``: each sample its own decoding of its own prompt (the reference
  code's loop: one generate call per sample).

Every mode draws sample k of a question from the same seeded generator, so they
decode the same answers up to floating-point differences between batch shapes
(the share of samples identical to the stage's is printed). Figures go to
``results/bench/resampling.tsv``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

MODES = ("across_questions", "shared_prompt", "batched_no_sharing", "one_at_a_time")
COLUMNS = ("mode", "questions", "samples", "seconds", "samples_per_s", "speedup_vs_one_at_a_time",
           "generated_tokens", "same_as_stage")


def decode_samples(model, tokenizer, prompts: Sequence[Sequence[int]], seeds: Sequence[Sequence[int]], mode: str,
                   max_new_tokens: int, temperature: float = 1.0, top_k: int = 50,
                   batch_size: int = 64) -> list[list[list[int]]]:
    """Per question, its samples' generated ids, decoded as ``mode`` says."""
    from truthmap.generation import Sampling, eos_ids, generate_batched

    eos = eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    if mode == "across_questions":
        n = len(seeds[0])
        gens = generate_batched(model, [p for p in prompts for _ in range(n)], pad_id=pad, stop_ids=set(), eos=eos,
                                max_new_tokens=max_new_tokens, batch_size=batch_size,
                                sampling=Sampling(temperature, top_k, [s for row in seeds for s in row]))
        return [[g.gen_ids for g in gens[i * n:(i + 1) * n]] for i in range(len(prompts))]
    out = []
    for prompt, question_seeds in zip(prompts, seeds, strict=True):
        def run(copies: int, batch_seeds: Sequence[int], share: bool) -> list[list[int]]:
            gens = generate_batched(model, [prompt] * copies, pad_id=pad, stop_ids=set(), eos=eos,
                                    max_new_tokens=max_new_tokens, batch_size=copies,
                                    sampling=Sampling(temperature, top_k, list(batch_seeds)), share_prefix=share)
            return [g.gen_ids for g in gens]

        if mode == "one_at_a_time":
            out.append([run(1, [s], True)[0] for s in question_seeds])
        else:
            out.append(run(len(question_seeds), question_seeds, mode == "shared_prompt"))
    return out


def bench_rows(model, tokenizer, prompts: Sequence[Sequence[int]], n: int, max_new_tokens: int,
               seed: int = 0, batch_size: int = 64) -> list[dict]:
    """One row per mode: wall time, samples/s, speed-up over one at a time, agreement with the stage."""
    from truthmap.resampling import sample_seed

    seeds = [[sample_seed(seed, f"bench{i}", k) for k in range(n)] for i in range(len(prompts))]
    decoded, seconds = {}, {}
    for mode in MODES:
        start = time.perf_counter()
        decoded[mode] = decode_samples(model, tokenizer, prompts, seeds, mode, max_new_tokens, batch_size=batch_size)
        seconds[mode] = time.perf_counter() - start
    total = n * len(prompts)
    flat = {mode: [ids for question in runs for ids in question] for mode, runs in decoded.items()}
    return [
        {
            "mode": mode,
            "questions": len(prompts),
            "samples": total,
            "seconds": round(seconds[mode], 3),
            "samples_per_s": round(total / seconds[mode], 2),
            "speedup_vs_one_at_a_time": round(seconds["one_at_a_time"] / seconds[mode], 2),
            "generated_tokens": sum(len(ids) for ids in flat[mode]),
            "same_as_stage": round(sum(a == b for a, b in zip(flat[mode], flat[MODES[0]])) / total, 3),
        }
        for mode in MODES
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m truthmap.resample_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default="resources/models/SmolLM2-135M-Instruct",
                        help="a prepared model folder (prepared from the embedded SmolLM2 when missing)")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="the generation stage's default")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per batch of across_questions "
                        "(the generation stage's default)")
    parser.add_argument("--out", default="results/bench")
    opts = parser.parse_args(sys.argv[1:] if argv is None else argv)

    from truthmap.bench import answer_prompts, bench_questions
    from truthmap.files import write_tsv
    from truthmap.models import ModelInfo, load_model, prepare_model

    model_dir = Path(opts.model_dir)
    if not (model_dir / "manifest.json").exists():
        print(f"preparing embedded:smollm2-135m-instruct into {model_dir} ...", flush=True)
        prepare_model(model_dir.name, "embedded:smollm2-135m-instruct", model_dir)
    info = ModelInfo.read(model_dir)
    model, tokenizer = load_model(model_dir)
    prompts = answer_prompts(tokenizer, bench_questions(opts.questions), info.has_chat_template)
    rows = bench_rows(model, tokenizer, prompts, opts.n, opts.max_new_tokens, batch_size=opts.batch_size)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    write_tsv(out / "resampling.tsv", rows, COLUMNS)
    print(f"resampling: {opts.questions} questions x n = {opts.n}, batches of {opts.batch_size} rows, "
          f"on {next(model.parameters()).device}")
    print(" | ".join(COLUMNS))
    for row in rows:
        print(" | ".join(str(row[c]) for c in COLUMNS))
    print(f"figures written to {out / 'resampling.tsv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
