"""The plan before a run: what each model x dataset needs, from the config, the DAG and arithmetic.

``make plan`` (``python -m truthmap.plan [--configfile F]``) prints, per model: its
parameters, the memory its weights take in the run's dtype and the GPUs that holds;
per model x dataset: the questions, the activation bytes on disk per site, the probe
cells and the probe jobs; then the jobs a dry run of the workflow plans, the SLURM
submissions they make under ``workflow/profiles/slurm``, and the free disk against
the activations still to be written. Nothing is loaded but ``config.json`` files: a
70B model's folder needs no weights for its plan.

A model's shape comes from its prepared folder (``resources/models/<name>/``) or its
Hugging Face folder; an embedded or GGUF model has one once prepared
(``make plan`` prepares those first).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from truthmap.estimate import estimate_lines
from truthmap.files import InputError
from truthmap.placement import GPU_HEADROOM, gpus_needed
from truthmap.settings import RunSettings, resolve_layers
from truthmap.shapes import ModelShape

#: Bytes per weight of each dtype; ``auto`` is planned as bfloat16, what it picks on a GPU.
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
#: Bytes per stored activation value (the HDF5 shards hold float16).
ACTIVATION_BYTES = 2
DEFAULT_GPU_GIB = 80.0
#: The workflow this module belongs to (its Snakefile and profiles).
WORKFLOW = Path(__file__).resolve().parents[2]


def read_shape(path: Path) -> ModelShape:
    """A model's shape from its config.json; an :class:`InputError` naming the file when it lacks one."""
    try:
        return ModelShape.from_config(json.loads(path.read_text(encoding="utf-8")))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: not a decoder config truthmap can plan for ({type(err).__name__}: {err})") from err


def activation_bytes(questions: int, tokens: int, layers: int, width: int) -> int:
    """Bytes of one site's activations on disk: every question x token x layer x value, float16."""
    return questions * tokens * layers * width * ACTIVATION_BYTES


@dataclass(frozen=True)
class RunPlan:
    """One model x dataset."""

    model: str
    dataset: str
    questions: int
    block_layers: int
    embeddings: bool
    tokens: int
    site_bytes: dict[str, int]
    """Activation bytes per site (the embeddings row, stored once, under ``embeddings``)."""

    @property
    def cells(self) -> int:
        return (len(self.site_bytes) - self.embeddings) * self.block_layers * self.tokens + self.embeddings * self.tokens

    @property
    def probe_jobs(self) -> int:
        return self.block_layers + self.embeddings

    @property
    def total_bytes(self) -> int:
        return sum(self.site_bytes.values())

    @property
    def values(self) -> int:
        """Activation values on disk: the sum over cells of their questions x features."""
        return self.total_bytes // ACTIVATION_BYTES


def run_plan(model: str, dataset: str, shape: ModelShape, settings: RunSettings, questions: int) -> RunPlan:
    layers = resolve_layers(settings.layers, shape.layers)
    tokens = len(settings.tokens)
    sites = {site: activation_bytes(questions, tokens, len(layers), shape.site_width(site))
             for site in settings.activations.sites}
    if settings.activations.embeddings:
        sites["embeddings"] = activation_bytes(questions, tokens, 1, shape.hidden)
    return RunPlan(model, dataset, questions, len(layers), settings.activations.embeddings, tokens, sites)


# --------------------------------------------------------------------------- the DAG


def dry_run_jobs(output: str, local: frozenset[str] = frozenset()) -> dict[str, tuple[int, bool]]:
    """{rule: (jobs, runs on the submit host)} from a ``snakemake --dry-run`` listing; ``local``: the
    Snakefile's localrules (a dry run lists their jobs as any other)."""
    jobs: dict[str, tuple[int, bool]] = {}
    for kind, rule in re.findall(r"^(localrule|rule|checkpoint|localcheckpoint) (\w+):$", output, re.M):
        count, _ = jobs.get(rule, (0, False))
        jobs[rule] = (count + 1, kind.startswith("local") or rule in local)
    return jobs


def local_rules(snakefile: Path) -> frozenset[str]:
    """The rules a Snakefile's ``localrules:`` block names."""
    text = snakefile.read_text(encoding="utf-8")
    block = re.search(r"^localrules:\n((?:[ \t]+\w+,?[ \t]*\n)+)", text, re.M)
    return frozenset(re.findall(r"\w+", block.group(1))) if block else frozenset()


def models_to_prepare(output: str) -> set[str]:
    """Models whose preparation a dry run plans: the probe jobs that follow that checkpoint are not
    in the dry run yet."""
    blocks = re.findall(r"^(?:local)?(?:rule|checkpoint) prepare_model:\n((?:    .*\n)+)", output, re.M)
    return {m for block in blocks for m in re.findall(r"wildcards: .*?\bmodel=([^,\s]+)", block)}


