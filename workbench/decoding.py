"""The in-process model's batched decoder and scorer (torch).

Prompts are left-padded into batches and decoded with the model's KV cache. Sample j of
prompt i draws from its own ``torch.Generator`` seeded with its own seed, so the same seed
gives the same outputs whatever the batch size or the other prompts in the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from transformers import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from workbench.config import SamplingConfig
from workbench.contract import Output, Progress


def _stop_ids(session) -> set[int]:
    ids = {session.tokenizer.eos_token_id}
    configured = getattr(session.model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}


def _left_padded(rows: list[list[int]], pad_id: int, device: torch.device):
    """(input_ids, attention_mask, position_ids) of rows padded on the left; positions count real tokens."""
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, ids in enumerate(rows):
        input_ids[r, width - len(ids) :] = torch.tensor(ids)
        attention[r, width - len(ids) :] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)
    return input_ids, attention, (attention.cumsum(-1) - 1).clamp(min=0)


def _warpers(cfg: SamplingConfig) -> LogitsProcessorList:
    warpers = LogitsProcessorList()
    if cfg.temperature not in (0, 1):
        warpers.append(TemperatureLogitsWarper(cfg.temperature))
    if cfg.top_k > 0:
        warpers.append(TopKLogitsWarper(cfg.top_k))
    if cfg.top_p < 1:
        warpers.append(TopPLogitsWarper(cfg.top_p))
    return warpers


@contextmanager
def sdpa_attention(model) -> Iterator[None]:
    """SDPA attention for the duration: models load with eager attention so that attention
    weights can be read, which sampling and scoring do not need. Take the session lock first."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    previous = inner.config._attn_implementation
    try:
        inner.set_attn_implementation("sdpa")
    except (ValueError, ImportError):  # an architecture without SDPA keeps its attention
        yield
        return
    try:
        yield
    finally:
        inner.set_attn_implementation(previous)


