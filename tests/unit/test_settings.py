"""Tests for truthmap.settings and truthmap.sections: tokens and layers, every section, its checks, what a rule is given."""

from __future__ import annotations

import dataclasses
import re

import pytest

from truthmap.files import InputError
from truthmap.sections import NotGiven, Section, field_types
from truthmap.settings import (
    EXACT_TOKENS,
    TOKEN_NAMES,
    ActivationSettings,
    DatasetSettings,
    ExactAnswerSettings,
    GenerationSettings,
    ProbeSettings,
    ResamplingSettings,
    RunSettings,
    SplitSettings,
    parse_tokens,
    resolve_layers,
)


def test_token_names_in_heatmap_order():
    assert TOKEN_NAMES == (
        "last_q", "first_answer", "second_answer", "exact_answer_before_first", "exact_answer_first", "exact_answer_last",
        "exact_answer_after_last", "-8", "-7", "-6", "-5", "-4", "-3", "-2", "-1",
    )
    assert EXACT_TOKENS == {
        "exact_answer_before_first", "exact_answer_first",
        "exact_answer_last", "exact_answer_after_last",
    }


# --------------------------------------------------------------------------- parse_tokens


def test_parse_tokens_puts_names_in_canonical_order_and_drops_duplicates():
    assert parse_tokens(["-1", "last_q", "-8", "exact_answer_last", "-1"]) == [
        "last_q", "exact_answer_last", "-8", "-1",
    ]


def test_parse_tokens_accepts_integers():
    assert parse_tokens([-1, -2, "last_q"]) == ["last_q", "-2", "-1"]
    assert parse_tokens(t for t in ("-3",)) == ["-3"]  # any iterable


@pytest.mark.parametrize("bad", [["last_q", "first_q"], [-9], [0], ["Last_Q"], [1]])
def test_parse_tokens_unknown_names_the_key_and_the_token(bad):
    with pytest.raises(InputError, match="config key 'tokens': unknown token") as err:
        parse_tokens(bad)
    assert repr(str(bad[-1])) in str(err.value)


def test_parse_tokens_empty():
    with pytest.raises(InputError, match="'tokens': empty"):
        parse_tokens([])


# --------------------------------------------------------------------------- resolve_layers


def test_resolve_layers_all():
    assert resolve_layers("all", 4) == [0, 1, 2, 3]


def test_resolve_layers_list_is_sorted_and_unique():
    assert resolve_layers([29, 0, 14, 0], 30) == [0, 14, 29]


@pytest.mark.parametrize(
    "layers, bad", [([0, 30], "[30]"), ([-1, 3], "[-1]"), ([31, 40], "[31, 40]")]
)
def test_resolve_layers_out_of_range_mentions_the_valid_range(layers, bad):
    with pytest.raises(InputError, match="config key 'layers'") as err:
        resolve_layers(layers, 30)
    message = str(err.value)
    assert "0..29" in message and bad in message and "30 layers" in message


def test_resolve_layers_empty():
    with pytest.raises(InputError, match="'layers': empty"):
        resolve_layers([], 30)


@pytest.mark.parametrize("value", ["All", "0,1", ""])
def test_resolve_layers_other_strings(value):
    with pytest.raises(InputError, match="expected 'all' or a list of integers"):
        resolve_layers(value, 30)


# --------------------------------------------------------------------------- from_mapping and given


def test_from_mapping_builds_the_dataclass():
    assert ProbeSettings.from_mapping(None) == ProbeSettings()
    cfg = ProbeSettings.from_mapping({"C": 0.3, "examples": "per_cell"})
    assert cfg.C == 0.3 and cfg.examples == "per_cell" and cfg.cv_folds == 5


def test_from_mapping_unknown_key_names_section_and_key():
    expected = r"config section 'probe': unknown key\(s\) \['test_fraction'\]"
    with pytest.raises(InputError, match=expected) as err:
        ProbeSettings.from_mapping({"test_fraction": 0.3})
    assert "cv_folds" in str(err.value)  # the known keys are listed


def test_from_mapping_runs_the_checks():
    with pytest.raises(InputError, match="activations.sites"):
        ActivationSettings.from_mapping({"sites": ["attention"]})


def test_a_rule_reads_only_what_it_was_given():
    cfg = ProbeSettings.given({"C": 2.0, "seed": 3})
    assert (cfg.C, cfg.seed) == (2.0, 3)
    with pytest.raises(NotGiven, match=r"setting 'probe.cv_folds' was not passed to this rule"):
        cfg.cv_folds  # noqa: B018
    assert "cv_folds=<not given>" in repr(cfg)
    model = DatasetSettings.given({"source": "builtin"}, "datasets.mine")
    with pytest.raises(NotGiven, match="'datasets.mine.limit'"):
        model.limit  # noqa: B018


def test_given_settings_are_checked_and_unknown_keys_refused():
    with pytest.raises(InputError, match="'split.test_fraction': must be in"):
        SplitSettings.given({"test_fraction": 2.0})
    with pytest.raises(InputError, match="unknown key"):
        SplitSettings.given({"C": 1.0})


