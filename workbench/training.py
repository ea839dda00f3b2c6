"""The one fine-tuning trainer: the lab, the shadows, backdoor extraction and reactivation all
train through ``train_adapter``, its settings a keyword-only ``TrainingRecipe``.

A training example is a prompt and a response, as plain text (the two concatenated) or as a
chat turn (the tokenizer's chat template around a user prompt and an assistant reply). The
loss covers the whole sequence or the response only, and each example has a weight: -1
turns descent into ascent on it (unlearning), so forget and retain examples mix in one run.
The base may already carry an adapter: it is merged first, and the new adapter records its
parent, so loading the new one merges the chain again (``workbench.session``).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.builds import Recipe
from workbench.cache import atomic_dir
from workbench.config import ModelSpec
from workbench.contract import Progress
from workbench.registry import PARENT_KEY
from workbench.session import load_session

SAVE_DTYPES = ("float32", "float16")
LOSS_ON = ("whole", "response")
METHODS = ("lora",)


@dataclass(frozen=True, kw_only=True)
class TrainingRecipe(Recipe):
    """How an adapter is trained: LoRA of ``rank`` (alpha 2 × rank) on every linear layer,
    AdamW at ``lr`` for ``epochs`` passes over shuffled batches of ``batch_size`` (order and
    initial weights from ``seed``), the loss on the ``whole`` sequence or the ``response`` only.
    An example longer than ``max_length`` tokens is an error, never cut silently; None takes
    the longest example's length. The adapter is saved in ``save_dtype``."""

    method: str = "lora"
    loss_on: str = "whole"
    epochs: int = 3
    lr: float = 1e-3
    rank: int = 16
    batch_size: int = 8
    max_length: int | None = 128
    seed: int = 0
    save_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown fine-tuning method {self.method!r}; the trainer supports {', '.join(METHODS)}.")
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"Unknown loss_on {self.loss_on!r}; choose one of {', '.join(LOSS_ON)}.")
        if (
            self.epochs < 1
            or self.batch_size < 1
            or self.rank < 1
            or self.lr <= 0
            or (self.max_length is not None and self.max_length < 2)
        ):
            raise ValueError("epochs, batch_size and rank must be at least 1, max_length at least 2, and lr positive.")
        if self.save_dtype not in SAVE_DTYPES:
            raise ValueError(f"Unknown save_dtype {self.save_dtype!r}; choose one of {', '.join(SAVE_DTYPES)}.")


@dataclass(frozen=True)
class Example:
    """One training example. ``chat``: ``prompt`` is the user turn and ``response`` the
    assistant turn, inside the chat template; else the text is ``prompt + response``.
    ``weight`` scales its loss; a negative weight trains away from it (gradient ascent)."""

    prompt: str
    response: str
    chat: bool = False
    weight: float = 1.0


def chat_prompt_ids(tokenizer, prompt: str) -> list[int]:
    """A user turn in the chat template, up to where the assistant's reply starts: what a chat
    example trains after, and what a chat prompt sends."""
    if not tokenizer.chat_template:
        raise ValueError("This tokenizer has no chat template, so it cannot take chat prompts.")
    messages = [{"role": "user", "content": prompt}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))


def encode_example(tokenizer, example: Example) -> tuple[list[int], int]:
    """(token ids, index where the response starts). Plain text ends with the EOS token; a
    chat example ends as the template closes an assistant turn."""
    if example.chat:
        prompt_ids = chat_prompt_ids(tokenizer, example.prompt)
        messages = [{"role": "user", "content": example.prompt}, {"role": "assistant", "content": example.response}]
        full = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        if full[: len(prompt_ids)] != prompt_ids:
            raise ValueError(
                "The chat template renders the prompt differently once a reply follows; cannot mask the prompt."
            )
        return full, len(prompt_ids)
    if not example.prompt:  # the same ids as encoding the whole text at once
        return tokenizer.encode(example.response + tokenizer.eos_token, add_special_tokens=True), 0
    prompt_ids = tokenizer.encode(example.prompt, add_special_tokens=True)
    return prompt_ids + tokenizer.encode(example.response + tokenizer.eos_token, add_special_tokens=False), len(
        prompt_ids
    )