def slurm_submissions(jobs: Mapping[str, tuple[int, bool]], group_size: int, grouped: str = "train_probes") -> int:
    """sbatch submissions of a run: one per cluster job, the ``grouped`` rule's jobs ``group_size`` to one."""
    total = 0
    for rule, (count, local) in jobs.items():
        if local:
            continue
        total += math.ceil(count / group_size) if rule == grouped else count
    return total


def probe_group_size(profile: Path) -> int:
    """How many train_probes jobs one SLURM group job holds (``group-components`` of the profile)."""
    settings = yaml.safe_load(profile.read_text(encoding="utf-8"))
    for entry in settings.get("group-components", []):
        name, _, size = str(entry).partition("=")
        if name.strip() == "probes":
            return int(size)
    return 1


# --------------------------------------------------------------------------- reading the run


def model_config_path(name: str, source: str, models_dir: Path) -> Path | None:
    """The config.json behind a model: its prepared folder's, else its Hugging Face folder's."""
    for folder in (models_dir / name, Path(source).expanduser()):
        if (folder / "config.json").is_file():
            return folder / "config.json"
    return None


def to_prepare(settings: RunSettings, models_dir: Path) -> list[str]:
    """Prepared model folders the plan needs first: models (embedded, GGUF) with no config.json yet."""
    return [str(models_dir / name) for name, spec in settings.models.items()
            if model_config_path(name, spec.source, models_dir) is None]


def dataset_size(name: str, settings: RunSettings, datasets_dir: Path) -> int:
    """Questions of a dataset: its built questions file, else the build's own reading of the source."""
    built = datasets_dir / name / "questions.jsonl"
    if built.is_file():
        with built.open(encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    from truthmap.datasets import make_dataset
    from truthmap.load_options import parse_options

    spec = settings.datasets[name]
    options = parse_options(name, spec.source, spec.loader_options())
    return len(make_dataset(name, spec.source, spec.limit, settings.seed if spec.limit is not None else None,
                            options).records)


def missing_activation_bytes(plan: RunPlan, results: Path, shards: int) -> int:
    """The plan's activation bytes not yet on disk (shards of this model x dataset already written count as done)."""
    folder = results / plan.model / plan.dataset / "activations"
    written = sum(1 for i in range(shards) if (folder / f"{i:03d}.h5").is_file())
    return plan.total_bytes * (shards - written) // shards


def free_bytes(folder: Path) -> int:
    """Free bytes of the file system ``folder`` is (or will be) on."""
    folder = folder.absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_disk(needed: int, folder: Path) -> None:
    """Stop with one line when ``folder``'s file system cannot hold ``needed`` more bytes."""
    free = free_bytes(folder)
    if needed > free:
        raise InputError(f"{folder}: the activations still to write need {gib(needed)}, the disk has {gib(free)} "
                         "free; free space, or lower 'layers', 'tokens', 'activations.sites' or a dataset's "
                         "'limit' (make plan shows what each takes)")


def check_run_disk(settings: RunSettings, models_dir: Path, results: Path) -> int:
    """Before a run's first job: the activation bytes it still has to write, or an
    :class:`InputError` when its disk cannot hold them. Models without a readable config.json yet
    (embedded and GGUF ones before preparation, broken folders) and datasets that cannot be read
    (their own jobs report why) are not counted."""
    needed = 0
    for model, spec in settings.models.items():
        path = model_config_path(model, spec.source, models_dir)
        try:
            shape = read_shape(path) if path is not None else None
        except InputError:
            shape = None  # its prepare_model job says what is wrong with it
        if shape is None:
            continue
        for dataset in settings.datasets:
            try:
                size = dataset_size(dataset, settings, results / "datasets")
            except InputError:
                continue
            needed += missing_activation_bytes(run_plan(model, dataset, shape, settings, size), results,
                                               settings.shards)
    check_disk(needed, results)
    return needed


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:,.1f} MiB"


# --------------------------------------------------------------------------- the report


def format_plan(models: Mapping[str, tuple[ModelShape, str]], plans: Sequence[RunPlan], gpu_bytes: float,
                jobs: Mapping[str, tuple[int, bool]] | None, group_size: int, free: int, missing: int) -> list[str]:
    lines = [f"Models (GPUs of {gpu_bytes / 2**30:.0f} GiB; weights x {GPU_HEADROOM} must fit):"]
    for name, (shape, dtype) in models.items():
        weights = shape.params() * DTYPE_BYTES[dtype]
        lines.append(f"  {name}: {shape.params() / 1e9:.2f}B parameters, {shape.layers} layers, hidden "
                     f"{shape.hidden}, intermediate {shape.intermediate}; {gib(weights)} in "
                     f"{'bfloat16 (auto, on a GPU)' if dtype == 'auto' else dtype} -> "
                     f"{gpus_needed(weights, gpu_bytes)} GPU(s)")
    lines.append("")
    lines.append("Activations, cells and probe jobs (float16 on disk):")
    for p in plans:
        per_site = ", ".join(f"{site} {gib(b)}" for site, b in p.site_bytes.items())
        lines.append(f"  {p.model} x {p.dataset}: {p.questions:,} questions x {p.tokens} tokens x "
                     f"{p.block_layers} layers: {per_site}; total {gib(p.total_bytes)}; "
                     f"{p.cells:,} cells in {p.probe_jobs} probe jobs")
    lines.append("")
    if jobs is None:
        lines.append("Jobs: no dry run (--no-dry-run)")
    else:
        width = max([len(rule) for rule in jobs] + [len("total")])
        lines.append("Jobs still to run (a dry run of the workflow; the probe jobs of a model not prepared yet "
                     "come from the arithmetic above):")
        for rule, (count, local) in sorted(jobs.items(), key=lambda kv: (-kv[1][0], kv[0])):
            lines.append(f"  {rule:<{width}} {count:6,}  {'submit host' if local else 'cluster'}")
        total = sum(count for count, _ in jobs.values())
        lines.append(f"  {'total':<{width}} {total:6,}; SLURM submissions: {slurm_submissions(jobs, group_size):,} "
                     f"(train_probes {group_size} to a group job)")
    lines.append("")
    verdict = "fits" if missing <= free else "DOES NOT FIT: the run will stop before its first job"
    lines.append(f"Disk: activations still to write {gib(missing)}, free {gib(free)}: {verdict}")
    return lines


