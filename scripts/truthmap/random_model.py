"""A prepared model folder of a real model's shape with random weights: timings at its size, offline.

How fast extraction, generation and the probes run, and how much memory they take, depends on
a model's shape, not on its weights' values. ``make plan`` and ``make bench`` need those figures
for the model a run will use (an 8B or 70B model on a GPU node), but this environment has no
such weights. :func:`prepare_random` builds one from its ``config.json`` alone: weights drawn as
transformers initialises a new model (seeded), in bfloat16, saved as safetensors beside the
config and the tokenizer of a prepared model (the embedded SmolLM2's by default), whose ids
must fit the config's vocabulary. The answers such a model gives are noise; its passes cost
what the real model's cost::

    PYTHONPATH=scripts .venv/bin/python -m truthmap.bench --shape path/to/Llama-8B
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from truthmap.files import InputError, write_json
from truthmap.models import MANIFEST, ModelInfo, describe, load_tokenizer, pick_device

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "tokenizer.model", "vocab.json", "merges.txt")
"""The files of a Hugging Face folder that make its tokenizer (those it has)."""


def prepare_random(config_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   *, device: str = "auto", seed: int = 0) -> ModelInfo:
    """Make ``out_dir`` a prepared model folder of ``config_dir``'s shape with random weights and
    ``tokenizer_dir``'s tokenizer (a prepared model folder); return its manifest.

    The weights are drawn on ``device`` (a GPU draws an 8B model's in seconds) and the folder is
    assembled under a temporary name, then renamed into place."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config_dir, out_dir = Path(config_dir), Path(out_dir)
    if not (config_dir / "config.json").is_file():
        raise InputError(f"{config_dir}: no config.json to take a model's shape from")
    config = AutoConfig.from_pretrained(config_dir)
    vocab = int(config.get_text_config().vocab_size)
    tokens = len(load_tokenizer(tokenizer_dir))
    if tokens > vocab:
        raise InputError(f"{config_dir}/config.json: vocab_size {vocab} is smaller than the {tokens} ids of the "
                         f"tokenizer in {tokenizer_dir}", hint="give a tokenizer whose ids fit the model")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        torch.manual_seed(seed)
        with torch.device(pick_device(device)):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(tmp)
        del model
        source = Path(ModelInfo.read(tokenizer_dir).weights_dir)
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, tmp / name)
        info = describe(out_dir.name, f"random:{config_dir}", tmp, Path("."), False, False)
        write_json(tmp / MANIFEST, asdict(info))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelInfo.read(out_dir)
