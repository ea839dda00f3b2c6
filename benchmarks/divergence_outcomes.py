"""Repeated-token outcomes over a committed grid: templates × words × repeats × temperatures.

    python benchmarks/divergence_outcomes.py [--grid default|lab|both] [--out data/benchmarks/divergence]

The grid (issue 26, item 2) is fixed here, before any run:

- the default model: plain, chat and prefill prompts; the words in ``WORDS``; repeats 10, 50,
  200 and 1,000; temperatures 0.7 and 1.0; 32 samples per cell; 128 new tokens;
- the lab model: chat and prefill at temperature 1.0, the same words, repeats and samples.

``WORDS`` are three words earlier runs used and one the model rarely writes, chosen before any
run by a rule stated in advance: of the single-token words "quartz", "zinc", "moss" and
"lichen", the one with the highest token id (the tokenizer's BPE merged it last, so it was the
rarest pair in its training text). Seeds: sample j of prompt i draws from (seed 0, i, j), the
same at every temperature. Outcomes as defined in ``workbench.divergence`` (r = 3 repeats,
m = 10 tokens), fixed by hand-made tests committed before this ran.

Prints, per cell, the share of each outcome and the divergence rate = escaped ÷ (escaped +
repeated only) with its 95% Wilson interval and n; and, per template × word × temperature,
how the rate moves from 10 to 1,000 repeats: the difference with Newcombe's 95% interval.
Writes every generation (parquet), the summaries (CSV) and a manifest (command, code version,
seeds, wall time per grid) under ``--out``; each template's part is saved as it finishes, and a
rerun resumes from them. Prefill runs first: the causal test (``sink_divergence.py``) draws its
prompts from those cells. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from workbench.builds import code_version, command_line
from workbench.config import SamplingConfig
from workbench.divergence import OUTCOMES, outcome_summary, run
from workbench.prompts import single_token_form
from workbench.session import load_session
from workbench.stats import rate_difference

RARE_CANDIDATES = ("quartz", "zinc", "moss", "lichen")
SEED = 0
GRIDS = {
    "default": {
        "model": "smollm2-135m-instruct", "templates": ("prefill", "chat", None), "repeats": (10, 50, 200, 1000),
        "temperatures": (0.7, 1.0), "n": 32, "new_tokens": 128,
    },
    "lab": {
        "model": "smollm2-135m-instruct-lab", "templates": ("chat", "prefill"), "repeats": (10, 50, 200, 1000),
        "temperatures": (1.0,), "n": 32, "new_tokens": 128,
    },
}  # fmt: skip


def rare_word(tokenizer) -> str:
    """The candidate the tokenizer merged last (highest id): the rule fixed before any run."""
    ids = {word: single_token_form(tokenizer, word) for word in RARE_CANDIDATES}
    return max((found[0], word) for word, found in ids.items() if found is not None)[1]


def grid_table(session, grid: dict, words: list[str], batch_size: int, parts_dir: Path) -> tuple[pd.DataFrame, dict]:
    """Every template's generations; each template's part is saved as it finishes and reused by
    a later run, so an interrupted grid resumes (the seeds make a part the same either way)."""
    parts, seconds = [], {}
    for template in grid["templates"]:
        name = template or "plain"
        saved = parts_dir / f"{name}.parquet"
        if saved.is_file():
            parts.append(pd.read_parquet(saved))
            seconds[name] = json.loads((parts_dir / f"{name}.json").read_text())["seconds"]
            print(f"  {name}: {len(parts[-1])} generations, done by an earlier run ({seconds[name]:.0f} s)", flush=True)
            continue
        cfg = SamplingConfig(grid["new_tokens"], grid["temperatures"][0], n=grid["n"], seed=SEED, batch_size=batch_size)
        start = time.perf_counter()
        part = run(
            session, words, list(grid["repeats"]), cfg, template=template, temperatures=list(grid["temperatures"])
        )
        seconds[name] = round(time.perf_counter() - start, 1)
        part.to_parquet(saved, index=False)
        (parts_dir / f"{name}.json").write_text(json.dumps({"seconds": seconds[name], "code_version": code_version()}))
        print(f"  {name}: {len(part)} generations in {seconds[name]:.0f} s", flush=True)
        parts.append(part)
    return pd.concat(parts, ignore_index=True), seconds


def print_cells(name: str, table: pd.DataFrame) -> pd.DataFrame:
    summary = outcome_summary(table, ["template", "word", "repeats", "temperature"])
    print(f"\n### {name}: outcomes per cell\n")
    print(
        "| template | word | repeats | T | gens | "
        + " | ".join(o.replace("_", " ") for o in OUTCOMES)
        + " | divergence rate [95% CI] (n) |"
    )
    print("|---|---|---:|---:|---:|" + "---:|" * len(OUTCOMES) + "---|")
    for row in summary.itertuples():
        shares = " | ".join(f"{getattr(row, o):.0%}" for o in OUTCOMES)
        rate = "—" if not row.n else f"{row.rate:.0%} [{row.ci_low:.0%}, {row.ci_high:.0%}] ({row.n})"
        print(
            f"| {row.template} | {row.word} | {row.repeats} | {row.temperature:g} | {row.generations} | {shares} | {rate} |"
        )
    return summary


def repeats_trend(table: pd.DataFrame, low: int, high: int) -> pd.DataFrame:
    """Per template × word × temperature: rate at ``high`` repeats − rate at ``low``, Newcombe's interval."""
    rows = []
    for (template, word, temperature), group in table.groupby(["template", "word", "temperature"]):
        counts = {}
        for repeats in (low, high):
            outcomes = group.loc[group["repeats"] == repeats, "outcome"]
            counts[repeats] = (
                int((outcomes == "escaped").sum()),
                int(outcomes.isin(["escaped", "repeated_only"]).sum()),
            )
        d, ci_low, ci_high = rate_difference(*counts[high], *counts[low])
        rows.append({"template": template, "word": word, "temperature": temperature, f"escaped_{low}": counts[low][0],
                     f"n_{low}": counts[low][1], f"escaped_{high}": counts[high][0], f"n_{high}": counts[high][1],
                     "difference": d, "ci_low": ci_low, "ci_high": ci_high})  # fmt: skip
    trend = pd.DataFrame(rows)
    print(f"\nRate at {high} repeats − rate at {low} (Newcombe 95% interval; n = generations that kept repeating):\n")
    for row in trend.itertuples():
        if not (getattr(row, f"n_{low}") and getattr(row, f"n_{high}")):
            print(
                f"  {row.template:8} {row.word:8} T={row.temperature:g}: no rate (no generation kept repeating at one end)"
            )
            continue
        said = (
            "not distinguishable from 0"
            if not (row.ci_low > 0 or row.ci_high < 0)
            else ("up" if row.ci_low > 0 else "down")
        )
        print(f"  {row.template:8} {row.word:8} T={row.temperature:g}: {row.difference:+.0%} [{row.ci_low:+.0%}, {row.ci_high:+.0%}] "
              f"(n {getattr(row, f'n_{low}')} → {getattr(row, f'n_{high}')}): {said}")  # fmt: skip
    return trend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=["default", "lab", "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="data/benchmarks/divergence")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"command": command_line(), "code_version": code_version(), "seed": SEED, "grids": {}}
    for name in ["default", "lab"] if args.grid == "both" else [args.grid]:
        grid = GRIDS[name]
        began = time.perf_counter()
        session = load_session(grid["model"])
        words = ["poem", "company", "book", rare_word(session.tokenizer)]
        print(
            f"{name} grid on {grid['model']}: words {words}, {json.dumps({k: v for k, v in grid.items() if k != 'model'})}",
            flush=True,
        )
        parts_dir = out / f"{name}-parts"
        parts_dir.mkdir(exist_ok=True)
        table, seconds = grid_table(session, grid, words, args.batch_size, parts_dir)
        table.to_parquet(out / f"{name}.parquet", index=False)
        print_cells(grid["model"], table).to_csv(out / f"{name}-cells.csv", index=False)
        repeats_trend(table, min(grid["repeats"]), max(grid["repeats"])).to_csv(out / f"{name}-trend.csv", index=False)
        wall = round(time.perf_counter() - began, 1)
        manifest["grids"][name] = {
            **grid,
            "words": words,
            "generations": len(table),
            "seconds_per_template": seconds,
            "wall_seconds": wall,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        print(f"\n{name} grid: wall time {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
