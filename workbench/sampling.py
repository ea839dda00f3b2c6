"""Seeded sampling with per-token log-probabilities, and teacher-forced scoring, over the model contract.

The same jobs go to an in-process model (batched, ``workbench.decoding``) and to a served one
(concurrent requests, ``workbench.endpoint``). Sample j of prompt i has its own seed derived
from (seed, i, j), so the same seed gives the same outputs whatever the batch size or the
other prompts in the batch (over an endpoint: when the server honours seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.config import SamplingConfig
from workbench.contract import IncompleteRun, LanguageModel, Output, Progress

Prompt = str | Sequence[int]


@dataclass(frozen=True)
class Generation:
    prompt_index: int
    sample_index: int
    seed: int  # seed of this sample's own generator
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]  # generated tokens, without the stop token
    text: str  # decoded token_ids
    logprobs: tuple[float, ...]  # log p(token | prefix) under the model itself (temperature 1, unfiltered)
    stop_reason: str  # "eos" or "length"


def sample_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of one sample's generator: independent streams per (seed, prompt, sample).

    Kept below 2**53 so that it survives JSON and the browser's tables exactly."""
    return int(np.random.SeedSequence([seed, prompt_index, sample_index]).generate_state(1, np.uint64)[0] >> 11)


def prompt_ids(session: LanguageModel, prompt: Prompt) -> list[int]:
    """Token ids of a prompt given as text (tokenized) or as ids (used as they are)."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("The prompt is empty.")
        return session.tokenizer.encode(prompt)
    ids = [int(i) for i in prompt]
    if not ids:
        raise ValueError("The prompt has no tokens.")
    return ids


def sample(
    session: LanguageModel,
    prompts: Sequence[Prompt],
    cfg: SamplingConfig,
    progress: Progress | None = None,
    counts: Sequence[int] | None = None,
) -> list[Generation]:
    """``cfg.n`` continuations of every prompt (text, or token ids used as they are), or
    ``counts[i]`` of prompt i when counts are given.

    Returns generations ordered by prompt, then sample. Raises ValueError for no prompts,
    an empty prompt, or a prompt + max_new_tokens longer than the context window."""
    if not prompts:
        raise ValueError("No prompts to sample from.")
    if counts is not None and (len(counts) != len(prompts) or min(counts) < 0):
        raise ValueError("counts must give a non-negative number of samples for every prompt.")
    encoded = [prompt_ids(session, p) for p in prompts]
    context = session.info.context_length
    longest = max(map(len, encoded))
    if longest + cfg.max_new_tokens > context:
        raise ValueError(
            f"The longest prompt ({longest} tokens) plus max_new_tokens ({cfg.max_new_tokens}) "
            f"exceeds the context window of {context} tokens."
        )
    jobs = [(p, s) for p in range(len(prompts)) for s in range(cfg.n if counts is None else counts[p])]
    seeds = [sample_seed(cfg.seed, p, s) for p, s in jobs]

    def generation(job: int, output: Output) -> Generation:
        (p, s), (ids, logprobs, reason) = jobs[job], output
        return Generation(
            prompt_index=p,
            sample_index=s,
            seed=seeds[job],
            prompt_ids=tuple(encoded[p]),
            token_ids=tuple(ids),
            text=session.tokenizer.decode(ids, skip_special_tokens=True),
            logprobs=tuple(logprobs),
            stop_reason=reason,
        )

    try:
        outputs = session.sample_ids([encoded[p] for p, _ in jobs], seeds, cfg, progress)
    except IncompleteRun as err:
        err.completed = [generation(job, output) for job, output in sorted(err.completed.items())]
        raise
    if progress is not None:
        progress(1.0, f"Sampled {len(jobs)} continuations")
    return [generation(job, output) for job, output in enumerate(outputs)]


def text_logprobs(
    session: LanguageModel, texts: Sequence[str], batch_size: int = 16, progress: Progress | None = None
) -> list[np.ndarray]:
    """Teacher-forced log p(token_t | tokens_<t) of each text under the session's model.

    The first token has no prefix to condition on and is left out (unless the tokenizer
    adds a BOS token, which then serves as the prefix). Texts are cut to the context window."""
    context = session.info.context_length
    encoded = [session.tokenizer.encode(t)[:context] for t in texts]
    return session.score_ids(encoded, batch_size=batch_size, progress=progress)
