"""Attention sinks: per-head attention to the first token, hidden-state norms, and
mitigation by scaling heads or ablating MLP neurons.

A head's sink score is the mean over query positions i > s of A[i, s], the attention weight
on the sink key s (the first token by default). A head is a sink head when the score is at
least 0.3 (Gu et al. 2025).

``sink_columns`` keeps only that one column of every attention matrix: it runs the model
with an attention function, registered through transformers' ``AttentionInterface``, that
computes exact attention with torch's CPU flash-attention kernel and derives column s from
the log-sum-exp the kernel returns (in blocks of query rows where that kernel does not
apply). Memory grows as layers × heads × tokens, not tokens², and the scan costs about one
forward pass, so the default model's full 8,192-token context is quick on a CPU.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from workbench.config import SamplingConfig
from workbench.contract import Progress, scaled_progress
from workbench.divergence import run
from workbench.prompts import RepeatedPrompt
from workbench.sampling import prompt_ids
from workbench.session import Session

SINK_THRESHOLD = 0.3
SINK_ATTENTION = "workbench_sink_column"
PATTERN_MAX_TOKENS = 1024  # full attention matrices: tokens² per head, so short prompts only

_capture: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("sink_capture", default=None)


def _sink_column_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Exact attention that records A[:, :, :, sink] per layer, without the attention matrix.

    Shapes follow transformers' eager attention: query (B, H, T, D), key/value
    (B, H_kv, S, D) with H a multiple of H_kv (grouped-query attention); returns the output
    as (B, T, H, D) and no weights. On the CPU, torch's flash-attention kernel returns each
    query's log-sum-exp of scores beside the output, so the sink column is
    exp(q·k_sink·scale + mask − lse): one extra dot product per query. Elsewhere, and with a
    soft cap (which that kernel does not apply), softmax attention is computed in blocks of rows."""
    capture = _capture.get()
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    keys = key.shape[2]
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # True = attend; as an additive mask
        attention_mask = torch.zeros((), dtype=query.dtype, device=query.device).masked_fill(
            ~attention_mask[:, :, :, :keys], -math.inf
        )
    elif attention_mask is not None:
        attention_mask = attention_mask[:, :, :, :keys]
    if query.device.type == "cpu" and not kwargs.get("softcap"):
        output, column = _flash_with_sink_column(query, key, value, attention_mask, scaling, capture)
    else:
        output, column = _blockwise_with_sink_column(
            query, key, value, attention_mask, scaling, capture, kwargs.get("softcap")
        )
    if capture:
        capture["columns"][module.layer_idx] = column[0]
    return output.transpose(1, 2).contiguous(), None


def _flash_with_sink_column(query, key, value, mask, scaling, capture):
    output, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, is_causal=mask is None, attn_mask=mask, scale=scaling
    )
    if not capture:
        return output, None
    sink = capture["sink"]
    logits = torch.matmul(query, key[:, :, sink, :, None]).squeeze(-1).float() * scaling
    if mask is None:  # causal, queries and keys aligned (no cache): queries before the sink cannot see it
        logits[:, :, :sink] = -math.inf
    else:
        logits = logits + mask[:, :, :, sink].float()
    return output, torch.exp(logits - lse.float())


def _blockwise_with_sink_column(query, key, value, mask, scaling, capture, softcap):
    length, keys = query.shape[2], key.shape[2]
    block = capture["block"] if capture else length
    output = torch.empty_like(query)
    column = torch.empty(query.shape[:3], dtype=torch.float32, device=query.device)
    key_positions = torch.arange(keys, device=query.device)
    for start in range(0, length, block):
        stop = min(start + block, length)
        scores = torch.matmul(query[:, :, start:stop], key.transpose(-1, -2)).float() * scaling
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        if mask is None:  # purely causal: the mask function let the caller build it
            query_positions = torch.arange(start, stop, device=query.device) + (keys - length)
            scores = scores.masked_fill(key_positions[None, :] > query_positions[:, None], -math.inf)
        else:
            scores = scores + mask[:, :, start:stop]
        weights = torch.softmax(scores, dim=-1)
        if capture:
            column[:, :, start:stop] = weights[..., capture["sink"]]
        output[:, :, start:stop] = torch.matmul(weights.to(value.dtype), value)
    return output, column


AttentionInterface.register(SINK_ATTENTION, _sink_column_attention)
AttentionMaskInterface.register(SINK_ATTENTION, sdpa_mask)


