"""Where a model's weights go: ``models.<name>.device_map`` checked, resolved and applied.

A placement is one device (``cpu``, ``cuda``, ``cuda:1``), one of accelerate's strategies over
the visible GPUs (``balanced``, ``balanced_low_0``, ``sequential``), or a mapping from module
names to devices (``{"model.layers.0": 0, "model.layers.1": "disk", ...}``). ``auto`` is one GPU
when the weights fit on it with :data:`GPU_HEADROOM`, else accelerate's spread over every
visible GPU (and past them to CPU memory when even they are too small), and the CPU when there
is no GPU. Weights load straight onto their devices in the run's dtype, never first whole on
the CPU.

A model spread over devices runs with accelerate's hooks, which move each block's inputs to the
block's device; a run feeds its inputs to the device of the input embeddings
(:func:`input_device`) and reads captures wherever a layer lives.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from truthmap.files import InputError

#: Weights take this much more than their bytes once loaded (buffers, allocator blocks, a
#: first batch): a GPU holds a model whole only with this room to spare.
GPU_HEADROOM = 1.2

#: accelerate's placements over the visible GPUs, by name.
STRATEGIES = ("balanced", "balanced_low_0", "sequential")

_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+)$")
_MAPPED = re.compile(r"^(cpu|disk|cuda|cuda:\d+)$")


def check_device_map(value: Any, key: str) -> None:
    """An :class:`InputError` naming ``key`` unless ``value`` is a placement (module docstring)."""
    if isinstance(value, str):
        if value == "auto" or value in STRATEGIES or _DEVICE.match(value):
            return
        raise InputError(
            f"config key {key!r}: {value!r} is not a placement; expected auto, cpu, cuda, cuda:<index>, "
            f"{', '.join(STRATEGIES)} or a mapping of module names to devices"
        )
    if not value:
        raise InputError(f"config key {key!r}: an empty mapping places no module; leave the key out for auto")
    for module, device in value.items():
        ok = (isinstance(device, int) and not isinstance(device, bool) and device >= 0) or (
            isinstance(device, str) and _MAPPED.match(device))
        if not ok:
            raise InputError(
                f"config key {key!r}: module {module!r} is mapped to {device!r}; expected cpu, disk, cuda, "
                "cuda:<index> or a GPU index"
            )


def gpus_needed(weight_bytes: int, gpu_bytes: float) -> int:
    """GPUs whose memory holds the weights with :data:`GPU_HEADROOM`."""
    return max(1, math.ceil(weight_bytes * GPU_HEADROOM / gpu_bytes))


def resolve(value: str | Mapping[str, str | int], weight_bytes: int,
            free_gpu_bytes: Sequence[int]) -> str | dict[str, str | int]:
    """What to hand transformers' ``from_pretrained(device_map=...)`` for a configured placement, given
    the weights' bytes in the run's dtype and each visible GPU's free bytes (empty: no GPU).

    ``auto`` becomes ``cpu`` without a GPU, ``cuda:0`` when the weights fit on the first GPU, and
    accelerate's ``auto`` spread otherwise; anything else is used as given."""
    if value != "auto":
        return dict(value) if isinstance(value, Mapping) else value
    if not free_gpu_bytes:
        return "cpu"
    if gpus_needed(weight_bytes, free_gpu_bytes[0]) == 1:
        return "cuda:0"
    return "auto"


def needs_offload_folder(device_map: str | Mapping[str, str | int]) -> bool:
    """Whether a resolved placement may put weights on disk (a mapping naming ``disk``, or accelerate's
    spread, which overflows to disk when GPUs and CPU memory are full)."""
    if isinstance(device_map, Mapping):
        return "disk" in device_map.values()
    return device_map in ("auto", *STRATEGIES)


def execution_device(module):
    """The device a module computes on: the one accelerate's hook moves its inputs to when it has
    one (a block whose weights wait on disk or in CPU memory), else its weights' device."""
    import torch

    hook = getattr(module, "_hf_hook", None)
    device = getattr(hook, "execution_device", None)
    if device is not None:
        return torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    for param in module.parameters():
        return param.device
    return torch.device("cpu")


def input_device(model):
    """Where a model's input ids go: the device its input embeddings compute on."""
    return execution_device(model.get_input_embeddings())


def block_shares(blocks) -> dict:
    """Each device's share of a model's decoder ``blocks`` (those whose weights wait on disk or in
    CPU memory count for the device they compute on)."""
    from collections import Counter

    counts = Counter(execution_device(block) for block in blocks)
    return {device: n / len(blocks) for device, n in counts.items()}
