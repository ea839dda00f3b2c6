"""Speed of ``workbench.similarity``: embedding, comparing and mapping on this CPU.

    python benchmarks/similarity.py [--texts 1000] [--points 5000]

Texts are lab-style patient–doctor dialogues and other-domain sentences (2–4 lines each),
all distinct, so no embedding comes from the cache unless said so. Prints:
  - embed: texts/s of MiniLM on texts never seen before;
  - compare of texts × texts (top 3 by cosine and by edit ratio), with fresh embeddings and
    again with cached ones; target < 30 s;
  - project (UMAP) of points texts from their embeddings; the first call includes numba's
    compilation, the second does not; target < 60 s.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from workbench.lab_data import make_dataset, other_domain_texts
from workbench.similarity import compare, embed, project

COMPARE_TARGET_S, PROJECT_TARGET_S = 30.0, 60.0


def distinct_texts(n: int, seed: int) -> list[str]:
    """n distinct lab-style texts: dialogues plus other-domain sentences, shuffled."""
    dataset = make_dataset(n=max(n, 100), canaries=(), n_holdout=0, seed=seed)
    texts = list(dict.fromkeys(dataset.texts + other_domain_texts(random.Random(seed), n)))
    random.Random(seed).shuffle(texts)
    return texts[:n]


def timed(label: str, fn):
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<52}{seconds:>8.1f} s")
    return value, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="extracted texts and candidates each")
    parser.add_argument("--points", type=int, default=5000, help="points on the UMAP map")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")

    embed(["warm-up: load the model"])
    probe = distinct_texts(args.texts, seed=101)
    _, seconds = timed(f"embed {len(probe)} new texts", lambda: embed(probe))
    print(f"{'  -> texts/s':<52}{len(probe) / seconds:>8.1f}")

    extracted, candidates = distinct_texts(args.texts, seed=1), distinct_texts(args.texts, seed=2)
    table, fresh = timed(
        f"compare {len(extracted)} x {len(candidates)}, fresh embeddings", lambda: compare(extracted, candidates)
    )
    _, cached = timed(
        f"compare {len(extracted)} x {len(candidates)}, cached embeddings", lambda: compare(extracted, candidates)
    )
    print(f"{'  -> pairs scored':<52}{len(table):>8}")
    print(
        f"{'  -> target < 30 s (fresh)':<52}{'met' if fresh < COMPARE_TARGET_S else 'NOT met':>8} ({fresh / COMPARE_TARGET_S:.2f} of the budget)"
    )

    texts = distinct_texts(args.points, seed=3)
    embeddings, _ = timed(f"embed {len(texts)} texts for the map", lambda: embed(texts))
    labels = ["a"] * (len(texts) // 2) + ["b"] * (len(texts) - len(texts) // 2)
    _, first = timed(f"project {len(texts)} points (first call, compiles)", lambda: project(embeddings, labels, seed=0))
    _, second = timed(f"project {len(texts)} points (second call)", lambda: project(embeddings, labels, seed=0))
    print(
        f"{'  -> target < 60 s (first call)':<52}{'met' if first < PROJECT_TARGET_S else 'NOT met':>8} ({first / PROJECT_TARGET_S:.2f} of the budget)"
    )


if __name__ == "__main__":
    main()
