"""Expected time of each model stage of a plan, from the throughput ``make bench`` measured.

A stage's time is the FLOPs its forward passes must do over the FLOP rate the bench reached
for that kind of pass on the machine it ran on (``results/bench/bench.json``, or a file
measured on another GPU type): whole sequences at once (extraction, P(True)'s prompts, the
prompts before decoding) at the extraction rate, one token per row and step (decoding) at the
batched generation rate. Tokens per question are the bench's: its built-in prompts' mean
length, and every answer as long as ``max_new_tokens`` allows (answers that stop earlier
take less); labelling counts every answer as sent to the extractor with a prompt that long.
The rates are the bench model's: a larger model multiplies larger matrices and reaches at
least its rate on the same device. What is not a matrix product is not counted (loading the
model, tokenising, writing), nor the extractor's few-shot demonstrations: these are estimates
of the arithmetic's time, not bounds (README, "Plan a run", compares them with a measured run).

The probe stage's job-seconds come from the bench's probe stage at the paper's scale
(``probe_scale.json``): seconds per cell of the run's backend, scaled by each cell's questions x
features (what every solver step reads) over the bench cell's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from truthmap.files import InputError
from truthmap.settings import RunSettings
from truthmap.shapes import ModelShape


@dataclass(frozen=True)
class Rates:
    """What a bench run measured: FLOP rates of whole-sequence passes and of decoding, and where."""

    forward_flops: float
    decode_flops: float
    prompt_tokens: float
    """Mean tokens of a built-in question's prompt."""
    where: str

    @classmethod
    def read(cls, path: Path) -> Rates:
        """The rates in a ``bench.json``; an :class:`InputError` naming the file when it lacks them."""
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            e, g = report["extraction"], report["generation"]
            return cls(
                forward_flops=e["ours_computed_tokens_per_s"] * e["flops_per_token_ours"],
                decode_flops=g["batched_tokens_per_s"] * g["flops_per_generated_token"],
                prompt_tokens=g["mean_prompt_tokens"],
                where=f"{report['model']} on {report['device']}, {report['dtype']}, {report['date']}",
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path}: not a make bench report with extraction and generation rates "
                             f"({type(err).__name__}: {err}); run make bench again") from err


@dataclass(frozen=True)
class Work:
    """Tokens a stage runs through a model: whole-sequence (forward) and decoded one at a time."""

    forward: float = 0.0
    decoded: float = 0.0

    def seconds(self, shape: ModelShape, context: float, rates: Rates, lm_head: bool = True) -> float:
        flops = shape.flops_per_token(context, lm_head=lm_head)
        return self.forward * flops / rates.forward_flops + self.decoded * flops / rates.decode_flops


def stage_seconds(model: str, dataset: str, questions: int, shapes: Mapping[str, ModelShape],
                  settings: RunSettings, rates: Rates) -> dict[str, float]:
    """Expected seconds of each model stage of one model x dataset (see the module docstring)."""
    shape, extractor = shapes[model], shapes[settings.extractor_of(model)]
    prompt = rates.prompt_tokens
    answer = settings.generation_for(model, dataset).max_new_tokens
    short = settings.exact_answer.max_new_tokens
    seq = prompt + answer
    n = settings.resampling.n
    out = {
        "generate_answers": Work(questions * prompt, questions * answer).seconds(shape, seq / 2, rates),
        "label_answers": Work(questions * seq, questions * short).seconds(extractor, seq, rates),
        "extract_activations": Work(questions * seq).seconds(shape, seq / 2, rates, lm_head=False),
    }
    if settings.detectors.p_true:
        scored = questions * settings.split.test_fraction + settings.detectors.p_true_train_questions
        out["score_p_true"] = Work(2 * min(scored, questions) * seq).seconds(shape, seq / 2, rates)
    if n:
        out["resample_answers"] = Work(questions * prompt, n * questions * answer).seconds(shape, seq / 2, rates)
        out["label_samples"] = Work(n * questions * seq, n * questions * short).seconds(extractor, seq, rates)
    return out


def probe_seconds_per_value(path: Path, backend: str) -> tuple[float, str] | None:
    """(seconds per question x feature of one cell, the backend timed) from a ``probe_scale.json``, for
    the configured ``backend`` (``auto``: torch on the bench's GPU when it had one, else numpy);
    None when the file or that backend's figure is missing."""
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        per_cell = {t["backend"]: t["per_cell_s"] for t in report["timings"]}
        values = report["scale"]["questions"] * report["scale"]["hidden"]
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: not a make bench probe report ({type(err).__name__}: {err}); "
                         "run make bench again") from err
    wanted = {"auto": ("torch:cuda", "numpy"), "torch": ("torch:cuda", "torch:cpu")}.get(backend, (backend,))
    for name in wanted:
        if name in per_cell:
            return per_cell[name] / values, name
    return None


def duration(seconds: float) -> str:
    """``42 s``, ``7.5 min``, ``3.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_estimates(estimates: Mapping[tuple[str, str], Mapping[str, float]], rates: Rates) -> list[str]:
    """The plan's time section: one line per model x dataset, its stages and their sum."""
    lines = [f"Expected time of the model stages (rates measured by make bench: {rates.where}; the arithmetic's"
             " time, see truthmap.estimate):"]
    for (model, dataset), stages in estimates.items():
        parts = ", ".join(f"{stage} {duration(s)}" for stage, s in stages.items())
        lines.append(f"  {model} x {dataset}: {parts}; total {duration(sum(stages.values()))}")
    return lines


def estimate_lines(bench: Path, plans: Sequence, shapes: Mapping[str, ModelShape], settings: RunSettings) -> list[str]:
    """The time section for ``plans`` (each a :class:`truthmap.plan.RunPlan`), or a line saying how
    to get one; the probe stage's figure is read from ``probe_scale.json`` beside ``bench``."""
    if not bench.exists():
        return [f"Expected time: no make bench figures at {bench} (run make bench on the machine the run "
                "will use, or pass --bench with a bench.json measured on that GPU type)"]
    rates = Rates.read(bench)
    estimates = {(p.model, p.dataset): stage_seconds(p.model, p.dataset, p.questions, shapes, settings, rates)
                 for p in plans}
    lines = format_estimates(estimates, rates)
    probe = probe_seconds_per_value(bench.parent / "probe_scale.json", settings.probe.backend)
    if probe is None:
        return [*lines, f"  train_probes: no probe figures for backend {settings.probe.backend!r} beside {bench}"]
    per_value, backend = probe
    for p in plans:
        seconds = per_value * p.values  # every cell's questions x features
        lines.append(f"  {p.model} x {p.dataset}: train_probes {duration(seconds)} of probe jobs ({p.cells:,} cells, "
                     f"{backend}, scaled by questions x features from the bench's paper-scale cell)")
    return lines
