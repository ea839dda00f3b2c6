"""Weight diff (SELEC), the weights' side: which parameters to compare and how far fine-tuning
moved them.

``select_parameters`` picks them (the last transformer block, those the fine-tune changed, all,
the adapter's own LoRA factors, or a pattern); ``merged_parameters`` reads a peft LoRA model's
weights merged, so base and tuned compare name by name; ``check_pair`` refuses two models that
do not share an architecture and a tokenizer; ``weight_shift`` and ``lora_shift`` give the shift
Δ that ``workbench.selec`` compares the texts' gradients with.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from workbench.corpus import tokenizer_fingerprint
from workbench.registry import LAB_DIR, LAB_MODEL, PARENT_KEY
from workbench.session import Session

LORA = "lora"
PARAM_CHOICES = ("last", "changed", "all", LORA)
_BLOCK = re.compile(r"^(.*\.)(\d+)\.")


def _is_peft(model) -> bool:
    return hasattr(model, "get_base_model") and hasattr(model, "peft_config")


def merged_parameters(model, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The model's parameters by their plain names (as in the base architecture); for a peft
    LoRA model, each adapted weight merged: W + Σ_adapters B·A·scaling (peft's
    ``get_delta_weight``). ``names`` limits which are built (merging costs memory)."""
    wanted = None if names is None else set(names)
    if not _is_peft(model):
        return {n: p.detach() for n, p in model.named_parameters() if wanted is None or n in wanted}
    inner = model.get_base_model()
    merged = {}
    for name, parameter in inner.named_parameters():
        if "lora_" in name:
            continue
        plain = name.replace(".base_layer.", ".")
        if wanted is None or plain in wanted:
            merged[plain] = parameter.detach()
    for module_name, module in inner.named_modules():
        weight_name = f"{module_name}.weight"
        if not (hasattr(module, "get_delta_weight") and hasattr(module, "lora_A")) or weight_name not in merged:
            continue
        adapters = [
            a for a in module.active_adapters if a in module.lora_A or a in getattr(module, "lora_embedding_A", {})
        ]
        if any(getattr(module, "use_dora", {}).get(a) for a in adapters):
            raise ValueError("DoRA adapters are not supported: their merged weight is not W + B·A·scaling.")
        merged[weight_name] = merged[weight_name] + sum(module.get_delta_weight(a).detach() for a in adapters)
    return merged


def _plain_shapes(model) -> dict[str, tuple[int, ...]]:
    """Parameter shapes by plain name, without merging any adapter."""
    inner = model.get_base_model() if _is_peft(model) else model
    return {n.replace(".base_layer.", "."): tuple(p.shape) for n, p in inner.named_parameters() if "lora_" not in n}


def last_block(names: Sequence[str]) -> list[str]:
    """Parameters of the last transformer block: the highest index of the numbered module
    list that has the most members (``model.layers.29.…``, ``transformer.h.11.…``)."""
    blocks: dict[str, set[int]] = {}
    for name in names:
        found = _BLOCK.match(name)
        if found:
            blocks.setdefault(found.group(1), set()).add(int(found.group(2)))
    if not blocks:
        raise ValueError("No numbered transformer blocks found among the parameters; choose parameters by pattern.")
    prefix = max(blocks, key=lambda p: len(blocks[p]))
    last = f"{prefix}{max(blocks[prefix])}."
    return [n for n in names if n.startswith(last)]


def check_pair(base: Session, tuned: Session) -> None:
    """Raise ValueError unless the two models share an architecture and a tokenizer."""
    for session in (base, tuned):
        session.require_weights("The weight difference (SELEC)")
    if _is_peft(base.model):
        raise ValueError("The base model must be a plain model, without an adapter.")
    base_config, tuned_config = base.model.config, tuned.model.config
    if base_config.model_type != tuned_config.model_type:
        raise ValueError(
            f"Different architectures: base {base_config.model_type!r}, tuned {tuned_config.model_type!r}."
        )
    if _plain_shapes(base.model) != _plain_shapes(tuned.model):
        raise ValueError(
            "The base and tuned models have different parameters (names or shapes): not the same architecture."
        )
    if tokenizer_fingerprint(base.tokenizer) != tokenizer_fingerprint(tuned.tokenizer):
        raise ValueError("The base and tuned models use different tokenizers.")