def test_pick_gives_plain_values_snakemake_can_compare():
    run = RunSettings.from_config({"models": {"m": {"source": "s"}}, "datasets": {"d": {"source": "builtin"}},
                                   "tokens": ["-1", "last_q"]})
    assert run.probe.pick("C", "seed") == {"C": 1.0, "seed": 0}
    assert run.tokens == ["last_q", "-1"]  # canonical order
    with pytest.raises(NotGiven):
        ProbeSettings.given({"C": 1.0}).pick("seed")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProbeSettings().seed = 1


# --------------------------------------------------------------------------- __post_init__ checks


@pytest.mark.parametrize("key", ["template", "plain_template"])
def test_generation_template_needs_the_question(key):
    with pytest.raises(InputError, match=f"'generation.{key}': must contain '{{question}}'") as err:
        GenerationSettings(**{key: "Answer: {query}"})
    assert "'Answer: {query}'" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"prompt_style": "instruct"}, "generation.prompt_style"),
        ({"max_new_tokens": 0}, "generation.max_new_tokens"),
        ({"batch_size": -2}, "generation.batch_size"),
    ],
)
def test_generation_config_errors(kwargs, key):
    with pytest.raises(InputError, match=f"config key '{key}'") as err:
        GenerationSettings(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(err.value)


def test_generation_config_accepts_its_choices():
    for style in ("auto", "chat", "plain"):
        assert GenerationSettings(prompt_style=style).prompt_style == style


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"max_words": 0}, "exact_answer.max_words"),
        ({"max_new_tokens": 0}, "exact_answer.max_new_tokens"),
        ({"batch_size": 0}, "exact_answer.batch_size"),
    ],
)
def test_exact_answer_config_errors(kwargs, key):
    with pytest.raises(InputError, match=f"config key '{key}': must be at least 1"):
        ExactAnswerSettings(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": -1}, "config key 'resampling.n': must be at least 0"),
        ({"n": 2, "temperature": 0}, "config key 'resampling.temperature': 0 (greedy) makes all 2 samples"),
        ({"top_p": 0}, "config key 'resampling.top_p': must be positive"),
        ({"top_p": 1.5}, "config key 'resampling.top_p': must be at most 1"),
        ({"top_k": 0}, "config key 'resampling.top_k': must be at least 1"),
    ],
)
def test_resampling_config_errors(kwargs, message):
    with pytest.raises(InputError, match=re.escape(message)):
        ResamplingSettings(**kwargs)


def test_resampling_is_off_by_default_and_greedy_allows_one_sample():
    assert ResamplingSettings().n == 0
    assert ResamplingSettings(n=1, temperature=0).temperature == 0


def test_exact_answer_config_without_a_word_limit():
    assert ExactAnswerSettings(max_words=None).max_words is None


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"sites": ["attn_output"]}, "activations.sites"),
        ({"sites": "residual"}, "activations.sites"),
        ({"sites": []}, "activations.sites"),
        ({"batch_tokens": 0}, "activations.batch_tokens"),
    ],
)
def test_activation_config_errors(kwargs, key):
    with pytest.raises(InputError, match=f"config key '{key}'"):
        ActivationSettings(**kwargs)


def test_activation_config_sites():
    assert ActivationSettings(sites=["mlp_input", "residual"]).sites == ["mlp_input", "residual"]
    assert ActivationSettings().sites == ["residual"]


def test_an_unknown_or_repeated_site_names_the_key_and_the_known_sites():
    with pytest.raises(InputError) as err:
        ActivationSettings(sites=["residual", "attn_output"])
    assert str(err.value) == ("config key 'activations.sites': unknown site(s) ['attn_output']; known: residual, "
                              "mlp_input, mlp_output, mlp_down_input, attention_output")
    with pytest.raises(InputError, match="'activations.sites': a site is listed twice"):
        ActivationSettings(sites=["residual", "mlp_output", "residual"])


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"ci_level": 1.0}, "probe.ci_level"),
        ({"ci_level": 0}, "probe.ci_level"),
        ({"C": 0}, "probe.C"),
        ({"C": -1.0}, "probe.C"),
        ({"max_iter": 0}, "probe.max_iter"),
        ({"bootstrap": 0}, "probe.bootstrap"),
        ({"min_per_class": 0}, "probe.min_per_class"),
        ({"examples": "all"}, "probe.examples"),
        ({"cv_folds": 1}, "probe.cv_folds"),
    ],
)
def test_probe_config_errors_name_key_and_value(kwargs, key):
    with pytest.raises(InputError, match=f"config key '{key}'") as err:
        ProbeSettings(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(err.value)


def test_probe_config_defaults():
    cfg = ProbeSettings()
    assert (cfg.C, cfg.ci_level, cfg.examples, cfg.min_per_class) == (1.0, 0.95, "common", 5)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.2])
