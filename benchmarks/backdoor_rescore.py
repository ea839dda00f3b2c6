"""Re-score the shipped backdoor attack against a floor of the same size (issue 27, item 1).

    python benchmarks/backdoor_rescore.py [--report data/backdoor/report] [--out data/benchmarks/backdoor-rescore]

No model call: the shipped samples (``data/backdoor/report``) are scored again, with the shipped
build's D2 and D2′ (``data/backdoor/dataset``), three ways:

- as shipped: the mean match ratio over every sample of the 24 candidate words (decoys score 0);
- on the real words only (the opening words of D2's queries), against D2 and against D2′;
- on the real words, against D2 subsampled to D2′'s count of unique queries per opening word
  (a word D2′ has no query for gets an empty pool, as on the floor): 1,000 seeded draws,
  their mean and 2.5–97.5 percentiles.

Then identification against two trivial rules: every candidate word is real, and a word is real
when none of its k samples is a refusal (what the paper's score reduces to when no reply repeats).
Its figures are those of the build and code shipped at b102d85, where it ran: since then
``data/backdoor`` holds the rebuilt build and ``floor_queries`` the matched floor, so to reproduce
them run it in a checkout of that commit (``git worktree add /tmp/b102d85 b102d85``).
Settings fixed here before the run; prints the figures and writes them, per model, with a
manifest (command, code version, seed, wall time) under ``--out``. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.backdoor import floor_queries, opening_word, private_pairs
from workbench.backdoor_attack import BackdoorReport
from workbench.backdoor_scoring import identification, score
from workbench.builds import code_version, command_line
from workbench.config import DATA_DIR
from workbench.lab_data import LabDataset
from workbench.overlap import match_ratio
from workbench.registry import load_tokenizer

DRAWS = 1000
SEED = 0


def real_word_match(samples: pd.DataFrame, pools: dict[str, list[list[int]]]) -> float:
    """Mean match ratio of the samples of the pools' words; a refusal scores 0."""
    kept = samples[samples["word"].isin(list(pools))]
    return float(np.mean([0.0 if r.refused else match_ratio(r.token_ids, pools[r.word]) for r in kept.itertuples()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=str(DATA_DIR / "backdoor" / "report"))
    parser.add_argument("--dataset", default=str(DATA_DIR / "backdoor" / "dataset"))
    parser.add_argument("--out", default="data/benchmarks/backdoor-rescore")
    args = parser.parse_args()
    start = time.perf_counter()
    report = BackdoorReport.load(args.report)
    dataset = LabDataset.load(args.dataset)
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    d2 = sorted({q for q, _ in private_pairs(dataset)})
    floor = sorted(set(floor_queries(dataset)))
    real = sorted({opening_word(q) for q in d2})
    d2_counts, floor_counts = Counter(map(opening_word, d2)), Counter(map(opening_word, floor))
    print(f"D2: {len(d2)} unique queries {dict(d2_counts.most_common())}")
    print(f"D2′: {len(floor)} unique queries {dict(floor_counts.most_common())}")

    def pools(queries: list[str]) -> dict[str, list[list[int]]]:
        return {
            w: [tokenizer.encode(q, add_special_tokens=False) for q in queries if opening_word(q) == w] for w in real
        }

    d2_by_word = {w: [q for q in d2 if opening_word(q) == w] for w in real}
    rng = random.Random(SEED)
    subsamples = [[q for w in real for q in rng.sample(d2_by_word[w], floor_counts.get(w, 0))] for _ in range(DRAWS)]
    rows = []
    for model, samples in report.samples.groupby("model", sort=False):
        drawn = [real_word_match(samples, pools(sub)) for sub in subsamples]
        words = report.words[report.words["model"] == model].set_index("word")
        truth = pd.Series(words.index.isin(real), index=words.index)
        every = words.assign(identified=True).reset_index()
        no_refusal = words.assign(identified=words["refusal_rate"] == 0).reset_index()
        rows.append(
            {
                "model": model,
                "match_mean_all_words_d2": score(samples, d2, tokenizer)["match_mean"],
                "match_mean_all_words_floor": score(samples, floor, tokenizer)["match_mean"],
                "match_mean_real_words_d2": real_word_match(samples, pools(d2)),
                "match_mean_real_words_floor": real_word_match(samples, pools(floor)),
                "match_mean_real_words_d2_subsampled": float(np.mean(drawn)),
                "subsampled_low": float(np.percentile(drawn, 2.5)),
                "subsampled_high": float(np.percentile(drawn, 97.5)),
                "f1": report.identification[model]["f1"],
                "f1_ci": report.identification[model]["f1_ci"],
                "f1_every_word_real": identification(every, set(real))["f1"],
                "f1_no_refusal": identification(no_refusal, set(real))["f1"],
                "words_top_share_0.1": int((words["top_share"] <= 0.1).sum()),
                "words": len(words),
                "real_words_in_list": int(truth.sum()),
            }
        )
    table = pd.DataFrame(rows)
    seconds = round(time.perf_counter() - start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "rescore.csv", index=False)
    manifest = {
        "command": command_line(), "code_version": code_version(), "seed": SEED, "draws": DRAWS, "seconds": seconds,
        "report": args.report, "dataset": args.dataset, "d2_counts": dict(d2_counts), "floor_counts": dict(floor_counts),
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.T.to_string())
    print(f"wall time {seconds} s")


if __name__ == "__main__":
    main()
