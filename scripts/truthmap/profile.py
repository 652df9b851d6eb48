"""``make profile``: where each model stage's time goes, measured with torch's profiler.

Runs a small slice of each model stage through the stage's own entry point on
the embedded model (greedy answers, the exact-answer extractor, hidden-state
extraction, P(True)) under :mod:`torch.profiler`, and prints per stage:

- wall time, the FLOPs the work meter counted and the MFU against the matmul
  peak measured here in the same dtype;
- the share of wall time spent inside matrix products (``aten::mm``/``addmm``/
  ``bmm``/attention kernels), inside every other operator, and outside any
  operator (Python, transformers' bookkeeping, the decoding loop): the last is
  what no faster kernel can remove;
- the operators with the most self time.

Usage: ``python -m truthmap.profile [--questions 32] [--dtype auto] [--model-dir DIR]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product",
              "aten::scaled_dot_product", "aten::_flash_attention", "aten::_scaled_mm", "mkldnn")


def is_matmul(op: str) -> bool:
    return op.startswith(MATMUL_OPS)


def time_shares(self_us: dict[str, float], wall_s: float) -> dict[str, float]:
    """Shares of ``wall_s`` in matrix products, other operators and outside any operator.

    ``self_us``: self CPU time per operator name in microseconds, summed over the
    threads that ran it (intra-op threads count once: torch reports the
    launching thread's time).
    """
    matmul = sum(us for op, us in self_us.items() if is_matmul(op)) / 1e6
    other = sum(us for op, us in self_us.items() if not is_matmul(op)) / 1e6
    return {"matmul": matmul / wall_s, "other_ops": other / wall_s,
            "outside_ops": max(wall_s - matmul - other, 0.0) / wall_s}


def profile(work: Callable[[], object], model) -> dict:
    """Wall time, counted work and operator self times of one call of ``work``."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from truthmap.work import WorkMeter

    with WorkMeter(model) as counted, torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        with torch.inference_mode():
            work()
        wall = time.perf_counter() - start
    self_us: dict[str, float] = {}
    for event in prof.key_averages():
        self_us[event.key] = self_us.get(event.key, 0.0) + event.self_cpu_time_total
    return {"wall_s": wall, "flops": counted.flops, "tokens": counted.tokens,
            "padded_tokens": counted.padded_tokens, "calls": counted.calls, "self_us": self_us}


def stage_workloads(model, tokenizer, info, questions: Sequence[dict]) -> dict[str, Callable[[], object]]:
    """Each model stage's entry point on ``questions`` at the default settings."""
    from truthmap.activations import extract_to_h5
    from truthmap.bench import DEFAULT_TOKENS, extraction_workload
    from truthmap.generation import answer_questions, extract_short_answers
    from truthmap.ptrue import score_shard
    from truthmap.settings import ActivationSettings, DetectorSettings, ExactAnswerSettings, GenerationSettings

    gen, exact, acts, det = GenerationSettings(), ExactAnswerSettings(), ActivationSettings(), DetectorSettings()
    answers = answer_questions(questions, model, tokenizer, gen, info.has_chat_template, max_positions=info.max_positions)
    pairs = [(q["question"], a["text"]) for q, a in zip(questions, answers, strict=True)]
    load = extraction_workload(tokenizer, len(questions), info.has_chat_template)
    wanted = {a["id"]: "test" for a in answers}
    scratch = Path("results/profile/extract.h5")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return {
        "generate_answers": lambda: answer_questions(questions, model, tokenizer, gen, info.has_chat_template,
                                                     max_positions=info.max_positions),
        "label_answers (extractor)": lambda: extract_short_answers(
            pairs, model, tokenizer, exact.max_new_tokens, exact.batch_size, info.has_chat_template,
            max_positions=info.max_positions),
        "extract_activations": lambda: extract_to_h5(
            model, scratch, ids=load.ids, seqs=load.seqs, positions=load.positions, labels=load.labels,
            tokens=list(DEFAULT_TOKENS), layers=list(range(info.num_layers)), sites=acts.sites, model_name=info.name,
            pad_id=pad, batch_tokens=acts.batch_tokens, share_prefix=acts.share_prefix),
        "score_p_true": lambda: score_shard(model, tokenizer, answers, wanted, det.batch_size, info.max_positions),
    }


def report(name: str, result: dict, peak_gflops: float, top: int, say) -> None:
    shares = time_shares(result["self_us"], result["wall_s"])
    mfu = result["flops"] / (result["wall_s"] * peak_gflops * 1e9)
    pad = 1 - result["tokens"] / result["padded_tokens"] if result["padded_tokens"] else 0.0
    say(f"\n{name}: {result['wall_s']:.1f} s, {result['flops'] / 1e9:.0f} GFLOP in {result['calls']} forward calls "
        f"({result['tokens']} tokens, {pad:.0%} padding), MFU {mfu:.1%}")
    say(f"   time in matrix products {shares['matmul']:.0%}, other operators {shares['other_ops']:.0%}, "
        f"outside any operator {shares['outside_ops']:.0%}")
    ranked = sorted(result["self_us"].items(), key=lambda kv: -kv[1])[:top]
    for op, us in ranked:
        say(f"   {op:<40}{us / 1e6:8.2f} s  {us / 1e6 / result['wall_s']:5.0%}")


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from truthmap.bench import _default_model_dir, bench_questions
    from truthmap.flops import matmul_peak_gflops
    from truthmap.models import ModelInfo, load_model

    parser = argparse.ArgumentParser(prog="python -m truthmap.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None, help="a prepared model folder (default: the pipeline's SmolLM2)")
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--top", type=int, default=6, help="operators listed per stage")
    opts = parser.parse_args(argv)
    model_dir = Path(opts.model_dir or _default_model_dir())
    info = ModelInfo.read(model_dir)
    model, tokenizer = load_model(model_dir, dtype=opts.dtype)
    param = next(model.parameters())
    peak = matmul_peak_gflops(param.device, param.dtype)
    print(f"{info.name} in {param.dtype} on {param.device}, {torch.get_num_threads()} threads; "
          f"matmul peak {peak:.0f} GFLOP/s; {opts.questions} questions per stage")
    for name, work in stage_workloads(model, tokenizer, info, bench_questions(opts.questions)).items():
        report(name, profile(work, model), peak, opts.top, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
