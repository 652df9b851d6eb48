"""``make bench``: each heavy stage against the reference approach and the hardware limit.

Every figure comes from one run on one machine, so ratios compare like with
like (these machines are noisy; a figure from another run is no baseline):

1. extraction tokens/s of our extractor, of the reference approach (one example
   at a time, every hidden state of the full sequence, LM head included) and of a
   plain batched forward, against the roofline: the matrix-multiply peak
   measured here divided by the forward pass's FLOPs per token;
2. generation, batched vs one question at a time, both with our decoder;
3. the probe stage on a 30 x 12 grid: summed job wall time vs the probes' own
   work (fit, cross-validation, bootstrap), and the bytes each cell reads;
4. peak memory of extraction at two dataset sizes, and HDF5 bytes per example;
5. stage times of the last ``make run`` (from its Snakemake benchmark files).

Extraction and the probe jobs run in child processes (``python -m truthmap.bench
extract-job`` / ``probe-job``) so that each reports its own peak memory and pays
its own start-up, as a pipeline job does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from truthmap.flops import forward_flops_per_token, matmul_peak_gflops, sync as _sync

DEFAULT_TOKENS = ("last_q", "exact_answer_first", "exact_answer_last", "exact_answer_after_last",
                  "-8", "-7", "-6", "-5", "-4", "-3", "-2", "-1")


# ---------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """Fed sequences (prompt + answer ids) and the positions read from each."""

    ids: list[str]
    seqs: list[list[int]]
    positions: np.ndarray
    """(N, P) indices into each sequence."""
    labels: np.ndarray

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.seqs)


def bench_questions(n: int) -> list[dict]:
    """The first ``n`` built-in questions in a fixed shuffled order (every domain mixed)."""
    from truthmap.builtin import build_builtin

    records = build_builtin()
    order = np.random.default_rng(0).permutation(len(records))
    return [records[i] for i in order[: min(n, len(records))]]


def answer_prompts(tokenizer, questions: Sequence[dict], has_chat_template: bool) -> list[list[int]]:
    """Prompt ids exactly as the generation stage builds them (default settings)."""
    from truthmap.generation import answer_prompts as stage_prompts
    from truthmap.settings import GenerationSettings

    return stage_prompts(questions, tokenizer, GenerationSettings(), has_chat_template).ids


def extraction_workload(tokenizer, n: int, has_chat_template: bool, n_tokens: int = len(DEFAULT_TOKENS)) -> Workload:
    """``n`` built-in questions, each answered by a sentence that holds its gold answer.

    The positions mimic the default token grid: the last prompt token, the
    first/last/after-last token of the answer, and the last eight tokens.
    """
    questions = bench_questions(n)
    prompts = answer_prompts(tokenizer, questions, has_chat_template)
    seqs, positions = [], []
    for q, prompt in zip(questions, prompts, strict=True):
        answer = list(tokenizer(f"The answer is {q['aliases'][0]}.", add_special_tokens=False)["input_ids"])
        seq = prompt + answer
        start = len(prompt) + min(3, len(answer) - 1)
        picks = [len(prompt) - 1, start, len(seq) - 2, len(seq) - 1] + [len(seq) - k for k in range(8, 0, -1)]
        positions.append([min(max(p, 0), len(seq) - 1) for p in picks[:n_tokens]])
        seqs.append(seq)
    rng = np.random.default_rng(1)
    return Workload(
        ids=[q["id"] for q in questions], seqs=seqs,
        positions=np.asarray(positions, dtype=np.int64), labels=(rng.random(len(seqs)) < 0.35).astype(np.int8),
    )


# ---------------------------------------------------------------- extraction


def extract_reference(model, work: Workload) -> float:
    """The reference approach: one example at a time, the full model with every
    hidden state, the wanted positions copied out and kept in RAM. Seconds."""
    import torch

    device = next(model.parameters()).device
    kept = []
    start = time.perf_counter()
    with torch.inference_mode():
        for seq, pos in zip(work.seqs, work.positions, strict=True):
            out = model(input_ids=torch.tensor([seq], device=device), output_hidden_states=True)
            index = torch.as_tensor(pos, device=device)
            kept.append([h[0, index].float().cpu().numpy() for h in out.hidden_states[1:]])
    _sync(device)
    return time.perf_counter() - start


def extract_plain_batched(model, work: Workload, batch_size: int = 16) -> float:
    """A plain batched forward (right padding, every hidden state, LM head included). Seconds."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(work.seqs)), key=lambda i: len(work.seqs[i]))
    start = time.perf_counter()
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            batch = order[k : k + batch_size]
            width = max(len(work.seqs[i]) for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(work.seqs[i])] = torch.tensor(work.seqs[i])
                mask[row, : len(work.seqs[i])] = 1
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
            index = torch.as_tensor(work.positions[batch], device=device)
            rows = torch.arange(len(batch), device=device)[:, None]
            [h[rows, index].float().cpu().numpy() for h in out.hidden_states[1:]]
    _sync(device)
    return time.perf_counter() - start