def _adapter_folder(tuned: Session) -> Path:
    if tuned.spec.adapter:
        return Path(tuned.spec.adapter)
    if tuned.spec.name == LAB_MODEL:
        return LAB_DIR / "adapter"
    raise ValueError("The LoRA factors need the tuned model's adapter folder: load it as a base model with an adapter.")


def initial_lora_factors(base: Session, tuned: Session) -> dict[str, torch.Tensor]:
    """The tuned model's LoRA factors as the trainer started them (``training.add_lora`` on the
    base with the rank and seed in the adapter's recipe.json), by the tuned model's parameter
    names. Only adapters the workbench trained record how they started."""
    from workbench.training import add_lora  # fine-tuning's side of peft, loaded only here

    recipe_file = _adapter_folder(tuned) / "recipe.json"
    recipe = json.loads(recipe_file.read_text()) if recipe_file.is_file() else {}
    if "seed" not in recipe or "rank" not in recipe:
        raise ValueError(
            "This adapter does not record how its LoRA factors started (a workbench recipe.json): compare merged weights (changed)."
        )
    if recipe.get(PARENT_KEY):
        raise ValueError("This adapter was trained on top of another one: compare merged weights (changed).")
    with torch.no_grad():
        started = add_lora(copy.deepcopy(base.model), int(recipe["rank"]), int(recipe["seed"]))
    factors = {n: p.detach().float() for n, p in started.named_parameters() if "lora_" in n}
    trained = {n for n, _ in tuned.model.named_parameters() if "lora_" in n}
    if set(factors) != trained:
        raise ValueError(
            "The rebuilt starting adapter does not match the tuned model's LoRA factors (another rank or target modules)."
        )
    return factors


def select_parameters(base: Session, tuned: Session, params: str = "last") -> list[str]:
    """Names of the parameters to compare: "last" (the last transformer block), "changed"
    (every parameter the fine-tune moved), "all", "lora" (the tuned model's LoRA factors, by
    its own names), or a regular expression on names."""
    if params == LORA:
        if not _is_peft(tuned.model):
            raise ValueError("The tuned model has no LoRA adapter: choose last, changed or all.")
        return [n for n, _ in tuned.model.named_parameters() if "lora_" in n]
    names = [n for n, _ in base.model.named_parameters()]
    if params == "last":
        chosen = last_block(names)
    elif params == "all":
        chosen = names
    elif params == "changed":
        tuned_values = merged_parameters(tuned.model)
        base_values = dict(base.model.named_parameters())
        chosen = [
            n for n in names if not torch.equal(base_values[n].detach(), tuned_values[n].to(base_values[n].device))
        ]
    else:
        try:
            pattern = re.compile(params)
        except re.error as err:
            raise ValueError(f"Bad parameter pattern {params!r}: {err.msg}.") from err
        chosen = [n for n in names if pattern.search(n)]
    if not chosen:
        raise ValueError(f"No parameters match {params!r}.")
    return chosen


def weight_shift(base: Session, tuned: Session, names: Sequence[str]) -> torch.Tensor:
    """Δ = θ_tuned − θ_base over ``names``, flattened in order, float32 on the cpu."""
    base_values = dict(base.model.named_parameters())
    tuned_values = merged_parameters(tuned.model, names)
    return torch.cat([(tuned_values[n].float().cpu() - base_values[n].detach().float().cpu()).flatten() for n in names])


def lora_shift(base: Session, tuned: Session, names: Sequence[str]) -> torch.Tensor:
    """How far training moved the LoRA factors ``names``: trained − initial, flattened in order."""
    initial = initial_lora_factors(base, tuned)
    trained = dict(tuned.model.named_parameters())
    return torch.cat([(trained[n].detach().float().cpu() - initial[n].cpu()).flatten() for n in names])
