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
from dataclasses import asdict
from pathlib import Path

from truthmap.files import InputError, write_json
from truthmap.models import MANIFEST, ModelInfo, describe, load_tokenizer, pick_device, prepared_folder


def prepare_random(config_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   *, device: str = "auto", seed: int = 0) -> ModelInfo:
    """Make ``out_dir`` a prepared model folder of ``config_dir``'s shape with random weights and
    ``tokenizer_dir``'s tokenizer (a prepared model folder); return its manifest.

    The weights are drawn on ``device`` and the folder is assembled as
    :func:`truthmap.models.prepared_folder` assembles one."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config_dir, out_dir = Path(config_dir), Path(out_dir)
    if not (config_dir / "config.json").is_file():
        raise InputError(f"{config_dir}: no config.json to take a model's shape from")
    config = AutoConfig.from_pretrained(config_dir)
    vocab = int(config.get_text_config().vocab_size)
    tokenizer = load_tokenizer(tokenizer_dir)
    if len(tokenizer) > vocab:
        raise InputError(f"{config_dir}/config.json: vocab_size {vocab} is smaller than the {len(tokenizer)} ids "
                         f"of the tokenizer in {tokenizer_dir}", hint="give a tokenizer whose ids fit the model")
    with prepared_folder(out_dir) as tmp:
        torch.manual_seed(seed)
        with torch.device(pick_device(device)):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(tmp)
        del model
        tokenizer.save_pretrained(tmp)
        info = describe(out_dir.name, f"random:{config_dir}", tmp, Path("."), False, False)
        write_json(tmp / MANIFEST, asdict(info))
    return ModelInfo.read(out_dir)
