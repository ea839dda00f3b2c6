"""The attention-sink mechanism behind divergence, on the default model (issue 26, item 4).

    python benchmarks/sink_divergence.py [--out data/benchmarks/sink-divergence] [--skip-causal]

Settings fixed here before any run:

a-c. ``sink_mechanism.mechanism`` on the default model for " poem" at 10, 50, 200 and 1,000
   repeats, with and without a leading special token: hidden-state geometry per layer against
   length-matched prose; the 8 heads with the highest sink score on 256 tokens of prose (chosen
   on prose, measured on both prompts); candidate sink neurons in the first 4 layers (outliers
   of ≥ 20 MADs at position 0 of prose).
d. The causal test. Prompts: the prefill cells of ``divergence_outcomes``'s default grid at
   temperature 0.7 (its seed 0, samples 0–31) whose divergence rate lies between 0.2 and 0.8,
   at most two, in the grid's order (word, then repeats). Tested on seed 1 (96 fresh samples,
   the same under every condition), 128 new tokens, temperature 0.7. The temperature was 1.0
   when first committed; the grid's prefill part then put every T = 1 cell above 0.8, so the
   rule moved to the other temperature of the grid before this test ran. Conditions: baseline; the
   candidate sink neurons found with a leading token (a chat prompt begins with a special token)
   ablated; the 8 sink heads (leading token) scaled to 0; 5 draws each of as many random neurons
   (same layers) and random heads. Held-out prose perplexity under each.

Writes every table, the per-sample outcomes and a manifest (command, code version, seeds, wall
time per part) under ``--out``. Not part of CI.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from workbench import sink_mechanism
from workbench.builds import code_version, command_line
from workbench.config import SamplingConfig
from workbench.divergence import outcome_summary
from workbench.session import load_session

MODEL = "smollm2-135m-instruct"
WORD = "poem"
REPEATS = (10, 50, 200, 1000)
HEADS = 8
NEURON_LAYERS = 4
GRID = Path("data/benchmarks/divergence/default-parts/prefill.parquet")
RATE_RANGE = (0.2, 0.8)
MAX_PROMPTS = 2
TEST = SamplingConfig(max_new_tokens=128, temperature=0.7, n=96, seed=1, batch_size=32)
DRAWS = 5


def chosen_prompts(grid: pd.DataFrame) -> list[tuple[str, int, str]]:
    """Prefill cells at the test's temperature with a divergence rate in RATE_RANGE, in the grid's order."""
    cells = outcome_summary(
        grid[(grid["template"] == "prefill") & (grid["temperature"] == TEST.temperature)], ["word", "repeats"]
    )
    order = {word: i for i, word in enumerate(dict.fromkeys(grid["word"]))}
    cells = cells.assign(order=cells["word"].map(order)).sort_values(["order", "repeats"])
    inside = cells[cells["rate"].between(*RATE_RANGE)]
    for row in cells.itertuples():
        print(
            f"  prefill {row.word} × {row.repeats}: rate {row.rate:.2f} (n {row.n}){'  ← chosen' if row.Index in inside.index[:MAX_PROMPTS] else ''}"
        )
    return [(row.word, int(row.repeats), "prefill") for row in inside.head(MAX_PROMPTS).itertuples()]


def every_percent():
    """A progress callback that prints once per percent done."""
    shown = [-1]

    def progress(fraction: float, message: str) -> None:
        if int(fraction * 100) > shown[0]:
            shown[0] = int(fraction * 100)
            print(f"[{fraction:4.0%}] {message}", flush=True)

    return progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/benchmarks/sink-divergence")
    parser.add_argument("--skip-causal", action="store_true", help="items a-c only")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    session = load_session(MODEL)
    manifest = {
        "command": command_line(),
        "code_version": code_version(),
        "model": MODEL,
        "word": WORD,
        "repeats": REPEATS,
        "seconds": {},
    }

    start = time.perf_counter()
    tables = sink_mechanism.mechanism(session, WORD, REPEATS, heads=HEADS, neuron_layers=NEURON_LAYERS)
    manifest["seconds"]["mechanism"] = round(time.perf_counter() - start, 1)
    sink_mechanism.save_result({**tables, "manifest": manifest}, out)
    geometry = tables["geometry"]
    print("\n(a) mean over layers of cos(h[p], h[0]) and ‖h[p]‖/‖h[0]‖, repeated against prose:")
    print(
        geometry.groupby(["leading", "repeats", "prompt"])[["cosine", "norm_ratio"]]
        .mean()
        .unstack("prompt")
        .round(3)
        .to_string()
    )
    print("\n(b) sink fraction of the top sink heads (mean over heads):")
    print(
        tables["sink_fractions"]
        .groupby(["leading", "repeats", "prompt"])["sink_fraction"]
        .mean()
        .unstack("prompt")
        .round(3)
        .to_string()
    )
    print("\n(c) candidate sink neurons:")
    print(tables["sink_neurons"].round(3).to_string(index=False))
    if args.skip_causal:
        return

    print("\n(d) prompts for the causal test:")
    prompts = chosen_prompts(pd.read_parquet(GRID))
    neurons_found = tables["sink_neurons"].query("leading and candidate")
    neurons = {int(layer): [int(n) for n in group["neuron"]] for layer, group in neurons_found.groupby("layer")}
    heads = sink_mechanism.top_sink_heads(session, HEADS, leading=True)
    manifest["causal"] = {
        "prompts": prompts,
        "neurons": neurons,
        "heads": heads,
        "test_seed": TEST.seed,
        "samples": TEST.n,
        "draws": DRAWS,
    }
    if not prompts:
        print("no prefill cell has a rate between 0.2 and 0.8: no causal test")
    else:
        start = time.perf_counter()
        chosen = sink_mechanism.conditions(session, neurons, heads, draws=DRAWS, seed=0)
        per_sample, summary = sink_mechanism.causal_test(session, prompts, chosen, TEST, progress=every_percent())
        per_sample.to_parquet(out / "causal-samples.parquet", index=False)
        manifest["seconds"]["causal"] = round(time.perf_counter() - start, 1)
        print(summary.round(3).to_string(index=False))
        tables["causal"] = summary
    sink_mechanism.save_result({**tables, "manifest": manifest}, out)
    print(f"\nwall time {sum(manifest['seconds'].values()):.0f} s")


if __name__ == "__main__":
    main()
