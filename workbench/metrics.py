"""Memorization scores of a text from its token log-probabilities: pure functions.

``logprobs`` are natural-log probabilities log p(x_t | x_<t) of the text's tokens. Each
function returns NaN for an empty input rather than raising, so a table of generations
where some never diverged still scores cleanly.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np


def _array(logprobs: Sequence[float]) -> np.ndarray:
    return np.asarray(logprobs, dtype=np.float64)


def log_perplexity(logprobs: Sequence[float]) -> float:
    """log PPL = -(1/N) Σ_t log p(x_t | x_<t)."""
    values = _array(logprobs)
    return float(-values.mean()) if values.size else math.nan


def perplexity(logprobs: Sequence[float]) -> float:
    """PPL = exp(-(1/N) Σ_t log p(x_t | x_<t)); low for text the model finds likely."""
    return math.exp(log_perplexity(logprobs))


def zlib_entropy(text: str) -> int:
    """Size in bytes of zlib.compress(UTF-8 bytes of text) (Carlini et al. 2021)."""
    return len(zlib.compress(text.encode("utf-8"))) if text else 0


def zlib_ratio(logprobs: Sequence[float], text: str) -> float:
    """log PPL / zlib entropy (Carlini et al. 2021): low when the model is far more
    confident than the text's compressibility explains — a memorization signal."""
    entropy = zlib_entropy(text)
    return log_perplexity(logprobs) / entropy if entropy else math.nan


def min_k_prob(logprobs: Sequence[float], k: float = 0.2) -> float:
    """Min-K% Prob (Shi et al. 2024): the mean of the lowest ⌈k·N⌉ token log-probs.

    High (close to 0) when even the least likely tokens are likely — seen-in-training text."""
    if not 0 < k <= 1:
        raise ValueError("k must be in (0, 1].")
    values = np.sort(_array(logprobs))
    if not values.size:
        return math.nan
    return float(values[: math.ceil(k * values.size)].mean())


def reference_ratio(target_logprobs: Sequence[float], reference_logprobs: Sequence[float]) -> float:
    """log PPL_target / log PPL_reference (Carlini et al. 2021): below 1 when the target
    model finds the text much likelier than a reference model that did not train on it."""
    reference = log_perplexity(reference_logprobs)
    return log_perplexity(target_logprobs) / reference if reference else math.nan