def _draw(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row by inverse CDF: each row's generator draws one uniform, so a row's
    token does not depend on the other rows, and the whole batch is drawn in one operation."""
    uniforms = torch.cat([torch.rand(1, generator=g, device=probs.device) for g in generators])
    cdf = probs.cumsum(-1)
    targets = uniforms[:, None] * cdf[:, -1:]  # scaled by the row's total: its sum is 1 up to rounding
    return torch.searchsorted(cdf, targets, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def _sample_batch(session, rows, seeds, cfg, stop_ids, on_step) -> list[Output]:
    """Sample the rows together. Identical prompts are run through the model once and their
    cache shared; finished rows leave the batch once a quarter of it has finished."""
    model, device = session.model, session.device
    pad_id = session.tokenizer.pad_token_id
    unique = list(dict.fromkeys(tuple(r) for r in rows))
    source = torch.tensor([unique.index(tuple(r)) for r in rows], device=device)
    input_ids, attention, position_ids = _left_padded([list(u) for u in unique], pad_id, device)
    out = model(
        input_ids=input_ids, attention_mask=attention, position_ids=position_ids, use_cache=True, logits_to_keep=1
    )
    cache = out.cache
    cache.reorder_cache(source)
    logits = out.logits[:, -1, :].float()[source]
    attention, position_ids = attention[source], position_ids[source, -1:]
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    warpers = _warpers(cfg)
    stop = torch.tensor(sorted(stop_ids), device=device)
    batch = len(rows)
    tokens = torch.full((batch, cfg.max_new_tokens), pad_id, dtype=torch.long, device=device)
    chosen_logprobs = torch.zeros((batch, cfg.max_new_tokens), device=device)
    lengths = torch.full((batch,), cfg.max_new_tokens, dtype=torch.long, device=device)
    stopped = torch.zeros(batch, dtype=torch.bool, device=device)
    active = torch.arange(batch, device=device)  # the rows still in the batch, in batch order
    for step in range(cfg.max_new_tokens):
        if cfg.temperature == 0:
            next_ids = logits.argmax(-1)
        else:
            probs = torch.softmax(warpers(None, logits), dim=-1)
            next_ids = _draw(probs, [generators[r] for r in active.tolist()])
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, next_ids[:, None]).squeeze(-1)
        running = ~stopped[active]
        newly_stopped = torch.isin(next_ids, stop) & running
        lengths[active[newly_stopped]] = step
        stopped[active[newly_stopped]] = True
        running &= ~newly_stopped
        tokens[active[running], step] = next_ids[running]
        chosen_logprobs[active[running], step] = logprobs[running]
        on_step(step + 1)
        if bool(stopped.all()) or step + 1 == cfg.max_new_tokens:
            break
        if (~running).sum() * 4 >= len(active):  # drop the finished rows: their cache is dead weight
            keep = running.nonzero().squeeze(-1)
            cache.reorder_cache(keep)
            active, next_ids, attention, position_ids = (
                active[keep],
                next_ids[keep],
                attention[keep],
                position_ids[keep],
            )
        attention = torch.cat([attention, torch.ones((len(active), 1), dtype=attention.dtype, device=device)], dim=-1)
        position_ids = position_ids + 1
        out = model(
            input_ids=next_ids[:, None],
            attention_mask=attention,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
        )
        cache, logits = out.cache, out.logits[:, -1, :].float()
    results = []
    for r in range(batch):
        n = int(lengths[r])
        results.append(
            (tokens[r, :n].tolist(), chosen_logprobs[r, :n].tolist(), "eos" if bool(stopped[r]) else "length")
        )
    return results


def sample_rows(
    session, rows: Sequence[list[int]], seeds: Sequence[int], cfg: SamplingConfig, progress: Progress | None
) -> list[Output]:
    """One continuation of each row, ``cfg.batch_size`` rows at a time."""
    stop_ids = _stop_ids(session)
    outputs: list[Output] = []
    total_steps = len(rows) * cfg.max_new_tokens
    for start in range(0, len(rows), cfg.batch_size):
        batch = rows[start : start + cfg.batch_size]
        done_before = start * cfg.max_new_tokens

        def on_step(step: int, _done=done_before, _size=len(batch)) -> None:
            if progress is not None:
                progress((_done + step * _size) / total_steps, f"Sampling {start + _size}/{len(rows)}")

        # Locked per batch, not per call: other users of the shared model get turns between batches.
        with session.lock, torch.inference_mode(), sdpa_attention(session.model):
            outputs += _sample_batch(session, list(batch), seeds[start : start + len(batch)], cfg, stop_ids, on_step)
    return outputs


def score_rows(
    session, encoded: Sequence[list[int]], batch_size: int, progress: Progress | None, moments: bool = False
) -> list[np.ndarray]:
    """Teacher-forced log-probs of each row (empty for a row under two tokens), ``batch_size`` rows at a time.

    With ``moments``, each row is an array (3, T): the token's log-prob, and the mean μ_t and standard
    deviation σ_t of log p(z | x_<t) over the whole next-token distribution z ~ p(· | x_<t)."""
    empty = np.zeros((3, 0)) if moments else np.zeros(0)
    results: list[np.ndarray] = []
    for start in range(0, len(encoded), batch_size):
        rows = encoded[start : start + batch_size]
        scored = [r for r in rows if len(r) >= 2]
        if not scored:
            results.extend(empty for _ in rows)
            continue
        input_ids, attention, position_ids = _left_padded(scored, session.tokenizer.pad_token_id, session.device)
        with session.lock, torch.inference_mode(), sdpa_attention(session.model):
            logits = session.model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids).logits
            distribution = torch.log_softmax(logits[:, :-1].float(), -1)
            values = distribution.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
            if moments:
                probs = distribution.exp()
                mean = (probs * distribution).sum(-1)
                std = ((probs * distribution.square()).sum(-1) - mean.square()).clamp(min=0).sqrt()
                values = torch.stack([values, mean, std], 1)
        by_row = iter(values.cpu().numpy())
        for row in rows:
            results.append(next(by_row)[..., -(len(row) - 1) :] if len(row) >= 2 else empty)
        if progress is not None:
            progress(
                min(start + batch_size, len(encoded)) / len(encoded),
                f"Scored {min(start + batch_size, len(encoded))}/{len(encoded)}",
            )
    return results