def extract_job(model_dir: str, n: int, out_path: str, batch_tokens: int, device: str, dtype: str) -> dict:
    """Our extractor on ``n`` examples, every layer, into HDF5: timings and memory of this process."""
    import torch

    from truthmap.activations import extract_to_h5
    from truthmap.models import ModelInfo, load_model

    torch.set_num_threads(os.cpu_count() or 1)
    info = ModelInfo.read(model_dir)
    model, tokenizer = load_model(model_dir, device_map=device, dtype=dtype)
    work = extraction_workload(tokenizer, n, info.has_chat_template)
    rss_loaded = _peak_rss_mb()
    dev = next(model.parameters()).device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    batches = extract_to_h5(
        model, out_path, ids=work.ids, seqs=work.seqs, positions=work.positions, labels=work.labels,
        tokens=list(DEFAULT_TOKENS[: work.positions.shape[1]]), layers=list(range(info.num_layers)),
        sites=["residual"], model_name=info.name, pad_id=tokenizer.pad_token_id or 0, batch_tokens=batch_tokens,
    )
    _sync(dev)
    seconds = time.perf_counter() - start
    return {
        "examples": len(work.seqs), "tokens": work.tokens, "seconds": seconds, "tokens_per_s": work.tokens / seconds,
        "computed_tokens_per_s": computed_tokens(work.seqs, work.positions, batches) / seconds,
        "peak_rss_mb": _peak_rss_mb(), "rss_after_load_mb": rss_loaded,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "file_bytes": Path(out_path).stat().st_size,
        "min_bytes": len(work.seqs) * info.num_layers * work.positions.shape[1] * info.hidden_size * 2,
    }


def computed_tokens(seqs: Sequence[Sequence[int]], positions: np.ndarray, batches: Sequence[Sequence[int]]) -> int:
    """Tokens our extractor runs through the model in ``batches`` (example indices, as
    :func:`truthmap.activations.extract_to_h5` ran them): each batch's shared prefix counts once."""
    from truthmap.activations import prefix_to_share

    total = 0
    for batch in batches:
        batch = list(batch)
        shared = prefix_to_share([seqs[i] for i in batch], positions[batch])
        total += shared + sum(len(seqs[i]) - shared for i in batch)
    return total


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- generation


def time_generation(model, tokenizer, info, questions: Sequence[dict], batch_size: int,
                    max_new_tokens: int) -> tuple[float, int]:
    """(seconds, generated tokens) of the generation stage's own entry point at ``batch_size``."""
    from truthmap.generation import answer_questions
    from truthmap.settings import GenerationSettings

    cfg = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
    device = next(model.parameters()).device
    start = time.perf_counter()
    records = answer_questions(questions, model, tokenizer, cfg, info.has_chat_template,
                               max_positions=info.max_positions)
    _sync(device)
    return time.perf_counter() - start, sum(len(r["gen_ids"]) for r in records)


# ---------------------------------------------------------------- probes


