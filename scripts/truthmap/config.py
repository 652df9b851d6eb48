"""Typed settings of each stage, built from the validated workflow config.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks types and fills
defaults; these dataclasses check what a schema cannot (a template that lacks
``{question}``, a token name out of the known set) and carry the settings into
the library functions, which never see the Snakemake config dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from truthmap.files import InputError

#: Every token position the pipeline knows, in the order of the heatmap's x axis.
TOKEN_NAMES: tuple[str, ...] = (
    "last_q",
    "exact_answer_before_first",
    "exact_answer_first",
    "exact_answer_last",
    "exact_answer_after_last",
    *(str(-k) for k in range(8, 0, -1)),
)

#: Positions that need the exact answer's span.
EXACT_TOKENS: frozenset[str] = frozenset(t for t in TOKEN_NAMES if t.startswith("exact_answer"))

PromptStyle = Literal["auto", "chat", "plain"]
Site = Literal["residual", "mlp_input"]


#: Generation settings a dataset format brings unless the config overrides them.
FORMAT_GENERATION: dict[str, dict] = {
    # Word problems need room to reason before the number.
    "gsm8k": {"max_new_tokens": 200},
}

#: Keys of a dataset entry that override ``generation`` for that dataset.
DATASET_GENERATION_KEYS: tuple[str, ...] = ("template", "plain_template", "max_new_tokens")


def generation_settings(generation: dict, dataset: dict, model: dict) -> dict:
    """The generation section for one (model, dataset): global settings, then the
    dataset format's defaults, then the dataset's and the model's own keys."""
    settings = {**generation, **FORMAT_GENERATION.get(str(dataset.get("format")), {})}
    settings.update({k: dataset[k] for k in DATASET_GENERATION_KEYS if dataset.get(k) is not None})
    if model.get("prompt_style") is not None:
        settings["prompt_style"] = model["prompt_style"]
    return settings


def parse_tokens(tokens: Iterable[str | int]) -> list[str]:
    """Check token names, drop duplicates and put them in the canonical order."""
    names = [str(t) for t in tokens]
    unknown = [t for t in names if t not in TOKEN_NAMES]
    if unknown:
        raise InputError(f"config key 'tokens': unknown token(s) {unknown}; known: {list(TOKEN_NAMES)}")
    if not names:
        raise InputError("config key 'tokens': empty list")
    return [t for t in TOKEN_NAMES if t in set(names)]


def resolve_layers(layers: str | Sequence[int], num_layers: int) -> list[int]:
    """``"all"`` or a list of layer indices, checked against the model's layer count."""
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


def from_mapping(cls, mapping: dict | None, key: str):
    """Build a settings dataclass from a config section; unknown keys are errors."""
    mapping = dict(mapping or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise InputError(f"config section {key!r}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**mapping)


def _positive(value: float, name: str) -> None:
    if not value > 0:
        raise InputError(f"config key {name!r}: must be positive, got {value!r}")


@dataclass(frozen=True)
class GenerationConfig:
    """How answers are generated (greedy decoding)."""

    template: str = "Answer the question concisely.\n{question}"
    """The user message for chat-style prompts; must contain ``{question}``."""
    plain_template: str = "Q: {question}\nA:"
    """The whole prompt for plain-style prompts (base models); generation stops at a newline."""
    prompt_style: PromptStyle = "auto"
    """chat: the model's chat template; plain: ``plain_template``; auto: chat if the model has one."""
    max_new_tokens: int = 32
    """Most tokens generated per answer."""
    batch_size: int = 32
    """Prompts decoded together (left-padded)."""

    def __post_init__(self) -> None:
        for key in ("template", "plain_template"):
            if "{question}" not in getattr(self, key):
                raise InputError(
                    f"config key 'generation.{key}': must contain '{{question}}', got {getattr(self, key)!r}"
                )
        if self.prompt_style not in ("auto", "chat", "plain"):
            raise InputError(f"config key 'generation.prompt_style': unknown style {self.prompt_style!r}")
        _positive(self.max_new_tokens, "generation.max_new_tokens")
        _positive(self.batch_size, "generation.batch_size")


@dataclass(frozen=True)
class ExactAnswerConfig:
    """How the short answer of an incorrect generation is extracted by an instruct model."""

    extractor: str = "same"
    """``same``: the answering model; otherwise a key of ``models``."""
    max_new_tokens: int = 16
    batch_size: int = 32
    max_words: int | None = 8
    """Reject an extracted answer of more words (a copied sentence); None: no limit."""

    def __post_init__(self) -> None:
        if self.max_words is not None:
            _positive(self.max_words, "exact_answer.max_words")
        _positive(self.max_new_tokens, "exact_answer.max_new_tokens")
        _positive(self.batch_size, "exact_answer.batch_size")


@dataclass(frozen=True)
class ActivationConfig:
    """Where and how hidden states are read."""

    site: Site = "residual"
    """residual: each decoder layer's output; mlp_input: the input of each layer's MLP."""
    batch_tokens: int = 2048
    """Most (padded) tokens in one forward batch."""
    share_prefix: bool = True
    """Run a prefix that a whole batch shares (chat template, demonstrations) once."""

    def __post_init__(self) -> None:
        if self.site not in ("residual", "mlp_input"):
            raise InputError(f"config key 'activations.site': unknown site {self.site!r}")
        _positive(self.batch_tokens, "activations.batch_tokens")


@dataclass(frozen=True)
class ProbeConfig:
    """The per-cell probe and its evaluation."""

    test_fraction: float = 0.2
    """Share of questions held out for the test set (stratified by label)."""
    C: float = 1.0
    """Inverse L2 regularisation strength of the logistic regression."""
    max_iter: int = 1000
    bootstrap: int = 1000
    """Bootstrap resamples for the AUC interval."""
    ci_level: float = 0.95
    examples: Literal["common", "per_cell"] = "common"
    """common: every cell uses the examples valid at all tokens; per_cell: each its own."""
    min_per_class: int = 5
    """Fewest examples of each class in train and in test for a cell to be fitted."""
    cv_folds: int = 5
    """Folds of the training rows whose mean AUC chooses the best cell."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise InputError(f"config key 'probe.test_fraction': must be in (0, 1), got {self.test_fraction!r}")
        if not 0 < self.ci_level < 1:
            raise InputError(f"config key 'probe.ci_level': must be in (0, 1), got {self.ci_level!r}")
        _positive(self.C, "probe.C")
        _positive(self.max_iter, "probe.max_iter")
        _positive(self.bootstrap, "probe.bootstrap")
        _positive(self.min_per_class, "probe.min_per_class")
        if self.cv_folds < 2:
            raise InputError(f"config key 'probe.cv_folds': must be at least 2, got {self.cv_folds!r}")
        if self.examples not in ("common", "per_cell"):
            raise InputError(f"config key 'probe.examples': unknown value {self.examples!r}")


@dataclass(frozen=True)
class DetectorConfig:
    """The training-free detectors compared with the probes."""

    p_true: bool = True
    """Score P(True): one extra forward pass per scored question and option order."""
    p_true_train_questions: int = 200
    """Training questions (seeded sample) scored to choose P(True)'s option order."""
    batch_size: int = 32

    def __post_init__(self) -> None:
        _positive(self.p_true_train_questions, "detectors.p_true_train_questions")
        _positive(self.batch_size, "detectors.batch_size")