def _language_model(session: Session) -> PreTrainedModel:
    """The transformers model under an optional peft wrapper."""
    session.require_weights("Attention-sink analysis")
    model = session.model
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _checked_ids(session: Session, prompt: str | Sequence[int]) -> list[int]:
    """Token ids of a prompt, checked against the context window."""
    session.require_weights("Attention-sink analysis")
    ids = prompt_ids(session, prompt)
    if len(ids) > session.info.context_length:
        raise ValueError(f"The prompt is {len(ids)} tokens; the context window is {session.info.context_length}.")
    return ids


def sink_columns(session: Session, prompt: str | Sequence[int], sink_index: int = 0, block: int = 256) -> np.ndarray:
    """A[layer, head, i, sink_index] for every query position i: array (layers, heads, tokens)."""
    ids = _checked_ids(session, prompt)
    if not 0 <= sink_index < len(ids) - 1:
        raise ValueError(f"sink_index must be in [0, {len(ids) - 2}] for a {len(ids)}-token prompt.")
    model = _language_model(session)
    state = {"sink": sink_index, "block": block, "columns": {}}
    with session.lock, torch.inference_mode():
        previous = model.config._attn_implementation
        token = _capture.set(state)
        model.set_attn_implementation(SINK_ATTENTION)
        try:
            model.base_model(input_ids=torch.tensor([ids], device=session.device), use_cache=False)
        finally:
            model.set_attn_implementation(previous)
            _capture.reset(token)
    columns = state["columns"]
    return torch.stack([columns[layer] for layer in sorted(columns)]).cpu().numpy()


def scores_from_columns(columns: np.ndarray, sink_index: int = 0) -> pd.DataFrame:
    """DataFrame(layer, head, score) from ``sink_columns`` output: score = mean over query
    positions i > sink_index of A[layer, head, i, sink_index]."""
    scores = columns[:, :, sink_index + 1 :].mean(axis=-1)
    layers, heads = np.meshgrid(range(scores.shape[0]), range(scores.shape[1]), indexing="ij")
    return pd.DataFrame({"layer": layers.ravel(), "head": heads.ravel(), "score": scores.ravel()})


def sink_scores(session: Session, prompt: str | Sequence[int], sink_index: int = 0) -> pd.DataFrame:
    """DataFrame(layer, head, score): score = mean over query positions i > sink_index of
    A[layer, head, i, sink_index]."""
    return scores_from_columns(sink_columns(session, prompt, sink_index), sink_index)


def column_profile(columns: np.ndarray, layer: int, head: int) -> pd.DataFrame:
    """DataFrame(position, attention): one head's attention to the sink at every position."""
    return pd.DataFrame({"position": np.arange(columns.shape[2]), "attention": columns[layer, head]})


def sink_heads(scores: pd.DataFrame, threshold: float = SINK_THRESHOLD) -> pd.DataFrame:
    """The rows of ``scores`` with score ≥ threshold, highest first."""
    return scores[scores["score"] >= threshold].sort_values("score", ascending=False, ignore_index=True)


def _check_head(session: Session, layer: int, head: int | None = None) -> None:
    if not 0 <= layer < session.info.n_layers:
        raise ValueError(f"Layer {layer} is out of range: the model has layers 0–{session.info.n_layers - 1}.")
    if head is not None and not 0 <= head < session.info.n_heads:
        raise ValueError(f"Head {head} is out of range: the model has heads 0–{session.info.n_heads - 1}.")


def attention_pattern(session: Session, prompt: str | Sequence[int], layer: int, head: int) -> np.ndarray:
    """The full attention matrix (tokens × tokens) of one head; short prompts only."""
    _check_head(session, layer, head)
    ids = _checked_ids(session, prompt)
    if len(ids) > PATTERN_MAX_TOKENS:
        raise ValueError(
            f"Full attention patterns are limited to {PATTERN_MAX_TOKENS} tokens (this prompt has {len(ids)}); "
            "use sink scores for long prompts."
        )
    with session.lock, torch.inference_mode():
        out = _language_model(session).base_model(
            input_ids=torch.tensor([ids], device=session.device), output_attentions=True, use_cache=False
        )
    return out.attentions[layer][0, head].float().cpu().numpy()


def hidden_states(session: Session, prompt: str | Sequence[int]) -> list[torch.Tensor]:
    """The residual stream at every position, per layer: tensors (tokens, width), float32 on
    the CPU; layer 0 is the embeddings and layer L the output of block L (before the final norm)."""
    ids = _checked_ids(session, prompt)
    last: list[torch.Tensor] = []
    # transformers hands back the last hidden state after the final norm; hook the last block instead
    hook = lambda module, args, output: last.append(output[0] if isinstance(output, tuple) else output)  # noqa: E731
    with session.lock, torch.inference_mode():
        handle = _blocks(session)[-1].register_forward_hook(hook)
        try:
            out = _language_model(session).base_model(
                input_ids=torch.tensor([ids], device=session.device), output_hidden_states=True, use_cache=False
            )
        finally:
            handle.remove()
    return [h[0].float().cpu() for h in (*out.hidden_states[:-1], last[0])]


