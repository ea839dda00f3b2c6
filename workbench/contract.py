"""The model contract: what every exploration may ask of a model, in-process or served.

``workbench.session.Session`` (weights in this process) and ``workbench.endpoint.EndpointSession``
(an OpenAI-compatible server) implement it; nothing else branches on which one it has.
Black-box explorations use ``sample_ids`` and ``score_ids``; white-box ones call
``require_weights`` first, the one way a model refuses.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
from transformers import PreTrainedTokenizerBase

from workbench.config import ModelSpec, SamplingConfig

Progress = Callable[[float, str], None]
"""Progress callback: ``progress(fraction_done, message)``."""


def scaled_progress(progress: Progress | None, low: float, high: float, label: str = "") -> Progress | None:
    """Report a sub-task's progress 0–1 as low–high of the whole, its messages prefixed by ``label``."""
    if progress is None:
        return None
    return lambda fraction, message: progress(low + (high - low) * fraction, label + message)


Output = tuple[list[int], list[float], str]
"""One sampled continuation: token ids (without the stop token), their log-probs, stop reason ("eos" or "length")."""


class IncompleteRun(ValueError):
    """A model failed part-way. ``completed`` holds what came back: job index → ``Output`` from the
    model, and the list of those ``Generation``s once ``sampling.sample`` passes it on."""

    def __init__(self, message: str, completed: dict[int, Output]):
        super().__init__(message)
        self.completed = completed


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    architecture: str
    n_params: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    context_length: int
    vocab_size: int
    dtype: str
    device: str
    adapter: str | None

    def as_dict(self) -> dict:
        return asdict(self)


class LanguageModel(ABC):
    """A model shared read-only by all users of a process; implementations take ``lock`` around model calls."""

    spec: ModelSpec
    tokenizer: PreTrainedTokenizerBase
    info: ModelInfo
    lock: threading.RLock
    has_weights: ClassVar[bool]
    """Weights readable here (attention, fine-tuning, weight differences)."""
    full_distribution: ClassVar[bool]
    """The whole next-token distribution, or only the log-probs of the tokens sampled or scored."""

    @abstractmethod
    def sample_ids(
        self, prompts: Sequence[list[int]], seeds: Sequence[int], cfg: SamplingConfig, progress: Progress | None = None
    ) -> list[Output]:
        """One continuation of each prompt, drawn with its own seed; ``cfg.n`` is ignored (one per row)."""

    @abstractmethod
    def score_ids(
        self, encoded: Sequence[list[int]], batch_size: int = 16, progress: Progress | None = None
    ) -> list[np.ndarray]:
        """Teacher-forced log p(token_t | tokens_<t), t ≥ 1, of each row (empty for a row under two
        tokens); ``batch_size`` rows at a time where the model batches them."""

    def score_moments_ids(
        self, encoded: Sequence[list[int]], batch_size: int = 16, progress: Progress | None = None
    ) -> list[np.ndarray]:
        """Like ``score_ids``, each row an array (3, T): log p(token_t), and the mean and standard
        deviation of log p(z) over the whole next-token distribution (Min-K%++ needs them).
        Only a model with ``full_distribution``; any other raises ValueError."""
        raise ValueError(
            f"{self.spec.name} gives only the log-probs of the tokens it samples or scores; this score needs the "
            "whole next-token distribution, so it runs on a model loaded in this process."
        )

    @abstractmethod
    def card(self) -> dict[str, object]:
        """The facts to show about the model, field → value (JSON-ready)."""

    @abstractmethod
    def summary(self) -> str:
        """One sentence: which model this is and where it runs."""

    def served_record(self, cfg: SamplingConfig | None = None) -> dict | None:
        """What results made over a server were made with (None for an in-process model)."""
        return None

    def reproducibility_note(self) -> str | None:
        """Whose promise the reproducibility of its samples is, when not the workbench's."""
        return None

    def weights_refusal(self, what: str) -> str | None:
        """Why ``what`` (a white-box exploration) cannot run on this model, or None when it can."""
        return None

    def require_weights(self, what: str) -> None:
        """Raise ValueError when ``what`` (a white-box exploration) is asked of a model without weights."""
        refusal = self.weights_refusal(what)
        if refusal is not None:
            raise ValueError(refusal)
