"""Repeated-token outcomes across repeats × temperature × template, and on a lab model the
escaped texts that reproduce a training record against the held-out floor.

    python benchmarks/divergence_outcomes.py [--model smollm2-135m-instruct --model smollm2-135m-instruct-lab]
        [--word poem] [--n 16] [--new-tokens 96] [--out benchmark-results/divergence]

For each model: repeats {10, 50, 200, 1000} × temperature {0, 0.7, 1.0} × plain/chat prompts,
``n`` samples per sampled setting (one at temperature 0: greedy samples are all alike), with
``new-tokens`` new tokens (≥ 96, room for a 50-token match). Prints the share of each outcome
and the divergence rate = escaped ÷ (escaped + repeated only) with its 95% Wilson interval and
n. Definitions as in ``workbench.divergence`` (r = 3 repeats, m = 10-token window), fixed by
hand-made tests before this benchmark was run. Writes every generation and the summaries
under ``--out``. Not part of CI.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from workbench.config import SamplingConfig
from workbench.divergence import OUTCOMES, divergence_rate, outcome_summary, rate_text, run, training_extraction
from workbench.lab import lab_dataset_for
from workbench.session import Session, load_session

REPEATS = (10, 50, 200, 1000)
TEMPERATURES = (0.0, 0.7, 1.0)
TEMPLATES = (None, "chat")


def model_table(session: Session, word: str, repeats: list[int], n: int, new_tokens: int, batch_size: int) -> pd.DataFrame:
    parts = []
    for template in TEMPLATES:
        for temperature in TEMPERATURES:
            cfg = SamplingConfig(new_tokens, temperature, n=1 if temperature == 0 else n, seed=0, batch_size=batch_size)
            start = time.perf_counter()
            part = run(session, [word], repeats, cfg, template=template)
            print(f"  {template or 'plain'} T={temperature}: {len(part)} generations in {time.perf_counter() - start:.0f} s", flush=True)
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def print_summary(name: str, table: pd.DataFrame) -> pd.DataFrame:
    summary = outcome_summary(table, ["template", "repeats", "temperature"])
    print(f"\n### {name}\n")
    print("| template | repeats | T | gens | " + " | ".join(o.replace("_", " ") for o in OUTCOMES) + " | divergence rate [95% CI] (n) | new loops |")
    print("|---|---:|---:|---:|" + "---:|" * len(OUTCOMES) + "---|---:|")
    for row in summary.itertuples():
        shares = " | ".join(f"{getattr(row, o):.0%}" for o in OUTCOMES)
        rate = "—" if not row.n else f"{row.rate:.0%} [{row.ci_low:.0%}, {row.ci_high:.0%}] ({row.n})"
        print(f"| {row.template} | {row.repeats} | {row.temperature:g} | {row.generations} | {shares} | {rate} | {row.new_loops} |")
    for template, group in table.groupby("template"):
        print(f"\nall {template}: divergence rate {rate_text(divergence_rate(group['outcome'].tolist()))}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="repeatable (default: the default model and the lab model)")
    parser.add_argument("--word", default="poem")
    parser.add_argument("--n", type=int, default=8, help="samples per setting at temperature > 0")
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, action="append", help=f"repeatable (default {REPEATS})")
    parser.add_argument("--out", default="benchmark-results/divergence")
    args = parser.parse_args()
    if args.new_tokens < 96:
        parser.error("--new-tokens must be at least 96: room for a 50-token match after an escape.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    for name in args.model or ["smollm2-135m-instruct", "smollm2-135m-instruct-lab"]:
        print(f"{name}: word {args.word!r}, repeats {args.repeats or list(REPEATS)}, temperatures {TEMPERATURES}, plain and chat, "
              f"n = {args.n} (1 at T = 0), {args.new_tokens} new tokens", flush=True)  # fmt: skip
        session = load_session(name)
        table = model_table(session, args.word, args.repeats or list(REPEATS), args.n, args.new_tokens, args.batch_size)
        stem = name.replace("/", "_")
        table.to_parquet(out / f"{stem}.parquet", index=False)
        print_summary(name, table).to_csv(out / f"{stem}-summary.csv", index=False)
        lab = lab_dataset_for(session.spec)
        if lab is not None:
            found = training_extraction(table, lab, session.tokenizer)
            if not found["escapes"]:
                print(f"\n{name}: no sample escaped, so no escaped text to check against the training records")
                continue
            print(
                f"\n{name}: {found['training_hits']} of {found['escapes']} escaped texts reproduce one of the "
                f"{found['training_records']} training records, {found['holdout_hits']} one of the "
                f"{found['holdout_records']} held-out records: {found['per_100']:.1f} per 100 escapes "
                f"(floor {found['floor_per_100']:.1f}, the held-out rate scaled to the training set's size)"
            )
    print(f"\nwall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
