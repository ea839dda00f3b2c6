"""The in-process model: a ``Session`` holds the weights in this process, shared read-only.

One ``Session`` is shared by every user of a process (every browser tab of the app), so
every model call takes ``session.lock``. Models are loaded with eager attention so that
attention weights can be read for the attention-sink exploration; sampling and scoring switch
to SDPA for their calls (``workbench.decoding.sdpa_attention``). ``load_session`` also connects
to a served model (``workbench.endpoint``), the contract's other implementation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workbench import decoding
from workbench.config import ModelSpec, SamplingConfig
from workbench.contract import LanguageModel, ModelInfo, Output, Progress
from workbench.registry import (
    apply_adapter,
    default_device,
    default_dtype,
    report,
    resolve,
)


@dataclass(eq=False)
class Session(LanguageModel):
    """A loaded model shared read-only by all users; take ``lock`` around every model call."""

    spec: ModelSpec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    info: ModelInfo
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    has_weights = True
    full_distribution = True

    def sample_ids(
        self, prompts: Sequence[list[int]], seeds: Sequence[int], cfg: SamplingConfig, progress: Progress | None = None
    ) -> list[Output]:
        return decoding.sample_rows(self, prompts, seeds, cfg, progress)

    def score_ids(
        self, encoded: Sequence[list[int]], batch_size: int = 16, progress: Progress | None = None
    ) -> list[np.ndarray]:
        return decoding.score_rows(self, encoded, batch_size, progress)

    def score_moments_ids(
        self, encoded: Sequence[list[int]], batch_size: int = 16, progress: Progress | None = None
    ) -> list[np.ndarray]:
        return decoding.score_rows(self, encoded, batch_size, progress, moments=True)

    def card(self) -> dict[str, object]:
        return self.info.as_dict()

    def summary(self) -> str:
        info = self.info
        return (
            f"{info.name}: {info.n_layers} layers × {info.n_heads} heads, "
            f"{info.context_length:,}-token context, on {info.device} ({info.dtype})"
        )


def _model_info(spec: ModelSpec, model, source: str, device: torch.device, dtype: torch.dtype) -> ModelInfo:
    config = model.config.get_text_config()
    heads = config.num_attention_heads
    return ModelInfo(
        name=spec.name,
        source=source,
        architecture=(config.architectures or [type(model).__name__])[0],
        n_params=sum(p.numel() for p in model.parameters()),
        n_layers=config.num_hidden_layers,
        n_heads=heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        context_length=config.max_position_embeddings,
        vocab_size=config.vocab_size,
        dtype=str(dtype).removeprefix("torch."),
        device=str(device),
        adapter=spec.adapter,
    )


def load_session(spec: ModelSpec | str, progress: Progress | None = None) -> LanguageModel:
    """Load a model by registry name, Hugging Face id, local folder or ``.gguf`` path, or
    connect to a served one (``spec.endpoint``; see ``workbench.endpoint``).

    Raises ``ValueError`` (listing the registry names and what was tried) when the model
    cannot be found. ``progress(fraction, message)`` hears about slow steps such as the
    first conversion of a GGUF file."""
    if isinstance(spec, str):
        spec = ModelSpec(spec)
    if spec.endpoint is not None:
        from workbench.endpoint import (
            connect,  # the openai client is only needed for served models
        )

        return connect(spec, progress)
    try:
        device = torch.device(spec.device or default_device())
    except RuntimeError as err:
        raise ValueError(f"Invalid device {spec.device!r}: use cpu, cuda, cuda:N or mps.") from err
    dtype = getattr(torch, spec.dtype or default_dtype(device.type))
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"Device {str(device)!r} was asked for, but no such CUDA GPU is available here.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("Device 'mps' was asked for, but Apple's MPS backend is not available here.")
    report(progress, 0.0, f"Loading {spec.name}")
    model, tokenizer, source = resolve(spec, dtype, progress)
    if spec.adapter:
        model = apply_adapter(model, spec.adapter)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device).eval()
    report(progress, 1.0, f"Loaded {spec.name}")
    return Session(spec, model, tokenizer, device, _model_info(spec, model, source, device, dtype))