def write_synthetic_shards(folder: Path, n: int, layers: int, tokens: Sequence[str], hidden: int,
                           shards: int, seed: int = 0) -> tuple[list[str], Path]:
    """Activation shards and a split table with a weak, layer-dependent label signal.

    Fitting cost depends on the data (solver iterations), so the classes are
    separable only in part, as in real runs (AUC 0.6-0.9).
    """
    from truthmap.files import write_tsv
    from truthmap.h5io import ActivationWriter, dataset_name
    from truthmap.probes import SPLIT_COLUMNS, split_table
    from truthmap.settings import SplitSettings

    rng = np.random.default_rng(seed)
    ids = [f"q{i:05d}" for i in range(n)]
    labels = (rng.random(n) < 0.35).astype(np.int8)
    direction = rng.standard_normal(hidden).astype(np.float32)
    direction /= np.linalg.norm(direction)
    parts = np.array_split(np.arange(n), shards)
    paths = []
    for s, rows in enumerate(parts):
        path = folder / f"shard{s}.h5"
        positions = np.tile(np.arange(len(tokens)), (len(rows), 1))
        with ActivationWriter(path, ids=[ids[i] for i in rows], labels=labels[rows], positions=positions,
                              tokens=tokens, layers=list(range(layers)), hidden_size=hidden,
                              widths={"residual": hidden}, model="synthetic") as writer:
            for layer in range(layers):
                block = rng.standard_normal((len(rows), len(tokens), hidden), dtype=np.float32)
                strength = 0.3 + 1.2 * np.sin(np.pi * (layer + 0.5) / layers)
                block += strength * (labels[rows, None, None] - 0.35) * direction
                writer.write(np.arange(len(rows)), {dataset_name("residual", layer): block})
        paths.append(str(path))
    # The split stage's own entry point, on label and position records that give every question
    # every token (the synthetic shards hold them all).
    label_rows = [{"id": q, "correct": not y, "exact_method": "text", "reason": ""} for q, y in zip(ids, labels)]
    position_rows = [{"id": q, **{t: "0" for t in tokens}} for q in ids]
    split_path = folder / "split.tsv"
    write_tsv(split_path, split_table(label_rows, position_rows, list(tokens), SplitSettings()), SPLIT_COLUMNS)
    return paths, split_path


def probe_job(split_path: str, shard_paths: Sequence[str], layer: int, out_dir: str, started: float) -> dict:
    """What the train_probes rule does for one layer (its entry point), with its time split into parts."""
    imported = time.time()
    from truthmap.files import read_tsv, write_json
    from truthmap.h5io import read_layer, read_meta
    from truthmap.probes import train_layer
    from truthmap.settings import ProbeSettings, SplitSettings

    after_import = time.time()
    tokens = read_meta(shard_paths[0]).tokens
    rows = read_tsv(split_path)
    read_before, before_layer = _bytes_read(), time.time()
    parts: dict[str, float] = {}
    results = train_layer(rows, list(shard_paths), layer, tokens, ProbeSettings(), timings=parts, split=SplitSettings())
    layer_read = _bytes_read() - read_before
    evaluate = parts["evaluate_s"]
    after_read = before_layer + parts["read_s"]
    for result in results:
        write_json(Path(out_dir) / f"layer{layer}_{result.token}.json", result.to_dict())
    done = time.time()
    read_before = _bytes_read()
    one_cell = read_layer(shard_paths[0], "residual", layer, 0)
    cell_read = _bytes_read() - read_before
    return {
        "layer": layer, "start_s": imported - started, "import_s": after_import - imported,
        "read_s": after_read - after_import, "evaluate_s": evaluate, "fit_s": sum(r.fit_seconds for r in results),
        "rest_s": done - after_read - evaluate, "layer_bytes_read": layer_read,
        "layer_bytes": int(parts["layer_bytes"]), "cells": len(tokens),
        "one_cell_bytes_read": cell_read, "one_cell_bytes": int(one_cell.nbytes),
    }


