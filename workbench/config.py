"""Frozen, hashable settings objects; being hashable lets them serve as cache keys."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class ModelSpec:
    """What to load.

    name: a registry name (see ``workbench.session.registry_names()``), a Hugging Face
        model id, a local model folder or a path to a ``.gguf`` file.
    device / dtype: ``None`` picks once per process: cuda + bfloat16 when a GPU is
        present, else cpu + float32.
    adapter: optional folder of a peft (LoRA) adapter applied on top of the model.
    trust_remote_code: lets a Hub model run its own Python code; off unless asked for.
    """

    name: str = DEFAULT_MODEL
    device: str | None = None
    dtype: str | None = None
    adapter: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("Model name is empty: give a registry name, a Hugging Face id or a path.")
        object.__setattr__(self, "name", self.name.strip())
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"Unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}.")
        if self.device is not None and self.device.split(":")[0] not in DEVICES:
            raise ValueError(f"Unknown device {self.device!r}; choose one of {', '.join(DEVICES)}.")


def cache_dir() -> Path:
    """Folder for generated artefacts (converted models, indexes): ``$WORKBENCH_CACHE``
    or ``~/.cache/workbench``."""
    return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench")


def startup_model() -> str:
    """The model the app and CLI start on: ``$WORKBENCH_MODEL`` or the embedded default."""
    return os.environ.get("WORKBENCH_MODEL") or DEFAULT_MODEL
