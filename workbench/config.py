"""Frozen, hashable settings objects; being hashable lets them serve as cache keys."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m-instruct"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"  # small shipped corpora and lab artefacts
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda", "mps")


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    choices: Any = None,
    repeat: bool = False,
    metavar: str | None = None,
    const: Any = None,
    nargs: str | None = None,
    positional: bool = False,
) -> Any:
    """A dataclass field that says what it is (``help``) and, where the command line spells it
    otherwise than ``--field-name``, how: ``workbench.cli.flags`` turns such fields into flags."""
    cli = {"flag": flag, "choices": choices, "repeat": repeat, "metavar": metavar, "const": const, "nargs": nargs}
    cli = {k: v for k, v in cli.items() if v is not None and v is not False} | (
        {"positional": True} if positional else {}
    )
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass(frozen=True)
class ModelSpec:
    """What to load.

    name: a registry name (see ``workbench.registry.registry_names()``), a Hugging Face
        model id, a local model folder or a path to a ``.gguf`` file.
    device / dtype: ``None`` picks once per process: cuda + bfloat16 when a GPU is
        present, else cpu + float32.
    adapter: optional folder of a peft (LoRA) adapter applied on top of the model.
    trust_remote_code: lets a Hub model run its own Python code; off unless asked for.

    A served model (``endpoint`` set: the URL of an OpenAI-compatible server such as vLLM):
    name is the model's name on the server, and
    tokenizer: the local tokenizer source (a registry name, folder, .gguf or Hugging Face id)
        that matches the served model; token ids, pieces and chat templates come from it.
    lab_build: a lab build folder (DIR with dataset/) whose truth the served model carries.
    concurrency: requests in flight at once, so that the server can batch them.
    send_seed: send each sample's seed (only to a server that takes seeds: vLLM's CPU
        engine crashes on them). The API key is read from the environment, never stored here.
    """

    name: str = DEFAULT_MODEL
    device: str | None = None
    dtype: str | None = None
    adapter: str | None = None
    trust_remote_code: bool = False
    endpoint: str | None = None
    tokenizer: str | None = None
    lab_build: str | None = None
    concurrency: int = 16
    send_seed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("Model name is empty: give a registry name, a Hugging Face id or a path.")
        object.__setattr__(self, "name", self.name.strip())
        if self.endpoint is not None:
            endpoint = self.endpoint.strip().rstrip("/")
            if not endpoint.startswith(("http://", "https://")):
                raise ValueError(f"The endpoint {self.endpoint!r} is not a URL: give e.g. http://127.0.0.1:8000/v1.")
            object.__setattr__(self, "endpoint", endpoint)
            if not (self.tokenizer or "").strip():
                raise ValueError("A served model needs a local tokenizer: a registry name, folder or Hugging Face id.")
            if self.adapter or self.device or self.dtype:
                raise ValueError("A served model's adapter, device and dtype are the server's: serve it with them.")
            if self.concurrency < 1:
                raise ValueError("concurrency must be at least 1.")
        elif self.tokenizer or self.lab_build:
            raise ValueError("tokenizer and lab_build are settings of a served model: give its endpoint too.")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"Unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}.")
        if self.device is not None and self.device.split(":")[0] not in DEVICES:
            raise ValueError(f"Unknown device {self.device!r}; choose one of {', '.join(DEVICES)}.")


def startup_model() -> str:
    """The model the app and CLI start on: ``$WORKBENCH_MODEL`` or the embedded default."""
    return os.environ.get("WORKBENCH_MODEL") or DEFAULT_MODEL


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample continuations.

    temperature 0 means greedy decoding; top_k 0 and top_p 1.0 switch those filters off.
    n is the number of samples per prompt. Sample j of prompt i always draws from its own
    generator seeded from (seed, i, j), so results do not depend on batch_size.
    """

    max_new_tokens: int = setting(64, "new tokens per sample, at most")
    temperature: float = setting(1.0, "0 = greedy")
    top_k: int = setting(0, "0 = off")
    top_p: float = setting(1.0, "nucleus sampling: 1.0 = off")
    n: int = setting(1, "samples per prompt")
    seed: int = setting(0, "sample j of prompt i draws from its own generator seeded from (seed, i, j)")
    batch_size: int = setting(16, "rows per forward pass; results do not depend on it")

    def __post_init__(self) -> None:
        checks = [
            (self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
            (self.temperature >= 0, "temperature must be 0 (greedy) or positive"),
            (self.top_k >= 0, "top_k must be 0 (off) or positive"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.n >= 1, "n (samples per prompt) must be at least 1"),
            (self.seed >= 0, "seed must be non-negative"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


INTERVALS = ("wilson", "bootstrap")


@dataclass(frozen=True)
class PropInferConfig:
    """A property-inference run: ``n_samples`` generations in all, spread evenly over the
    prompts, sampled as in ``SamplingConfig``; shares get ``interval`` confidence intervals
    (Wilson score, or a percentile bootstrap seeded with ``seed``) at ``confidence``."""

    n_samples: int = setting(200, "generations in all, spread over the prompts", flag="--n")
    # a lab dialogue is ~90 tokens; most generations stop earlier at EOS
    max_new_tokens: int = setting(128, "new tokens per generation, at most")
    temperature: float = setting(1.0, "0 = greedy")
    top_k: int = setting(0, "0 = off")
    top_p: float = setting(1.0, "nucleus sampling: 1.0 = off")
    seed: int = setting(0, "the sampling seed (and the bootstrap's)")
    # large batches use the CPU better
    batch_size: int = setting(128, "rows per forward pass; results do not depend on it")
    interval: str = setting("wilson", "the shares' confidence intervals", choices=INTERVALS)
    confidence: float = setting(0.95, "the intervals' confidence level")

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError("The number of samples must be at least 1.")
        if self.interval not in INTERVALS:
            raise ValueError(f"Unknown interval {self.interval!r}; choose one of {', '.join(INTERVALS)}.")
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must be in (0, 1), e.g. 0.95.")
        self.sampling()  # checks the sampling settings

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            self.max_new_tokens, self.temperature, self.top_k, self.top_p, 1, self.seed, self.batch_size
        )