def test_split_test_fraction_is_a_share(value):
    with pytest.raises(InputError, match="config key 'split.test_fraction': must be in \\(0, 1\\)") as err:
        SplitSettings(test_fraction=value)
    assert repr(value) in str(err.value)


def bounded_fields():
    """Every (section, key, bounds) with a bound, from every section of the run."""
    out = []
    for section in (*Section.__subclasses__(),):
        for f in dataclasses.fields(section):
            if f.metadata.get("bounds"):
                out.append(pytest.param(section, f.name, f.metadata["bounds"], id=f"{section.__name__}.{f.name}"))
    return out


@pytest.mark.parametrize(("section", "key", "bounds"), bounded_fields())
def test_every_bound_is_enforced_with_the_key_named(section, key, bounds):
    low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
    bad = low - 1 if "minimum" in bounds else low
    if field_types(section)[key] is float:
        bad = float(bad)
    values = {key: bad}
    if "source" in {f.name for f in dataclasses.fields(section)}:
        values["source"] = "builtin"
    build = RunSettings.from_config if section is RunSettings else section.from_mapping
    with pytest.raises(InputError, match=f"{key}': must") as err:
        build({**MINIMAL, **values} if section is RunSettings else values)
    assert repr(bad) in str(err.value)


# --------------------------------------------------------------------------- the whole run

MINIMAL = {"models": {"m": {"source": "embedded:smollm2-135m-instruct"}}, "datasets": {"d": {"source": "builtin"}}}


def run_with(**overrides) -> RunSettings:
    return RunSettings.from_config({**MINIMAL, **overrides})


def test_a_minimal_config_gets_every_default():
    run = run_with()
    assert run.probe == ProbeSettings() and run.split == SplitSettings() and run.shards == 4
    assert run.layers == "all" and len(run.tokens) == 12


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shard": 2}, r"config: unknown key\(s\) \['shard'\]"),
        ({"shards": "two"}, "config key 'shards': 'two' is not an integer"),
        ({"probe": {"test_fraction": 0.3}}, "config section 'probe': unknown key"),
        ({"tokens": ["last_q", "third_answer"]}, "config key 'tokens': unknown token"),
        ({"layers": [-1, 2]}, "config key 'layers'"),
        ({"exact_answer": {"extractor": "ghost"}}, "config key 'exact_answer.extractor'"),
        ({"models": {"m": {"source": "s", "extractor": "ghost"}}}, "'models.m.extractor'"),
        ({"models": {"m": {"source": "s", "dtype": "fp8"}}}, "config key 'models.m.dtype': 'fp8' is not one of"),
        ({"datasets": {"d": {"source": "x.csv", "format": "generic"}}}, "config key 'datasets.d.format'"),
        ({"datasets": {"d": {"source": "builtin", "template": "no slot"}}}, "config key 'datasets.d.template'"),
        ({"datasets": {}}, "config key 'datasets': name at least one"),
        ({"detectors": {"p_true": "yes"}}, "config key 'detectors.p_true': 'yes' is not true or false"),
        ({"plot": {"annotate": 1}}, "config key 'plot.annotate'"),
    ],
)
def test_every_section_is_checked_naming_the_key(overrides, message):
    with pytest.raises(InputError, match=message):
        run_with(**overrides)


def test_generation_of_a_model_and_dataset_layers_its_overrides():
    run = run_with(
        generation={"template": "T {question}"},
        models={"m": {"source": "s"}, "base": {"source": "s", "prompt_style": "plain"}},
        datasets={"d": {"source": "builtin"}, "math": {"source": "x.jsonl", "format": "gsm8k"},
                  "mine": {"source": "x.jsonl", "format": "gsm8k", "max_new_tokens": 64, "template": "U {question}"}},
    )
    assert run.generation_for("m", "d") == GenerationSettings(template="T {question}")
    assert run.generation_for("m", "math").max_new_tokens == 200
    mine = run.generation_for("base", "mine")
    assert (mine.max_new_tokens, mine.template, mine.prompt_style) == (64, "U {question}", "plain")


def test_the_extractor_of_a_model():
    run = run_with(models={"m": {"source": "s"}, "big": {"source": "s"}, "small": {"source": "s", "extractor": "big"}})
    assert [run.extractor_of(m) for m in ("m", "big", "small")] == ["m", "big", "big"]
    assert run_with(exact_answer={"extractor": "m"}).extractor_of("m") == "m"



def test_resolve_layers_puts_the_embeddings_row_first():
    assert resolve_layers("all", 3, embeddings=True) == [-1, 0, 1, 2]
    assert resolve_layers([2, 0], 3, embeddings=True) == [-1, 0, 2]
    assert resolve_layers([2, 0], 3) == [0, 2]
    with pytest.raises(InputError, match=r"layer\(s\) \[-1\] out of range"):
        resolve_layers([-1, 0], 3, embeddings=True)  # -1 is not a layer a config may name
