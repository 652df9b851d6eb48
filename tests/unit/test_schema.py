"""The JSON schema and config/README.md's key tables are what the typed settings generate."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from fixture_data import TEST_CONFIG, config_with

from truthmap import schema
from truthmap.sections import Section
from truthmap.settings import ProbeSettings, RunSettings


def test_written_schema_and_readme_tables_agree_with_the_settings():
    assert schema.check() == [], "run `make config-docs` to regenerate them from scripts/truthmap/settings.py"


def every_key() -> list[tuple[str, type, str]]:
    """(config key, section class, field) for every key of the config."""
    out = []
    for name, cls in schema.sections().items():
        if cls is None:
            fields = [f for f in dataclasses.fields(RunSettings) if f.name not in schema.sections()]
            out += [(f.name, RunSettings, f.name) for f in fields]
        else:
            prefix = f"{name}.<name>" if name in ("models", "datasets") else name
            out += [(f"{prefix}.{f.name}", cls, f.name) for f in dataclasses.fields(cls)]
    return out


def schema_entry(key: str) -> dict:
    node = schema.config_schema()
    for part in key.split("."):
        node = node["additionalProperties"] if part == "<name>" else node["properties"][part]
    return node


@pytest.mark.parametrize(("key", "cls", "name"), every_key(), ids=[k for k, _, _ in every_key()])
def test_every_key_has_a_description_a_type_and_its_default_in_the_schema(key, cls, name):
    entry = schema_entry(key)
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    assert schema.docstrings(cls).get(name), f"{key}: no docstring in settings.py"
    assert entry["description"] == schema.docstrings(cls)[name]
    assert "type" in entry or "enum" in entry or "oneOf" in entry
    default = schema.default_of(field)
    assert entry.get("default", dataclasses.MISSING) == default


def test_schema_defaults_fill_a_minimal_config_with_the_settings_defaults():
    from snakemake.utils import validate

    config = {"models": {"m": {"source": "embedded:smollm2-135m-instruct"}}, "datasets": {"d": {"source": "builtin"}}}
    validate(config, str(schema.SCHEMA_PATH))
    filled = RunSettings.from_config(config)
    assert filled.probe == ProbeSettings()
    for name, cls in schema.sections().items():
        if cls is not None and name not in ("models", "datasets"):
            assert config[name] == {f.name: schema.default_of(f) for f in dataclasses.fields(cls)}
    assert config["models"]["m"]["dtype"] == "auto" and config["datasets"]["d"]["columns"] == {}


def test_every_section_has_a_readme_table_and_tables_follow_docstrings(monkeypatch):
    text = schema.README_PATH.read_text(encoding="utf-8")
    assert {m["name"] for m in schema.BLOCK.finditer(text)} == set(schema.sections())
    monkeypatch.setattr(schema, "docstrings", lambda cls: {f.name: "changed" for f in dataclasses.fields(cls)})
    assert "| `C` | `1.0` | changed |" in schema.key_table("probe")
    with pytest.raises(ValueError, match="no <!-- keys: NAME --> block for"):
        schema.readme_text(text.replace("<!-- keys: plot -->", "<!-- nothing -->"))


def test_the_schema_file_is_marked_generated():
    text = schema.SCHEMA_PATH.read_text(encoding="utf-8")
    assert text.startswith(schema.HEADER)
    assert yaml.safe_load(text)["$schema"].endswith("2020-12/schema")


def test_sections_cover_every_settings_class():
    documented = {cls for cls in schema.sections().values() if cls is not None} | {RunSettings}
    assert documented == set(Section.__subclasses__())


# --------------------------------------------------------------------------- what the schema refuses

BASE = yaml.safe_load(TEST_CONFIG.read_text())


def schema_errors(config: dict) -> str:
    """The schema's verdict on a config, in-process (what the workflow checks first): '' when valid."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema.SCHEMA_PATH))
    except WorkflowError as err:
        return str(err)
    return ""


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (config_with("probe.Cee", 1.0), "'Cee' was unexpected"),
        (config_with("activations.sites", ["attention"]), "'attention' is not one of"),
        (config_with("activations.sites", ["residual", "residual"]), "has non-unique elements"),
        (config_with("models.SmolLM2-135M-Instruct.trust_remote_code", "yes"), "'yes' is not of type 'boolean'"),
        (config_with("models.SmolLM2-135M-Instruct.allow_pickle", 1), "1 is not of type 'boolean'"),
        (config_with("models.SmolLM2-135M-Instruct.dtype", "fp8"), "'fp8' is not one of"),
        (config_with("models.x; rm -rf ~", {"source": "embedded:smollm2-135m-instruct"}), "'x; rm -rf ~' does not match"),
        (config_with("datasets.$(reboot)", {"source": "builtin"}), "'$(reboot)' does not match"),
        (config_with("layers", [0, "1"]), "[0, '1'] is not valid under any of the given schemas"),
        (config_with("split.test_fraction", 0), "0 is less than or equal to the minimum of 0"),
        (config_with("plot.annotate", "no"), "'no' is not of type 'boolean'"),
        ({"datasets": BASE["datasets"]}, "'models' is a required property"),
    ],
)
def test_schema_refuses_wrong_types_and_names_a_shell_could_misread(config, message):
    assert message in schema_errors(config)


def test_safety_opt_ins_default_to_off():
    config = yaml.safe_load(yaml.safe_dump(BASE))
    assert schema_errors(config) == ""
    entry = config["models"]["SmolLM2-135M-Instruct"]
    assert entry["trust_remote_code"] is False and entry["allow_pickle"] is False


@pytest.mark.parametrize(
    ("change", "message", "hint"),
    [
        ({"shards": "two"}, "config key 'shards': 'two' is not of type 'integer'", None),
        ({"shard": 2}, "config: Additional properties are not allowed ('shard' was unexpected)",
         "the keys the config takes: activations, datasets,"),
        ({"probe": {"test_fraction": 0.3}},
         "config key 'probe': Additional properties are not allowed ('test_fraction' was unexpected)",
         "probe.test_fraction is now split.test_fraction"),
        ({"split": {"test_fraction": 1.5}}, "config key 'split.test_fraction': 1.5 is greater than or equal to", None),
    ],
)
def test_check_config_says_the_key_in_one_line_with_a_hint(change, message, hint):
    from truthmap.files import InputError
    from truthmap.schema import check_config

    config = {"models": {"m": {"source": "embedded:smollm2-135m-instruct"}}, "datasets": {"d": {"source": "builtin"}}}
    with pytest.raises(InputError) as err:
        check_config({**config, **change})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert (err.value.hint or "").startswith(hint or "") and (hint is None) == (err.value.hint is None)


def test_check_config_passes_a_good_config():
    from truthmap.schema import check_config

    check_config({"models": {"m": {"source": "embedded:smollm2-135m-instruct"}}, "datasets": {"d": {"source": "builtin"}}})