def load_settings(configfile: Path) -> RunSettings:
    from truthmap.schema import check_config

    config = yaml.safe_load(configfile.read_text(encoding="utf-8")) or {}
    check_config(config)
    return RunSettings.from_config(config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m truthmap.plan", description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", default="config/config.yaml")
    parser.add_argument("--directory", default=".", help="the run's folder (its resources/ and results/)")
    parser.add_argument("--gpu-memory-gib", type=float, default=None,
                        help=f"memory of one GPU (default: the visible GPU's, else {DEFAULT_GPU_GIB:.0f})")
    parser.add_argument("--no-dry-run", action="store_true", help="skip the workflow's dry run (no job counts)")
    parser.add_argument("--bench", type=Path, default=None,
                        help="a make bench report for the time estimates (default: results/bench/bench.json of "
                             "the run's folder; one measured on the run's GPU type gives its times)")
    parser.add_argument("--to-prepare", action="store_true",
                        help="only print the model folders to prepare before a plan (embedded, GGUF)")
    opts = parser.parse_args(sys.argv[1:] if argv is None else argv)
    run_dir = Path(opts.directory)
    models_dir, results = run_dir / "resources" / "models", run_dir / "results"
    try:
        settings = load_settings(Path(opts.configfile))
        if opts.to_prepare:
            print(" ".join(to_prepare(settings, models_dir)))
            return 0
        models = {}
        for name, spec in settings.models.items():
            path = model_config_path(name, spec.source, models_dir)
            if path is None:
                raise InputError(f"config key 'models.{name}.source': {spec.source} has no config.json until "
                                 f"prepared: snakemake {models_dir / name}")
            models[name] = (read_shape(path), spec.dtype)
        sizes = {d: dataset_size(d, settings, results / "datasets") for d in settings.datasets}
        plans = [run_plan(m, d, models[m][0], settings, sizes[d]) for m in settings.models for d in settings.datasets]
        times = estimate_lines(opts.bench or results / "bench" / "bench.json", plans,
                               {name: shape for name, (shape, _) in models.items()}, settings)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    gpu_bytes = (opts.gpu_memory_gib or visible_gpu_gib() or DEFAULT_GPU_GIB) * 2**30
    jobs = None if opts.no_dry_run else with_unplanned_probes(*dry_run(Path(opts.configfile), run_dir), plans)
    missing = sum(missing_activation_bytes(p, results, settings.shards) for p in plans)
    lines = format_plan(models, plans, gpu_bytes, jobs, probe_group_size(WORKFLOW / "workflow/profiles/slurm/config.yaml"),
                        free_bytes(results), missing)
    print("\n".join([*lines, "", *times]))
    return 0


def visible_gpu_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 2**30


def dry_run(configfile: Path, run_dir: Path) -> tuple[dict[str, tuple[int, bool]], set[str]]:
    """The workflow's dry run for ``configfile`` in ``run_dir``: {rule: (jobs, local)} and the models it
    prepares."""
    done = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(WORKFLOW / "Snakefile"),
                           "--directory", str(run_dir), "--configfile", str(Path(configfile).absolute()),
                           "--dry-run", "--workflow-profile", str(WORKFLOW / "workflow/profiles/default")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the dry run failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return dry_run_jobs(done.stdout, local_rules(WORKFLOW / "Snakefile")), models_to_prepare(done.stdout)


def with_unplanned_probes(jobs: Mapping[str, tuple[int, bool]], preparing: set[str],
                          plans: Sequence[RunPlan]) -> dict[str, tuple[int, bool]]:
    """``jobs`` plus the probe jobs of the models a dry run prepares first (not in its listing)."""
    out = dict(jobs)
    extra = sum(p.probe_jobs for p in plans if p.model in preparing)
    if extra:
        count, local = out.get("train_probes", (0, False))
        out["train_probes"] = (count + extra, local)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
