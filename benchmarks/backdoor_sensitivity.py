"""How much of the width of a backdoor report's D2 − D2′ intervals comes from resampling the
query pools: each victim's differences recomputed from its saved identification samples with
the pools resampled (the report's interval) and with only the samples resampled (the
uncertainty for these very 109 + 109 queries).

    python benchmarks/backdoor_sensitivity.py BUILD [REPORT]     (REPORT defaults to BUILD/report)

No model call; seed 0 and 2,000 draws, as the report.
"""

import argparse
from pathlib import Path

import pandas as pd

from workbench.backdoor import BackdoorBuild, opening_word
from workbench.backdoor_attack import BackdoorReport
from workbench.backdoor_scoring import floor_difference
from workbench.registry import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("report", nargs="?")
    args = parser.parse_args()
    build = BackdoorBuild.load(args.build)
    report = BackdoorReport.load(args.report or Path(args.build) / "report")
    queries, floor = build.queries(), build.floor()
    words = sorted({opening_word(q) for q in queries} & set(report.cfg.word_list()))
    tokenizer = load_tokenizer(build.recipe.base)
    rows = []
    for model, samples in report.samples[report.samples["stage"] == "identify"].groupby("model", sort=False):
        for pools in (True, False):
            table = floor_difference(samples, queries, floor, tokenizer, words, seed=report.cfg.seed, resample_pools=pools)
            rows.append(table.assign(model=model, resampled="samples and pools" if pools else "samples only"))
    with pd.option_context("display.width", 200):
        print(pd.concat(rows, ignore_index=True).round(6).to_string(index=False))


if __name__ == "__main__":
    main()
