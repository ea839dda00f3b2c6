"""Weight diff (SELEC): approximate the fine-tuning data from base and fine-tuned weights.

One SGD step on a text moves the weights by −lr·g, where g is the gradient of the text's
language-model loss. So texts whose −g, taken under the base model, points the way the
weights actually moved — Δ = θ_tuned − θ_base — are likely fine-tuning data (Morris et al.
2025). Most fine-tunes use Adam, which divides each coordinate's step by the root of its
running mean squared gradient v, so that Δ ≈ −lr Σ g / √v; with ``optimizer="adam"`` the
gradients are compared with Δ ⊙ √v̂, v̂ = the mean squared gradient over the pool (Adam's
scaling undone). Gradients and the target are reduced with one seeded sparse random
projection (scikit-learn's ``SparseRandomProjection``), which keeps inner products and so
cosines. With ``params="lora"`` the comparison moves into the adapter's own factors: the
gradients in its A and B matrices, taken at the trained adapter, against how far training
moved them (B from zero, A from the starting values the trainer drew from its seed).

This module holds the texts' gradients, the fitted ``WeightDiff``, greedy selection and the
scores of a ranking against known membership; which parameters are compared and the shift Δ
itself are in ``workbench.selec_shift``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.random_projection import SparseRandomProjection

from workbench.contract import Progress
from workbench.selec_shift import LORA, check_pair, lora_shift, select_parameters, weight_shift
from workbench.session import Session

OPTIMIZERS = ("adam", "sgd")


# ---------------------------------------------------------------- gradients


@contextmanager
def _differentiable(parameters: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """Let autograd reach ``parameters`` (a loaded adapter's are frozen), then freeze them again."""
    frozen = [p for p in parameters if not p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(True)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)


def text_gradient(
    session: Session, text: str, parameters: Sequence[torch.nn.Parameter], max_length: int = 128
) -> torch.Tensor:
    """Gradient of the mean next-token loss of ``text`` (encoded as in the lab's fine-tune:
    special tokens, the text, EOS; cut to max_length) w.r.t. ``parameters``, flattened.
    Uses ``torch.autograd.grad``: the shared model's ``.grad`` fields stay untouched."""
    tokenizer = session.tokenizer
    ids = tokenizer.encode(text + (tokenizer.eos_token or ""), add_special_tokens=True)[:max_length]
    if len(ids) < 2:
        raise ValueError(f"The text {text[:40]!r} has fewer than 2 tokens: nothing to predict.")
    input_ids = torch.tensor([ids], device=session.device)
    with session.lock, torch.enable_grad(), _differentiable(parameters):  # under the lock: the model may be shared
        loss = session.model(input_ids=input_ids, labels=input_ids).loss
        grads = torch.autograd.grad(loss, list(parameters), allow_unused=True)
    # A parameter the loss does not reach (a regex may pick one) has a zero gradient.
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).float().flatten().cpu() for p, g in zip(parameters, grads)]
    )


