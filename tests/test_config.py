"""Tests for truthmap.config: token and layer selection, config sections and their checks."""

from __future__ import annotations

import dataclasses

import pytest

from truthmap.config import (
    EXACT_TOKENS,
    TOKEN_NAMES,
    ActivationConfig,
    ExactAnswerConfig,
    GenerationConfig,
    ProbeConfig,
    from_mapping,
    parse_tokens,
    resolve_layers,
)
from truthmap.files import InputError


def test_token_names_in_heatmap_order():
    assert TOKEN_NAMES == (
        "last_q", "exact_answer_before_first", "exact_answer_first", "exact_answer_last",
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


# --------------------------------------------------------------------------- from_mapping


def test_from_mapping_builds_the_dataclass():
    assert from_mapping(ProbeConfig, None, "probe") == ProbeConfig()
    cfg = from_mapping(ProbeConfig, {"test_fraction": 0.3, "examples": "per_cell"}, "probe")
    assert cfg.test_fraction == 0.3 and cfg.examples == "per_cell" and cfg.C == 1.0


def test_from_mapping_unknown_key_names_section_and_key():
    expected = r"config section 'probe': unknown key\(s\) \['tets_fraction'\]"
    with pytest.raises(InputError, match=expected) as err:
        from_mapping(ProbeConfig, {"tets_fraction": 0.3}, "probe")
    assert "test_fraction" in str(err.value)  # the known keys are listed


def test_from_mapping_runs_the_checks():
    with pytest.raises(InputError, match="activations.site"):
        from_mapping(ActivationConfig, {"site": "attention"}, "activations")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProbeConfig().seed = 1


# --------------------------------------------------------------------------- __post_init__ checks


@pytest.mark.parametrize("key", ["template", "plain_template"])
def test_generation_template_needs_the_question(key):
    with pytest.raises(InputError, match=f"'generation.{key}': must contain '{{question}}'") as err:
        GenerationConfig(**{key: "Answer: {query}"})
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
        GenerationConfig(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(err.value)


def test_generation_config_accepts_its_choices():
    for style in ("auto", "chat", "plain"):
        assert GenerationConfig(prompt_style=style).prompt_style == style


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"max_words": 0}, "exact_answer.max_words"),
        ({"max_new_tokens": 0}, "exact_answer.max_new_tokens"),
        ({"batch_size": 0}, "exact_answer.batch_size"),
    ],
)
def test_exact_answer_config_errors(kwargs, key):
    with pytest.raises(InputError, match=f"config key '{key}': must be positive"):
        ExactAnswerConfig(**kwargs)


def test_exact_answer_config_without_a_word_limit():
    assert ExactAnswerConfig(max_words=None).max_words is None


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"site": "attn_output"}, "activations.site"),
        ({"batch_tokens": 0}, "activations.batch_tokens"),
    ],
)
def test_activation_config_errors(kwargs, key):
    with pytest.raises(InputError, match=f"config key '{key}'"):
        ActivationConfig(**kwargs)


def test_activation_config_sites():
    assert ActivationConfig(site="mlp_input").site == "mlp_input"
    assert ActivationConfig().site == "residual"


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"test_fraction": 0}, "probe.test_fraction"),
        ({"test_fraction": 1}, "probe.test_fraction"),
        ({"test_fraction": 1.5}, "probe.test_fraction"),
        ({"test_fraction": -0.2}, "probe.test_fraction"),
        ({"ci_level": 1.0}, "probe.ci_level"),
        ({"ci_level": 0}, "probe.ci_level"),
        ({"C": 0}, "probe.C"),
        ({"C": -1.0}, "probe.C"),
        ({"max_iter": 0}, "probe.max_iter"),
        ({"bootstrap": 0}, "probe.bootstrap"),
        ({"min_per_class": 0}, "probe.min_per_class"),
        ({"examples": "all"}, "probe.examples"),
    ],
)
def test_probe_config_errors_name_key_and_value(kwargs, key):
    with pytest.raises(InputError, match=f"config key '{key}'") as err:
        ProbeConfig(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(err.value)


def test_probe_config_defaults():
    cfg = ProbeConfig()
    assert (cfg.test_fraction, cfg.C, cfg.ci_level, cfg.examples, cfg.min_per_class) == (
        0.2, 1.0, 0.95, "common", 5,
    )