def _batch_loss(model, rows: list[tuple[list[int], int]], weights: list[float], loss_on: str, pad_id: int, device):
    """Sum over examples of weight × (summed token NLL), over the number of trained tokens:
    with all weights 1 it is the usual mean token loss of the batch."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    trained = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, (ids, response_start) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        attention[r, : len(ids)] = 1
        trained[r, (response_start if loss_on == "response" else 0) : len(ids)] = True
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits[:, :-1].float()
    nll = F.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:].to(device), reduction="none")
    mask = trained[:, 1:].to(device)  # the first token has no prediction
    per_example = (nll * mask).sum(dim=1)
    weight = torch.tensor(weights, dtype=per_example.dtype, device=device)
    return (weight * per_example).sum() / mask.sum().clamp(min=1)


def add_lora(model, rank: int, seed: int):
    """``model`` wrapped in a fresh LoRA adapter of ``rank`` (alpha 2 × rank) on every linear
    layer, its A factors drawn from ``seed`` (B starts at zero): the adapter the trainer starts
    from, so the weight diff can rebuild a trained adapter's starting point."""
    from peft import LoraConfig, get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(
            model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")
        )


def train_adapter(
    base: ModelSpec | str,
    examples: Sequence[Example],
    out: str | Path,
    recipe: TrainingRecipe = TrainingRecipe(),
    *,
    progress: Progress | None = None,
    provenance: Mapping | None = None,
) -> list[dict]:
    """LoRA fine-tune of a private copy of ``base`` (merged with its adapter chain, if any) on
    ``examples``, as ``recipe`` says; the adapter goes to ``out`` atomically, with
    ``recipe.json`` (``provenance`` — what the examples are — plus the base, the parent
    adapter, the number of examples and the recipe, its max_length resolved) and
    ``loss_curve.json``, so an interrupted run leaves nothing that loads. Returns the loss
    curve: one {"step", "epoch", "loss"} per optimizer step (the weighted loss, so it falls
    below zero under gradient ascent)."""
    from peft import PeftModel  # only fine-tuning needs peft's training side

    if not examples:
        raise ValueError("There is nothing to train on: the example list is empty.")
    spec = ModelSpec(base) if isinstance(base, str) else base
    session = load_session(spec)  # a private copy: the shared model must stay untouched
    session.require_weights("Fine-tuning")
    tokenizer = session.tokenizer
    encoded = [encode_example(tokenizer, example) for example in examples]
    max_length = recipe.max_length or max(len(ids) for ids, _ in encoded)
    too_long = [len(ids) for ids, _ in encoded if len(ids) > max_length]
    if too_long:
        raise ValueError(
            f"{len(too_long)} of {len(encoded)} examples are longer than max_length = {max_length} tokens "
            f"(the longest: {max(too_long)}); raise max_length so that no target is cut."
        )
    model = session.model
    if isinstance(model, PeftModel):
        if not spec.adapter:
            raise ValueError(
                f"{spec.name} comes with a built-in adapter; to train on top of it, name its base model and its adapter "
                "folder (e.g. --adapter), so that the new adapter records its parent."
            )
        model = model.merge_and_unload()
    model = add_lora(model, recipe.rank, recipe.seed)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr)
    order = list(range(len(encoded)))
    shuffler = random.Random(recipe.seed)
    epochs, batch_size = recipe.epochs, recipe.batch_size
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    curve: list[dict] = []
    for epoch in range(epochs):
        shuffler.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = _batch_loss(
                model, [encoded[i] for i in batch], [examples[i].weight for i in batch], recipe.loss_on, tokenizer.pad_token_id,
                session.device,
            )  # fmt: skip
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            curve.append({"step": len(curve) + 1, "epoch": epoch + 1, "loss": float(loss.detach())})
            if progress is not None:
                progress(
                    len(curve) / (epochs * steps_per_epoch), f"epoch {epoch + 1}/{epochs}, loss {curve[-1]['loss']:.3f}"
                )
    out = Path(out)
    full_recipe = {
        **(provenance or {}),
        "base": session.spec.name,
        PARENT_KEY: os.path.relpath(Path(spec.adapter).resolve(), out.resolve()) if spec.adapter else None,
        "n_examples": len(examples),
        **replace(recipe, max_length=max_length).as_dict(),
    }
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.to(getattr(torch, recipe.save_dtype))
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        (tmp / "recipe.json").write_text(json.dumps(full_recipe, indent=2))
        (tmp / "loss_curve.json").write_text(json.dumps(curve))
    return curve
