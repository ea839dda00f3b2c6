"""Does the lab model memorize its fine-tuning set? Base vs lab model.

    python benchmarks/lab_eval.py [--records 100] [--alternatives 1000]

Prints the perplexity of training records and of held-out records of the same style under
the base and the lab model (memorization shows as a gap between the two on the lab model,
not only a drop on both), and canary exposure by insertion count: the rank of the true
secret among random alternatives of the same format, scored by the log-likelihood of the
canary sentence, and exposure = log2(candidates) - log2(rank) (Carlini et al. 2019).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np

from workbench.config import ModelSpec
from workbench.lab import SHIPPED_LAB
from workbench.lab_data import LabDataset, canary_secret
from workbench.sampling import text_logprobs
from workbench.session import load_session


def mean_perplexity(session, texts: list[str]) -> float:
    """exp of the token-weighted mean negative log-likelihood over all texts."""
    logprobs = np.concatenate(text_logprobs(session, texts, batch_size=32))
    return math.exp(-logprobs.mean())


def canary_rank(session, sentence_prefix: str, secret: str, alternatives: list[str]) -> int:
    candidates = [secret, *alternatives]
    scores = [lp.sum() for lp in text_logprobs(session, [sentence_prefix + c for c in candidates], batch_size=64)]
    return 1 + sum(score > scores[0] for score in scores[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100, help="training and held-out records to score")
    parser.add_argument("--alternatives", type=int, default=1000, help="random secrets per canary")
    parser.add_argument("--lab", default=str(SHIPPED_LAB))
    args = parser.parse_args()

    start = time.perf_counter()
    dataset = LabDataset.load(f"{args.lab}/dataset")
    recipe = json.loads(Path(args.lab, "adapter", "recipe.json").read_text())
    base = load_session(recipe["base"])
    lab = load_session(ModelSpec(recipe["base"], adapter=str(Path(args.lab, "adapter"))))
    train = [r["text"] for r in dataset.dialogues][: args.records]
    held_out = [r["text"] for r in dataset.holdout][: args.records]
    print(f"records scored: {len(train)} training, {len(held_out)} held out")
    print(f"{'perplexity':<22}{'base':>10}{'lab':>10}")
    for name, texts in (("training records", train), ("held-out records", held_out)):
        print(f"{name:<22}{mean_perplexity(base, texts):>10.2f}{mean_perplexity(lab, texts):>10.2f}")

    rng = random.Random(0)
    candidates = args.alternatives + 1
    print(f"\ncanary exposure (rank among {candidates} candidates; max exposure {math.log2(candidates):.2f} bits)")
    print(f"{'insertions':>10} {'kind':<11}{'rank base':>10}{'rank lab':>10}{'exposure base':>15}{'exposure lab':>14}")
    for canary in sorted(dataset.canaries, key=lambda c: c.insertions):
        record = next(r["text"] for r in dataset.records if r["canary"] == canary.secret)
        prefix = record[: record.index(canary.secret)]
        alternatives = set()
        while len(alternatives) < args.alternatives:
            alternative = canary_secret(canary.kind, rng)
            if alternative != canary.secret:
                alternatives.add(alternative)
        ranks = [canary_rank(s, prefix, canary.secret, sorted(alternatives)) for s in (base, lab)]
        exposures = [math.log2(candidates) - math.log2(rank) for rank in ranks]
        print(
            f"{canary.insertions:>10} {canary.kind:<11}{ranks[0]:>10}{ranks[1]:>10}{exposures[0]:>15.2f}{exposures[1]:>14.2f}"
        )
    print(f"\ntime: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