def hidden_norms(session: Session, prompt: str | Sequence[int]) -> pd.DataFrame:
    """DataFrame(layer, position, norm): L2 norm of the residual stream at every position,
    layer 0 being the embeddings and layer L the output of block L."""
    norms = torch.stack([h.norm(dim=-1) for h in hidden_states(session, prompt)]).numpy()
    layers, positions = np.meshgrid(range(norms.shape[0]), range(norms.shape[1]), indexing="ij")
    return pd.DataFrame({"layer": layers.ravel(), "position": positions.ravel(), "norm": norms.ravel()})


def norm_profile(norms: pd.DataFrame, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """DataFrame(layer, group, norm): the mean hidden-state norm of each group of positions
    per layer, e.g. {"first token": [0], "repeated tokens": [1, 2, …]}."""
    frames = []
    for name, positions in groups.items():
        chosen = norms[norms["position"].isin(positions)]
        frames.append(chosen.groupby("layer", as_index=False)["norm"].mean().assign(group=name))
    return pd.concat(frames, ignore_index=True)[["layer", "group", "norm"]]


def sink_comparison(
    session: Session, normal: str | Sequence[int], repeated: RepeatedPrompt, progress: Progress | None = None
) -> dict[str, Any]:
    """An ordinary prompt against a repeated-token prompt: ``columns`` and ``scores`` (from
    ``sink_columns`` and ``scores_from_columns``) per prompt, "normal" and "repeated"; ``norms``,
    both prompts' ``hidden_norms`` with a prompt column; and ``profile``, the ``norm_profile`` of
    the first token, the repeated tokens and the ordinary prompt's later tokens."""
    ids = list(repeated.token_ids)
    steps = [
        ("normal", "Sink columns, normal prompt", lambda: sink_columns(session, normal)),
        ("repeated", "Sink columns, repeated prompt", lambda: sink_columns(session, ids)),
        ("norms", "Hidden norms, repeated prompt", lambda: hidden_norms(session, ids)),
        ("normal_norms", "Hidden norms, normal prompt", lambda: hidden_norms(session, normal)),
    ]
    done = {}
    for k, (name, message, step) in enumerate(steps):
        if progress is not None:
            progress(k / len(steps), message)
        done[name] = step()
    if progress is not None:
        progress(1.0, "Both prompts done")
    norms, normal_norms = done["norms"], done["normal_norms"]
    positions = [i for i, t in enumerate(repeated.token_ids) if t == repeated.token_id and i > 0]
    later_normal = list(range(1, int(normal_norms["position"].max()) + 1))
    columns = {"normal": done["normal"], "repeated": done["repeated"]}
    return {
        "columns": columns,
        "scores": {name: scores_from_columns(c) for name, c in columns.items()},
        "norms": pd.concat([norms.assign(prompt="repeated"), normal_norms.assign(prompt="normal")], ignore_index=True),
        "profile": pd.concat(
            [
                norm_profile(norms, {"first token": [0], "repeated tokens (mean)": positions}),
                norm_profile(normal_norms, {"normal prompt, later tokens (mean)": later_normal}),
            ],
            ignore_index=True,
        ),
    }


def _blocks(session: Session) -> list[torch.nn.Module]:
    """The model's transformer blocks, in order."""
    model = _language_model(session)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == session.info.n_layers:
            return list(module)
    raise ValueError(f"Cannot find the {session.info.n_layers} transformer blocks of {session.info.architecture}.")


def _child(block: torch.nn.Module, names: Sequence[str], what: str) -> torch.nn.Module:
    for name in names:
        if isinstance(getattr(block, name, None), torch.nn.Module):
            return getattr(block, name)
    raise ValueError(f"Cannot find the {what} in {type(block).__name__} (looked for {', '.join(names)}).")


def mlp_down_projection(block: torch.nn.Module) -> torch.nn.Module:
    """The MLP's output (down) projection of a block: its input holds the MLP's neurons."""
    return _child(
        _child(block, ("mlp", "feed_forward"), "MLP"),
        ("down_proj", "c_proj", "fc2", "w2", "dense_4h_to_h"),
        "MLP down projection",
    )


def mlp_width(session: Session, layer: int) -> int:
    """How many MLP neurons a layer has."""
    _check_head(session, layer)
    return _input_width(mlp_down_projection(_blocks(session)[layer]))


def mlp_activations(session: Session, prompt: str | Sequence[int], layers: Sequence[int]) -> dict[int, np.ndarray]:
    """layer → array (tokens, neurons): the MLP's neuron activations (the input of its down
    projection) at every position."""
    ids = _checked_ids(session, prompt)
    blocks = _blocks(session)
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for layer in layers:
        _check_head(session, layer)
        capture = lambda module, args, layer=layer: captured.__setitem__(layer, args[0][0].float().cpu())  # noqa: E731
        handles.append(mlp_down_projection(blocks[layer]).register_forward_pre_hook(capture))
    with session.lock, torch.inference_mode():
        try:
            _language_model(session).base_model(input_ids=torch.tensor([ids], device=session.device), use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
    return {layer: captured[layer].numpy() for layer in layers}


def _input_width(linear: torch.nn.Module) -> int:
    """Input features of nn.Linear, or of GPT-2's Conv1D (weight stored as in × out)."""
    return linear.in_features if hasattr(linear, "in_features") else linear.weight.shape[0]


@contextmanager
def _input_scaled(session: Session, targets: Mapping[torch.nn.Module, torch.Tensor]) -> Iterator[None]:
    """Multiply the input of each target linear layer by a vector, under the session lock;
    the hooks are removed on exit, also after an exception."""
    handles = []

    def hook(scale: torch.Tensor):
        return lambda module, args: (args[0] * scale.to(args[0].dtype), *args[1:])

    with session.lock:
        try:
            for module, scale in targets.items():
                handles.append(module.register_forward_pre_hook(hook(scale)))
            yield
        finally:
            for handle in handles:
                handle.remove()


@contextmanager
def scaled_heads(session: Session, scales: Mapping[tuple[int, int], float]) -> Iterator[None]:
    """Within the block, the output of each (layer, head) is multiplied by its scale before
    the attention's output projection (0 ablates the head). Holds the session lock, since
    hooks change the shared model for everyone."""
    blocks = _blocks(session)
    targets: dict[torch.nn.Module, torch.Tensor] = {}
    for (layer, head), scale in scales.items():
        _check_head(session, layer, head)
        attention = _child(blocks[layer], ("self_attn", "attn", "attention"), "attention")
        projection = _child(attention, ("o_proj", "c_proj", "out_proj", "dense"), "output projection")
        width = _input_width(projection)
        head_dim = width // session.info.n_heads
        vector = targets.setdefault(projection, torch.ones(width, device=session.device))
        vector[head * head_dim : (head + 1) * head_dim] = float(scale)
    with _input_scaled(session, targets):
        yield


@contextmanager
def ablated_neurons(session: Session, neurons: Mapping[int, Sequence[int]]) -> Iterator[None]:
    """Within the block, the chosen MLP neurons of each layer output zero (their activations
    are zeroed at the input of the MLP's down projection). Holds the session lock."""
    blocks = _blocks(session)
    targets = {}
    for layer, indices in neurons.items():
        _check_head(session, layer)
        down = mlp_down_projection(blocks[layer])
        width = _input_width(down)
        vector = torch.ones(width, device=session.device)
        for index in indices:
            if not 0 <= index < width:
                raise ValueError(f"Neuron {index} is out of range: layer {layer} has neurons 0–{width - 1}.")
            vector[index] = 0.0
        targets[down] = vector
    with _input_scaled(session, targets):
        yield


def compare_mitigation(
    session: Session,
    scales: Mapping[tuple[int, int], float],
    words: Sequence[str],
    repeats: Sequence[int],
    cfg: SamplingConfig,
    prefix: str = "",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The repeated-token experiment without and with ``scaled_heads(scales)``, on the same
    seeds. One row per generation: word, repeats, sample, seed, then outcome,
    divergence_point and output for each condition (suffixes _baseline and _mitigated)."""
    if not scales:
        raise ValueError("Choose at least one head to scale.")
    baseline = run(session, words, repeats, cfg, prefix, progress=scaled_progress(progress, 0, 0.5, "Baseline: "))
    with scaled_heads(session, scales):
        mitigated = run(session, words, repeats, cfg, prefix, progress=scaled_progress(progress, 0.5, 1, "Mitigated: "))
    keys = ["word", "repeats", "sample", "seed"]
    measured = ["outcome", "divergence_point", "output"]
    return baseline[keys + measured].merge(mitigated[keys + measured], on=keys, suffixes=("_baseline", "_mitigated"))
