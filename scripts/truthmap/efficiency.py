"""Per model stage of a finished run: the work its forward passes did against this machine's limit.

Every model stage writes, beside its Snakemake benchmark file, the work its
forward passes did (``<job>.work.json``, from :class:`truthmap.work.WorkMeter`).
:func:`efficiency_rows` joins the two per rule: FLOPs, real and padded tokens,
the jobs' wall time and the time inside the model calls, and, with the
matrix-multiply peak measured here in each stage's dtype on as many CPU threads as
its jobs computed with, the MFU over the whole job (start-up, loading, writing
included) and over the model calls alone.
``make stage-times`` prints the table after the plain stage times.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

WORK_SUFFIX = ".work.json"


def job_seconds(tsv: Path) -> float:
    """Wall time of one Snakemake benchmark file (its last repeat)."""
    with tsv.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return float(rows[-1]["s"]) if rows else 0.0


def read_work(root: str | Path) -> list[dict]:
    """One record per job that counted its work: its rule, the counts and the job's wall time."""
    jobs = []
    for path in sorted(Path(root).rglob(f"*{WORK_SUFFIX}")):
        tsv = path.with_name(path.name.removesuffix(WORK_SUFFIX) + ".tsv")
        work = json.loads(path.read_text(encoding="utf-8"))
        jobs.append({"threads": 0, **work, "rule": path.relative_to(root).parts[0],
                     "job_s": job_seconds(tsv) if tsv.exists() else float("nan")})
    return jobs


def efficiency_rows(jobs: Sequence[Mapping], peak_gflops: Callable[[str, str, int], float]) -> list[dict]:
    """Per rule (in order of summed job time): work, times and MFU against
    ``peak_gflops(device, dtype, threads)`` (threads 0: on a GPU, or not recorded).

    A rule whose jobs fed no tokens (an extractor that never had a wrong answer)
    keeps its times and has no MFU.
    """
    by_rule: dict[str, list[Mapping]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    rows = []
    for rule, group in by_rule.items():
        kinds = sorted({(j["device"], j["dtype"], j["threads"]) for j in group if j["tokens"]})
        flops = sum(j["flops"] for j in group)
        job_s = sum(j["job_s"] for j in group)
        model_s = sum(j["model_seconds"] for j in group)
        tokens, padded = sum(j["tokens"] for j in group), sum(j["padded_tokens"] for j in group)
        peak = peak_gflops(*kinds[0]) if len(kinds) == 1 else float("nan")
        rows.append({
            "rule": rule, "jobs": len(group), "device": kinds[0][0] if kinds else "",
            "dtype": ",".join(sorted({k[1] for k in kinds})), "threads": ",".join(str(k[2]) for k in kinds),
            "tokens": tokens,
            "padding": 1 - tokens / padded if padded else 0.0,
            "gflop": flops / 1e9, "job_s": job_s, "model_s": model_s, "peak_gflops": peak,
            "mfu_job": _ratio(flops / 1e9, job_s * peak), "mfu_model": _ratio(flops / 1e9, model_s * peak),
        })
    return sorted(rows, key=lambda r: -r["job_s"])


def _ratio(num: float, den: float) -> float:
    return num / den if den and den == den and num else float("nan")


def measured_peaks() -> Callable[[str, str, int], float]:
    """``peak_gflops(device, dtype, threads)``: the matmul peak measured here, once per kind; on
    the CPU with ``threads`` threads (this process's default for 0)."""
    import torch

    from truthmap.flops import matmul_peak_gflops

    cache: dict[tuple[str, str, int], float] = {}

    def peak(device: str, dtype: str, threads: int = 0) -> float:
        if (device, dtype, threads) not in cache:
            before = torch.get_num_threads()
            if device == "cpu" and threads:
                torch.set_num_threads(threads)
            try:
                cache[device, dtype, threads] = matmul_peak_gflops(torch.device(device), getattr(torch, dtype))
            finally:
                torch.set_num_threads(before)
        return cache[device, dtype, threads]

    return peak


def format_table(rows: Sequence[Mapping]) -> list[str]:
    """The table as printed (and pasted into README's Performance section)."""
    lines = [f"{'stage':<20}{'jobs':>5}{'dtype':>10}{'threads':>8}{'tokens':>9}{'pad':>6}{'GFLOP':>9}{'job s':>8}"
             f"{'model s':>9}{'peak GF/s':>10}{'MFU job':>9}{'MFU model':>10}"]
    for r in rows:
        lines.append(f"{r['rule']:<20}{r['jobs']:>5}{r['dtype']:>10}{_threads(r['threads']):>8}{r['tokens']:>9}"
                     f"{r['padding']:>6.0%}{r['gflop']:>9.0f}{r['job_s']:>8.1f}{r['model_s']:>9.1f}{_num(r['peak_gflops']):>10}"
                     f"{_pct(r['mfu_job']):>9}{_pct(r['mfu_model']):>10}")
    return lines


def _threads(threads: str) -> str:
    """The threads cell: "-" on a GPU or where the jobs did not record them."""
    return "-" if threads in ("", "0") else threads


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def _num(x: float) -> str:
    return "-" if x != x else f"{x:.0f}"