def _bytes_read() -> int:
    """Bytes this process has read through read() calls so far (page cache included)."""
    with open("/proc/self/io", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


def run_probe_stage(split_path: Path, shard_paths: Sequence[str], layers: int, out_dir: Path,
                    workers: int) -> tuple[list[dict], float]:
    """One child process per layer (as the pipeline runs them), ``workers`` at a time."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(layer: int) -> dict:
        started = time.time()
        report = _child(["probe-job", str(split_path), str(out_dir), str(layer), str(started), *shard_paths],
                        threads=1)
        report["wall_s"] = time.time() - started
        return report

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        reports = list(pool.map(one, range(layers)))
    return reports, time.perf_counter() - start


def _child(args: Sequence[str], threads: int | None = None) -> dict:
    scripts = str(Path(__file__).resolve().parent.parent)
    # Before the caller's path, not instead of it: packages it adds (a --target install) stay importable.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [scripts, os.environ.get("PYTHONPATH")])))
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-m", "truthmap.bench", *args], env=env, check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the whole benchmark


@dataclass(frozen=True)
class Sizes:
    """How much work each section does (``--quick`` shrinks all of it, for tests)."""

    extract_small: int = 96
    extract_large: int = 384
    reference: int = 96
    generate: int = 64
    generate_single: int = 32
    probe_examples: int = 2000
    probe_layers: int | None = None
    """None: the model's layer count."""


ON_GPU = Sizes(extract_small=1024, extract_large=4096, reference=256, generate=1024, generate_single=32)
"""A GPU finishes the CPU sizes in well under a second: more work, so timings mean something."""

QUICK = Sizes(extract_small=8, extract_large=24, reference=8, generate=8, generate_single=4,
              probe_examples=120, probe_layers=3)


def run(model_dir: str, out_dir: Path, sizes: Sizes, *, device: str = "auto", dtype: str = "auto",
        gen_batch: int = 32, batch_tokens: int = 2048, max_new_tokens: int = 32,
        stage_times_dir: Path | None = None, say=print) -> dict:
    """Run every section and return the figures (also printed, section by section, with ``say``)."""
    import torch

    from truthmap.models import ModelInfo, load_model, pick_device, pick_dtype

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    info = ModelInfo.read(model_dir)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    report: dict = {"model": info.name, "device": _device_name(dev), "dtype": str(dt).removeprefix("torch."),
                    "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
    say(f"truthmap bench: {info.name} ({info.num_layers} layers, hidden {info.hidden_size}) on "
        f"{report['device']}, {report['dtype']}, {report['threads']} threads, {report['date']}")
    peak = matmul_peak_gflops(dev, dt)
    jobs = {name: _child(["extract-job", model_dir, str(n), str(out_dir / f"{name}.h5"), str(batch_tokens),
                          device, dtype])
            for name, n in (("small", sizes.extract_small), ("large", sizes.extract_large))}
    model, tokenizer = load_model(model_dir, device_map=device, dtype=dtype)
    report["extraction"] = extraction_section(model, tokenizer, info, sizes, peak, jobs["large"], say)
    report["generation"] = generation_section(model, tokenizer, info, sizes, gen_batch, max_new_tokens, say)
    del model
    report["probes"] = probe_section(info, sizes, out_dir, say)
    report["memory"] = memory_section(jobs, say)
    report["stage_times"] = _stage_times(stage_times_dir, say)
    return report


def extraction_section(model, tokenizer, info, sizes: Sizes, peak: float, ours: dict, say) -> dict:
    """1. Ours (from the large extract job) vs the reference approach, a plain batched forward, the roofline."""
    work = extraction_workload(tokenizer, sizes.reference, info.has_chat_template)
    mean_len = work.tokens / len(work.seqs)
    reference_tps = work.tokens / extract_reference(model, work)
    plain_tps = work.tokens / extract_plain_batched(model, work)
    full = forward_flops_per_token(model.config, context=mean_len / 2)
    body = forward_flops_per_token(model.config, context=mean_len / 2, lm_head=False)
    roofline_tps = peak * 1e9 / full
    ours_tps, ours_computed = ours["tokens_per_s"], ours["computed_tokens_per_s"]
    e = {
        "matmul_peak_gflops": peak, "flops_per_token_full": full, "flops_per_token_ours": body,
        "mean_tokens_per_example": mean_len, "roofline_tokens_per_s": roofline_tps,
        "ours_tokens_per_s": ours_tps, "ours_computed_tokens_per_s": ours_computed,
        "reference_tokens_per_s": reference_tps, "plain_batched_tokens_per_s": plain_tps,
        "ours_vs_roofline": ours_tps / roofline_tps, "ours_computed_vs_roofline": ours_computed / roofline_tps,
        "ours_vs_reference": ours_tps / reference_tps, "ours_mfu": ours_computed * body / (peak * 1e9),
        "reference_mfu": reference_tps * full / (peak * 1e9),
    }
    say(f"\n1. Extraction (every layer, {work.positions.shape[1]} positions, mean {mean_len:.0f} tokens per example)")
    say(f"   matmul peak                  {peak:9.1f} GFLOP/s ({full / 1e6:.0f} MFLOP/token forward)")
    say(f"   roofline (peak / FLOPs)      {roofline_tps:9.0f} tokens/s")
    say(f"   ours (batched, hooks, HDF5)  {ours_tps:9.0f} tokens/s  = {e['ours_vs_roofline']:.0%} of roofline,"
        f" {e['ours_vs_reference']:.2f}x reference ({ours['examples']} examples)")
    say(f"     tokens run through layers  {ours_computed:9.0f} tokens/s  = {e['ours_computed_vs_roofline']:.0%} of"
        f" roofline, MFU {e['ours_mfu']:.0%} (a batch's shared prefix runs once)")
    say(f"   plain batched forward        {plain_tps:9.0f} tokens/s")
    say(f"   reference (one at a time)    {reference_tps:9.0f} tokens/s  MFU {e['reference_mfu']:.0%}"
        f" ({len(work.seqs)} examples)")
    return e


def generation_section(model, tokenizer, info, sizes: Sizes, gen_batch: int, max_new_tokens: int, say) -> dict:
    """2. Our greedy decoder batched vs one question at a time, on the same prompts."""
    prompts = bench_questions(sizes.generate)
    time_generation(model, tokenizer, info, prompts[:2], 2, 4)  # warm-up
    batched_s, batched_tokens = time_generation(model, tokenizer, info, prompts, gen_batch, max_new_tokens)
    single = prompts[: sizes.generate_single]
    single_s, single_tokens = time_generation(model, tokenizer, info, single, 1, max_new_tokens)
    prompt_len = float(np.mean([len(p) for p in answer_prompts(tokenizer, prompts, info.has_chat_template)]))
    g = {
        "questions": len(prompts), "batch_size": gen_batch, "max_new_tokens": max_new_tokens,
        "batched_s_per_question": batched_s / len(prompts), "batched_tokens_per_s": batched_tokens / batched_s,
        "single_questions": len(single), "single_s_per_question": single_s / len(single),
        "single_tokens_per_s": single_tokens / single_s,
        "speedup": (single_s / len(single)) / (batched_s / len(prompts)),
        "mean_prompt_tokens": prompt_len,
        "flops_per_generated_token": forward_flops_per_token(model.config, context=prompt_len + max_new_tokens / 2),
    }
    say(f"\n2. Generation (greedy, at most {max_new_tokens} new tokens)")
    say(f"   batched by {gen_batch:<3}  {g['batched_s_per_question']:7.3f} s/question "
        f"({g['batched_tokens_per_s']:.0f} generated tokens/s, {len(prompts)} questions)")
    say(f"   one at a time  {g['single_s_per_question']:7.3f} s/question "
        f"({g['single_tokens_per_s']:.0f} generated tokens/s, {len(single)} questions)")
    say(f"   speed-up       {g['speedup']:7.2f}x")
    return g


def probe_section(info, sizes: Sizes, out_dir: Path, say) -> dict:
    """3. The probe stage, one process per layer, against the probes' own work."""
    layers = sizes.probe_layers or info.num_layers
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        shards, split = write_synthetic_shards(Path(tmp), sizes.probe_examples, layers, DEFAULT_TOKENS,
                                               info.hidden_size, shards=4)
        jobs, stage_wall = run_probe_stage(split, shards, layers, Path(tmp) / "cells", workers=workers)
    work_s = sum(j["evaluate_s"] for j in jobs)
    job_s = sum(j["wall_s"] for j in jobs)
    cells = sum(j["cells"] for j in jobs)
    p = {
        "examples": sizes.probe_examples, "layers": layers, "cells": cells, "stage_wall_s": stage_wall,
        "job_seconds": job_s, "probe_work_s": work_s, "fit_s": sum(j["fit_s"] for j in jobs),
        "overhead": job_s / work_s - 1,
        "overhead_parts_s": {k: sum(j[k] for j in jobs) for k in ("start_s", "import_s", "read_s", "rest_s")},
        "bytes_read_per_cell": sum(j["layer_bytes_read"] for j in jobs) / cells,
        "cell_bytes": sum(j["layer_bytes"] for j in jobs) / cells,
        "one_cell_read_vs_size": jobs[0]["one_cell_bytes_read"] / jobs[0]["one_cell_bytes"],
    }
    parts = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in p["overhead_parts_s"].items())
    say(f"\n3. Probe stage ({layers} layers x {len(DEFAULT_TOKENS)} tokens, {sizes.probe_examples} synthetic "
        f"examples, one process per layer, {workers} at a time)")
    say(f"   stage wall {stage_wall:.1f} s; jobs summed {job_s:.1f} s; probe work (fit + CV + bootstrap) "
        f"{work_s:.1f} s, of which the reported fits {p['fit_s']:.1f} s")
    say(f"   overhead {p['overhead']:.0%} of the probe work ({parts})")
    say(f"   bytes read per cell {p['bytes_read_per_cell'] / 1e6:.2f} MB vs cell size {p['cell_bytes'] / 1e6:.2f} MB"
        f" ({p['bytes_read_per_cell'] / p['cell_bytes']:.2f}x); one cell read alone: "
        f"{p['one_cell_read_vs_size']:.2f}x its size")
    return p


def memory_section(jobs: dict[str, dict], say) -> dict:
    """4. Peak memory of the two extract jobs, and their files against the float16 minimum."""
    say("\n4. Extraction memory and HDF5 size")
    for r in jobs.values():
        gpu = f", GPU peak {r['gpu_peak_mb']:.0f} MB" if r["gpu_peak_mb"] is not None else ""
        say(f"   {r['examples']:5d} examples: peak RSS {r['peak_rss_mb']:6.0f} MB "
            f"(after model load {r['rss_after_load_mb']:.0f} MB){gpu}; "
            f"HDF5 {r['file_bytes'] / r['examples'] / 1e3:.1f} kB/example vs minimum "
            f"{r['min_bytes'] / r['examples'] / 1e3:.1f} ({r['file_bytes'] / r['min_bytes']:.3f}x)")
    small, large = jobs["small"], jobs["large"]
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    say(f"   peak RSS growth for {large['examples'] / small['examples']:.0f}x the examples: {growth:+.0f} MB")
    return {**jobs, "peak_rss_growth_mb": growth}


def _stage_times(root: Path | None, say) -> list[dict]:
    from truthmap.stage_times import stage_times

    say("\n5. Stage times of the last `make run` (Snakemake benchmark files)")
    rows = stage_times(root) if root is not None and root.is_dir() else []
    if not rows:
        say(f"   none under {root}: run `make run` first, then `make bench` again")
        return []
    for r in rows:
        say(f"   {r['rule']:<22}{r['jobs']:>4} jobs {r['sum_s']:8.1f} s summed, longest {r['max_s']:.1f} s")
    say(f"   {'total':<22}{sum(r['jobs'] for r in rows):>4} jobs {sum(r['sum_s'] for r in rows):8.1f} s")
    return rows


def _device_name(dev) -> str:
    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"


def _default_model_dir() -> Path:
    pipeline = Path("resources/models/SmolLM2-135M-Instruct")
    return pipeline if (pipeline / "manifest.json").exists() else Path("resources/bench/SmolLM2-135M-Instruct")


def _prepared(model_dir: Path, source: str) -> Path:
    """``model_dir``, prepared from ``source`` first when it holds no prepared model."""
    if not (model_dir / "manifest.json").exists():
        from truthmap.models import prepare_model

        print(f"preparing {source} into {model_dir} ...", flush=True)
        prepare_model(model_dir.name, source, model_dir)
    return model_dir


def _random_prepared(shape: Path, model_dir: Path, opts: argparse.Namespace) -> Path:
    """``model_dir``, prepared with random weights of ``shape``'s config first when it holds no
    prepared model; one prepared from something else is refused."""
    from truthmap.files import InputError
    from truthmap.models import ModelInfo
    from truthmap.random_model import prepare_random

    if (model_dir / "manifest.json").exists():
        source = ModelInfo.read(model_dir).source
        if source != f"random:{shape}":
            raise InputError(f"{model_dir} holds {source}, not random weights of {shape}'s shape",
                             hint="name another --model-dir, or delete that folder")
        return model_dir
    print(f"preparing {shape}'s shape with random weights into {model_dir} ...", flush=True)
    prepare_random(shape, _prepared(_default_model_dir(), opts.prepare), model_dir, device=opts.device)
    return model_dir


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "extract-job":
        model_dir, n, out, batch_tokens, device, dtype = args[1:7]
        print(json.dumps(extract_job(model_dir, int(n), out, int(batch_tokens), device, dtype)))
        return 0
    if args and args[0] == "probe-job":
        split, out_dir, layer, started, *shards = args[1:]
        print(json.dumps(probe_job(split, shards, int(layer), out_dir, float(started))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m truthmap.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None,
                        help="a prepared model folder; default: the pipeline's SmolLM2 folder after `make run`, "
                             "else resources/bench/SmolLM2-135M-Instruct, prepared from --prepare when missing")
    parser.add_argument("--prepare", default="embedded:smollm2-135m-instruct",
                        help="model source to prepare into --model-dir when it does not exist")
    parser.add_argument("--shape", default=None,
                        help="a folder holding a model's config.json: bench a model of that shape with random weights, "
                             "prepared once into --model-dir (default resources/bench/<folder>-random) with the "
                             "default model's tokenizer")
    parser.add_argument("--out", default="results/bench", help="folder for bench.json and scratch files")
    parser.add_argument("--stage-times", default="benchmarks", help="Snakemake benchmark folder of the last run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--gen-batch", type=int, default=None, help="default: 32 on CPU, 256 on a GPU")
    parser.add_argument("--batch-tokens", type=int, default=None, help="default: 2048 on CPU, 32768 on a GPU")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every section runs")
    opts = parser.parse_args(args)
    from truthmap.files import InputError

    try:
        if opts.shape:
            default = f"resources/bench/{Path(opts.shape).resolve().name}-random"
            model_dir = _random_prepared(Path(opts.shape), Path(opts.model_dir or default), opts)
        else:
            model_dir = _prepared(Path(opts.model_dir or _default_model_dir()), opts.prepare)
    except InputError as err:  # a source or folder that cannot be prepared: one line, no traceback
        print(f"error: {err}" + (f"\n  {err.hint}" if err.hint else ""), file=sys.stderr)
        return 1
    out = Path(opts.out)
    from truthmap.models import pick_device

    gpu = pick_device(opts.device).type == "cuda"
    sizes = QUICK if opts.quick else ON_GPU if gpu else Sizes()
    report = run(str(model_dir), out, sizes, device=opts.device, dtype=opts.dtype,
                 gen_batch=opts.gen_batch or (256 if gpu else 32),
                 batch_tokens=opts.batch_tokens or (32768 if gpu else 2048),
                 stage_times_dir=Path(opts.stage_times), say=lambda line: print(line, flush=True))
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nfigures written to {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
