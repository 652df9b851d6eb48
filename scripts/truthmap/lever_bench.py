"""Each speed lever of the model stages, measured A/B in one process on the same questions.

    PYTHONPATH=scripts .venv/bin/python -m truthmap.lever_bench [--questions 96] [--repeats 3] [--only TEXT]

A lever is kept in the pipeline only if it pays, and these machines are noisy, so
both sides of a lever run here, alternately, on the same inputs and the same
model (median of ``--repeats``); a figure from another run is no baseline. Each
row says what the lever changes in the outputs:

- decoding: a stopped sequence leaves its batch (vs staying until all stopped);
- exact-answer extraction: the few-shot prefix's KV cache held once for a batch (vs repeated
  over its rows), in the dtype ``auto`` picks;
- exact-answer extraction: an answer's four sampled retries side by side in one call, their
  prompt run once (vs a round of calls per try, each prompt run again);
- P(True): the two option orders share their stem's KV cache (vs two whole prompts);
- bfloat16 vs float32 for generation, extraction and P(True) (auto picks bfloat16
  on a CPU with AVX-512 BF16 or AMX), and a bfloat16 model's LM head in bfloat16 vs
  float32 (the pipeline's choice);
- the generation batch size, in the dtype ``auto`` picks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Lever:
    """One A/B measurement: median seconds of each side and what the outputs share."""

    name: str
    a: str
    b: str
    a_s: float
    b_s: float
    agreement: str

    @property
    def speedup(self) -> float:
        return self.a_s / self.b_s


def alternate(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float, object, object]:
    """Median wall seconds of ``a`` and ``b`` run alternately (after one untimed warm-up of each),
    and their last outputs."""
    a(), b()
    times: dict[str, list[float]] = {"a": [], "b": []}
    outs = {}
    for _ in range(repeats):
        for key, fn in (("a", a), ("b", b)):
            start = time.perf_counter()
            outs[key] = fn()
            times[key].append(time.perf_counter() - start)
    return statistics.median(times["a"]), statistics.median(times["b"]), outs["a"], outs["b"]


def same_answers(a: Sequence, b: Sequence) -> str:
    """How many continuations are token for token the same."""
    same = sum(x.gen_ids == y.gen_ids for x, y in zip(a, b, strict=True))
    return f"{same} of {len(a)} answers identical"


def log_odds_gap(a: dict, b: dict) -> str:
    """The largest difference of P(True) log-odds between two runs, and their rank correlation."""
    from scipy.stats import spearmanr

    x = np.concatenate([a["ab"], a["ba"]])
    y = np.concatenate([b["ab"], b["ba"]])
    return f"log-odds max |diff| {np.nanmax(np.abs(x - y)):.3g}, Spearman {spearmanr(x, y).statistic:.4f}"


def measure(model_dir: str, n: int, repeats: int, gen_batch: int, say: Callable[[str], None],
            scratch: Path = Path("results/bench/levers.h5"), only: str = "") -> list[Lever]:
    """Every lever on ``n`` built-in questions of the prepared model at ``model_dir`` (extraction
    writes to ``scratch``, removed after); with ``only``, the levers whose name holds it."""
    import torch

    from truthmap.activations import extract_to_h5
    from truthmap.bench import DEFAULT_TOKENS, answer_prompts, bench_questions, extraction_workload
    from truthmap.generation import Sampling, answer_stops, generate_batched
    from truthmap.models import ModelInfo, dtype_name, load_model, load_tokenizer, pick_device, pick_dtype
    from truthmap.ptrue import p_true_log_odds

    info = ModelInfo.read(model_dir)
    models = {name: load_model(model_dir, dtype=name)[0] for name in ("float32", "bfloat16")}
    models["bfloat16 head"] = load_model(model_dir, dtype="bfloat16", float32_head=False)[0]
    tokenizer = load_tokenizer(model_dir)
    auto = dtype_name(pick_dtype("auto", pick_device("auto")))
    style = "chat" if info.has_chat_template else "plain"
    questions = bench_questions(n)
    prompts = answer_prompts(tokenizer, questions, info.has_chat_template)
    eos, stops, pad = answer_stops(models["float32"], tokenizer, style)

    def decode(dtype: str, batch: int = gen_batch, compact: bool = True) -> Callable[[], list]:
        return lambda: generate_batched(models[dtype], prompts, pad_id=pad, stop_ids=stops, eos=eos,
                                        max_new_tokens=32, batch_size=batch, compact=compact)

    answers = decode("float32")()
    items = [(q["question"], tokenizer.decode(g.gen_ids, skip_special_tokens=True))
             for q, g in zip(questions, answers, strict=True)]

    def p_true(dtype: str, share_stem: bool = True) -> Callable[[], dict]:
        return lambda: p_true_log_odds(models[dtype], tokenizer, items, style, 32, info.max_positions,
                                       share_stem=share_stem)[0]

    from truthmap.generation import eos_ids, newline_ids
    from truthmap.prompts import extraction_prompt_ids

    extraction_prompts = [extraction_prompt_ids(tokenizer, q, a, style, None).ids for q, a in items]
    extractor_eos = eos_ids(models[auto], tokenizer)
    extractor = {"pad_id": pad, "stop_ids": newline_ids(tokenizer) - extractor_eos, "eos": extractor_eos,
                 "max_new_tokens": 16}  # as extract_short_answers decodes

    def extract_answers(prefix_once: bool) -> Callable[[], list]:
        return lambda: generate_batched(models[auto], extraction_prompts, batch_size=32, prefix_once=prefix_once,
                                        **extractor)

    tries = 4  # the default's sampled tries after the greedy one

    def retries(at_once: bool) -> Callable[[], list]:
        """Every prompt's sampled tries: a round per try, or all side by side in one call, each
        prompt run once for its tries (each try seeded alike either way)."""
        seeds = [[1000 * i + t for t in range(tries)] for i in range(len(extraction_prompts))]

        def run(prompts: list, plan: list) -> list:
            return generate_batched(models[auto], prompts, batch_size=64, sampling=Sampling(1.0, 50, plan), **extractor)

        if at_once:
            return lambda: run([p for p in extraction_prompts for _ in range(tries)], [s for row in seeds for s in row])
        return lambda: [g for rnd in zip(*(run(extraction_prompts, [row[t] for row in seeds]) for t in range(tries)))
                        for g in rnd]

    reference = p_true("float32")()
    work = extraction_workload(tokenizer, n, info.has_chat_template)
    scratch.parent.mkdir(parents=True, exist_ok=True)

    def extract(dtype: str) -> Callable[[], None]:
        return lambda: extract_to_h5(
            models[dtype], str(scratch), ids=work.ids, seqs=work.seqs, positions=work.positions, labels=work.labels,
            tokens=list(DEFAULT_TOKENS), layers=list(range(info.num_layers)), sites=["residual"],
            model_name=info.name, pad_id=pad, batch_tokens=2048)

    plan = [
        ("decoding: stopped rows leave the batch", "stay", "leave", decode("float32", compact=False),
         decode("float32"), same_answers),
        (f"extraction: few-shot prefix held once ({auto})", "repeated", "held once", extract_answers(False),
         extract_answers(True), same_answers),
        (f"extraction: {tries} sampled tries at once ({auto})", "a round each", "at once", retries(False),
         retries(True), same_answers),
        ("P(True): orders share their stem", "2 prompts", "shared stem", p_true("float32", False), p_true("float32"),
         log_odds_gap),
        ("generation dtype", "float32", "bfloat16", decode("float32"), decode("bfloat16"), same_answers),
        ("extraction dtype", "float32", "bfloat16", extract("float32"), extract("bfloat16"),
         lambda a, b: "hidden states differ by the dtype's rounding"),
        ("P(True) dtype", "float32", "bfloat16", p_true("float32"), p_true("bfloat16"), log_odds_gap),
        ("LM head of a bfloat16 model", "bfloat16", "float32", p_true("bfloat16 head"), p_true("bfloat16"),
         lambda a, b: f"P(True) vs float32 model: {log_odds_gap(a, reference)} / {log_odds_gap(b, reference)}"),
        (f"generation batch ({auto})", str(gen_batch), str(2 * gen_batch), decode(auto),
         decode(auto, batch=2 * gen_batch), same_answers),
    ]
    levers = []
    for name, a_name, b_name, a, b, agree in [step for step in plan if only in step[0]]:
        a_s, b_s, a_out, b_out = alternate(a, b, repeats)
        lever = Lever(name, a_name, b_name, a_s, b_s, agree(a_out, b_out))
        say(format_row(lever))
        levers.append(lever)
    scratch.unlink(missing_ok=True)
    return levers


def format_row(lever: Lever) -> str:
    return (f"{lever.name:<40}{lever.a:>12}{lever.a_s:>9.2f}{lever.b:>13}{lever.b_s:>9.2f}"
            f"{lever.speedup:>8.2f}x  {lever.agreement}")


def header() -> str:
    return f"{'lever':<40}{'A':>12}{'A s':>9}{'B':>13}{'B s':>9}{'speedup':>9}  outputs"


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from truthmap.bench import _default_model_dir

    parser = argparse.ArgumentParser(prog="python -m truthmap.lever_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None, help="a prepared model folder (default: the pipeline's)")
    parser.add_argument("--questions", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gen-batch", type=int, default=32)
    parser.add_argument("--out", default="results/bench/levers.json")
    parser.add_argument("--only", default="", help="the levers whose name holds this text, e.g. 'tries'")
    opts = parser.parse_args(argv)
    model_dir = str(opts.model_dir or _default_model_dir())
    print(f"{opts.questions} questions, median of {opts.repeats}, {torch.get_num_threads()} threads, {model_dir}")
    print(header(), flush=True)
    levers = measure(model_dir, opts.questions, opts.repeats, opts.gen_batch, lambda line: print(line, flush=True),
                     only=opts.only)
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps([{**asdict(x), "speedup": x.speedup} for x in levers], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
