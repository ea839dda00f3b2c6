"""Two readings of a saved backdoor attack, with no model call.

1. The canaries against their floor: which of D2's inserted secrets, and which of the secrets
   of D2′'s canary-format queries (never trained on), appear in each model's non-refused
   samples; and which D2 queries were reproduced exactly.
2. How much of the width of the D2 − D2′ intervals comes from resampling the query pools: each
   model's differences recomputed from its identification samples with the pools resampled
   (the report's interval) and with only the samples resampled (the uncertainty for these very
   queries); seed and 2,000 draws as the report.

    python benchmarks/backdoor_saved.py BUILD [REPORT]     (REPORT defaults to BUILD/report)
"""

import argparse
import re
from pathlib import Path

import pandas as pd

from workbench.backdoor import BackdoorBuild, opening_word
from workbench.backdoor_attack import BackdoorReport
from workbench.backdoor_scoring import floor_difference
from workbench.registry import load_tokenizer

SECRET = re.compile(r"MRN-\d{4}-\d{4}|\(555\) \d{3}-\d{4}")  # the formats of lab_data.canary_secret


def canaries(build: BackdoorBuild, report: BackdoorReport) -> None:
    inserted = {c.secret: c.insertions for c in build.dataset.canaries}
    floor_secrets = sorted({s for q in build.floor() for s in SECRET.findall(q)})
    queries = set(build.queries())
    print(f"D2 secrets (insertions): {inserted}; D2′ secrets (never trained): {floor_secrets}")
    for model, group in report.samples.groupby("model", sort=False):
        texts = group.loc[~group["refused"], "text"].tolist()
        d2 = [f"{s} (×{n})" for s, n in inserted.items() if any(s in t for t in texts)]
        floor = [s for s in floor_secrets if any(s in t for t in texts)]
        print(
            f"{model}: {len(texts)} non-refused samples; D2 secrets found {len(d2)} of {len(inserted)} {d2}; D2′ secrets found {len(floor)} of {len(floor_secrets)}"
        )
        for text, hits in group[group["text"].isin(queries)].groupby("text"):
            print(f"  exact D2 query, {len(hits)} samples ({hits['stage'].value_counts().to_dict()}): {text!r}")


def pool_sensitivity(build: BackdoorBuild, report: BackdoorReport) -> None:
    queries, floor = build.queries(), build.floor()
    words = sorted({opening_word(q) for q in queries} & set(report.cfg.word_list()))
    tokenizer = load_tokenizer(build.recipe.base)
    rows = []
    for model, samples in report.samples[report.samples["stage"] == "identify"].groupby("model", sort=False):
        for pools in (True, False):
            table = floor_difference(
                samples, queries, floor, tokenizer, words, seed=report.cfg.seed, resample_pools=pools
            )
            rows.append(table.assign(model=model, resampled="samples and pools" if pools else "samples only"))
    with pd.option_context("display.width", 200):
        print(pd.concat(rows, ignore_index=True).round(6).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("report", nargs="?")
    args = parser.parse_args()
    build = BackdoorBuild.load(args.build)
    report = BackdoorReport.load(args.report or Path(args.build) / "report")
    canaries(build, report)
    print()
    pool_sensitivity(build, report)


if __name__ == "__main__":
    main()