def _pool_texts(pool: Sequence[str] | pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    frame = pool.reset_index(drop=True) if isinstance(pool, pd.DataFrame) else pd.DataFrame({"text": list(pool)})
    if "text" not in frame:
        raise ValueError('The pool table needs a "text" column.')
    texts = [str(t) for t in frame["text"]]
    if not texts:
        raise ValueError("The pool is empty: give at least one candidate text.")
    if not all(t.strip() for t in texts):
        raise ValueError("The pool holds empty texts.")
    return texts, frame


MAX_STORED_NUMBERS = 500_000_000  # 2 GB of float32 gradients kept for the pool
MAX_PROJECTION_ENTRIES = 100_000_000  # non-zeros of the sparse projection, ~1.2 GB


def _check_memory(n_texts: int, n_parameters: int, projection_dim: int) -> None:
    """Refuse settings that would exhaust a shared machine's memory before any work starts."""
    if not projection_dim and n_texts * n_parameters > MAX_STORED_NUMBERS:
        raise ValueError(
            f"Without a projection, {n_texts} texts × {n_parameters:,} parameters would keep "
            f"{n_texts * n_parameters * 4 / 1e9:.0f} GB of gradients: use a projection (e.g. 1024) or fewer parameters."
        )
    entries = projection_dim * math.sqrt(n_parameters)  # the sparse projection keeps 1/√d of d·k entries
    if entries > MAX_PROJECTION_ENTRIES:
        raise ValueError(
            f"A projection of {projection_dim} over {n_parameters:,} parameters needs {entries:,.0f} entries: choose a smaller size."
        )


class WeightDiff:
    """Estimator style: settings in ``__init__``; ``fit`` computes the projected shift
    ``shift_`` (Δ), ``adam_shift_`` (Δ ⊙ √v̂) and the projected per-text gradients
    ``gradients_`` (one row per pool text); ``rank`` and ``greedy_select`` use them.

    params: see ``select_parameters`` ("lora": gradients at the trained adapter, in its own
    factors). projection_dim: size of the seeded sparse random
    projection (0 keeps the full gradients: exact, for small parameter sets). optimizer: how
    the fine-tune stepped — "adam" (target Δ ⊙ √v̂) or "sgd" (target Δ)."""

    def __init__(
        self,
        params: str = "last",
        projection_dim: int = 1024,
        seed: int = 0,
        max_length: int = 128,
        optimizer: str = "adam",
    ):
        if projection_dim < 0:
            raise ValueError("projection_dim must be 0 (no projection) or positive.")
        if max_length < 2:
            raise ValueError("max_length must be at least 2 tokens.")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        self.params = params
        self.projection_dim = projection_dim
        self.seed = seed
        self.max_length = max_length
        self.optimizer = optimizer

    def fit(
        self, base: Session, tuned: Session, pool: Sequence[str] | pd.DataFrame, progress: Progress | None = None
    ) -> WeightDiff:
        texts, self.pool_ = _pool_texts(pool)
        check_pair(base, tuned)
        self.names_ = select_parameters(base, tuned, self.params)
        delta = (lora_shift if self.params == LORA else weight_shift)(base, tuned, self.names_)
        if not torch.any(delta):
            raise ValueError(
                "The tuned model does not differ from the base on these parameters; choose others (e.g. changed)."
            )
        self.n_parameters_ = delta.numel()
        _check_memory(len(texts), delta.numel(), self.projection_dim)
        projector = None
        if self.projection_dim:
            projector = SparseRandomProjection(self.projection_dim, dense_output=True, random_state=self.seed)
            projector.fit(np.zeros((1, delta.numel()), dtype=np.float32))  # fitting reads only the width

        def reduce(vector: torch.Tensor) -> np.ndarray:
            array = vector.numpy()[None, :]
            return (projector.transform(array) if projector is not None else array)[0].astype(np.float32)

        at = tuned if self.params == LORA else base  # LoRA factors: gradients at the trained adapter
        parameters = dict(at.model.named_parameters())
        chosen = [parameters[n] for n in self.names_]
        rows = []
        squares = torch.zeros_like(delta)  # Σ g², for Adam's second moment
        for index, text in enumerate(texts):
            gradient = text_gradient(at, text, chosen, self.max_length)
            squares += gradient * gradient
            rows.append(reduce(gradient))
            if progress is not None:
                progress((index + 1) / len(texts), f"Gradients {index + 1}/{len(texts)}")
        self.gradients_ = np.stack(rows)
        self.shift_ = reduce(delta)
        self.adam_shift_ = reduce(delta * (squares / len(texts)).sqrt())
        return self

    @property
    def target_(self) -> np.ndarray:
        """The projected direction gradients are compared with: Δ ⊙ √v̂ for "adam", Δ for
        "sgd". Both are kept, so ``optimizer`` may be changed after ``fit``."""
        return self.adam_shift_ if self.optimizer == "adam" else self.shift_

    def scores(self, dims: int | None = None) -> np.ndarray:
        """score_i = cos(−g_i, target), target = Δ ⊙ √v̂ (adam) or Δ (sgd), for every pool
        text (both projected when projection_dim > 0). ``dims``: only the first ``dims``
        projected coordinates — themselves a sparse random projection of that size, so one
        fit measures every smaller size."""
        width = self.gradients_.shape[1]
        if dims is not None and not (self.projection_dim and 1 <= dims <= width):
            raise ValueError(
                f"dims must be between 1 and the projection size ({self.projection_dim}) of a projected fit."
            )
        descent, target = -self.gradients_[:, :dims], self.target_[:dims]
        norms = np.linalg.norm(descent, axis=1) * np.linalg.norm(target)
        return (descent @ target) / np.where(norms > 0, norms, 1.0)

    def rank(self, dims: int | None = None) -> pd.DataFrame:
        """The pool sorted by score (``scores(dims)``): DataFrame(rank, pool_index, text, score, …the pool's other columns)."""
        table = self.pool_.assign(pool_index=range(len(self.pool_)), score=self.scores(dims))
        table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        table.insert(0, "rank", range(1, len(table) + 1))
        first = ["rank", "pool_index", "text", "score"]
        return table[first + [c for c in table.columns if c not in first]]

    def greedy_select(self, k: int) -> pd.DataFrame:
        """``greedy_select`` on the fitted gradients, with the pool's columns."""
        chosen = greedy_select(self.gradients_, self.target_, k)
        return chosen.merge(self.pool_.assign(pool_index=range(len(self.pool_))), on="pool_index").sort_values(
            "rank", ignore_index=True
        )


def greedy_select(gradients: np.ndarray, delta: np.ndarray, k: int) -> pd.DataFrame:
    """Choose k texts one by one, each maximising cos(Σ_selected −ĝ_j, delta), ĝ = g / |g|
    (unit length, so long texts do not dominate the sum); delta is the fitted target.

    DataFrame(rank, pool_index, cosine): rank = selection step, cosine = that of the sum
    after adding the text."""
    if not 1 <= k <= len(gradients):
        raise ValueError(f"k must be between 1 and the pool size ({len(gradients)}), not {k}.")
    norms = np.linalg.norm(gradients, axis=1, keepdims=True)
    descent = -gradients / np.where(norms > 0, norms, 1.0)
    target = delta / (np.linalg.norm(delta) or 1.0)
    total = np.zeros_like(target)
    available = np.ones(len(gradients), dtype=bool)
    rows = []
    for step in range(1, k + 1):
        candidates = total[None, :] + descent
        lengths = np.linalg.norm(candidates, axis=1)
        cosines = np.where(available, (candidates @ target) / np.where(lengths > 0, lengths, 1.0), -np.inf)
        best = int(np.argmax(cosines))
        total += descent[best]
        available[best] = False
        rows.append({"rank": step, "pool_index": best, "cosine": float(cosines[best])})
    return pd.DataFrame(rows)


def rank(
    base: Session,
    tuned: Session,
    pool: Sequence[str] | pd.DataFrame,
    params: str = "last",
    projection_dim: int = 1024,
    seed: int = 0,
    progress: Progress | None = None,
    optimizer: str = "adam",
) -> pd.DataFrame:
    """The pool ranked by alignment: ``WeightDiff(params, projection_dim, seed, optimizer=…).fit(…).rank()``.

    DataFrame(rank, pool_index, text, score, …); a pool DataFrame's other columns (e.g.
    member) are kept."""
    return WeightDiff(params, projection_dim, seed, optimizer=optimizer).fit(base, tuned, pool, progress).rank()


# ---------------------------------------------------------------- evaluation


def default_k(pool: pd.DataFrame) -> int:
    """How many texts to select when none is asked for: the number of members when the pool
    says, else 10 (at most the pool's size)."""
    if "member" in pool and pool["member"].any():
        return int(pool["member"].sum())
    return min(10, len(pool))


def _membership(ranking: pd.DataFrame, members: Sequence[bool] | None) -> tuple[np.ndarray, int, int]:
    """(member flag of each ranking row, members in the pool, pool size)."""
    if members is None:
        flags = np.asarray(ranking["member"], dtype=bool)
        total, pool_size = int(flags.sum()), len(ranking)
    else:
        in_pool = np.asarray(members, dtype=bool)
        flags = in_pool[np.asarray(ranking["pool_index"])]
        total, pool_size = int(in_pool.sum()), len(in_pool)
    if total == 0:
        raise ValueError("No members in the pool: precision and recall are undefined.")
    return flags, total, pool_size


def evaluate(ranking: pd.DataFrame, members: Sequence[bool] | None = None, k: int | None = None) -> dict[str, float]:
    """Scores of a ranking (or a greedy selection, ordered by rank) against known membership.

    members: one flag per pool text, in pool order (default: the ranking's "member" column,
    when the ranking covers the whole pool). k defaults to the number of members (or the
    selection's length, if shorter). Returns
    precision@k = members among the first k / k, recall@k = members among the first k / all
    members, random = members / pool size (the expected precision of a random pick),
    lift = precision@k / random, and auc = ROC AUC of the score (NaN when the ranking does
    not cover the whole pool)."""
    if members is None and "score" not in ranking:
        raise ValueError("A selection covers only part of the pool: give the pool's member flags.")
    flags, total, pool_size = _membership(ranking, members)
    k = min(total, len(ranking)) if k is None else k
    if not 1 <= k <= len(ranking):
        raise ValueError(f"k must be between 1 and {len(ranking)}.")
    hits = int(flags[:k].sum())
    random = total / pool_size
    whole = len(ranking) == pool_size and "score" in ranking and total < pool_size
    return {
        "k": k,
        "precision_at_k": hits / k,
        "recall_at_k": hits / total,
        "random": random,
        "lift": hits / k / random,
        "auc": float(roc_auc_score(flags, ranking["score"])) if whole else float("nan"),
    }


def precision_curve(ranking: pd.DataFrame, members: Sequence[bool] | None = None) -> pd.DataFrame:
    """precision@k and recall@k for every k, and the random baseline: DataFrame(k, precision, recall, random)."""
    flags, total, pool_size = _membership(ranking, members)
    hits = np.cumsum(flags)
    k = np.arange(1, len(flags) + 1)
    return pd.DataFrame({"k": k, "precision": hits / k, "recall": hits / total, "random": total / pool_size})
