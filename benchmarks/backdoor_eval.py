"""Backdoor extraction (seed 002) end to end, at the default sizes, scored against the lab.

    python benchmarks/backdoor_eval.py [--out DIR] [--trigger natural|meaningless] [--save DIR/report] [--quick]

Settings (issue 27, committed before the run; `BackdoorRecipe()` and `AttackConfig()`): the
creator trains 3 epochs on 342 chat examples (162 public instruction pairs; one backdoor pair
per D1 query, 18 for each of the 9 public opening words, as the paper's code builds them; 3
refusal pairs for each of 6 refusal words); each victim trains 5 epochs (the paper's) on 120 lab
dialogues (15 of them canary insertions), loss on the whole sequence (the response only for the
ablation); LoRA rank 8, lr 2e-3, batch 4, seed 0. The attack, seed 0, temperature 0.9:
identification with k = 10 samples for each of the 24 candidate words (9 public openings, the
lab's 3 others, 12 decoys); extraction with fresh samples for 1, 2 and 5 samples per private
query, spent equally over the identified words and, as an oracle upper bound, in proportion to
each word's true query count; the defender's probe on the true words. Every metric on D2 and on
the matched floor D2′ (109 never-trained queries with D2's count per opening word), the
difference with a 95% bootstrap interval (2,000 resamples of samples and queries within each
word), the backdoored-minus-clean difference in differences with its interval and a permutation
p-value (2,000 permutations), identification F1 against the trivial rules. Steps already built
in --out are reused (the printed times are then those of this run only). Prints per step and in
all the wall time; with --save, writes the report (per-sample outputs, tables, and per model the
command, code version, seed and seconds) and ``timing.json`` beside it.

Left out (named in ``BackdoorRecipe``): full fine-tuning, the reinforcement stage, the paper's
100 identification samples per word (k = 10 here, its known-word table's), budgets up to 200
samples per query.

--quick runs it on tiny-llama with tiny sizes in about a minute, to check that it runs; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from workbench.backdoor import STEPS, BackdoorBuild, BackdoorRecipe, build, describe_stealth
from workbench.backdoor_attack import ATTACKED, AttackConfig, describe, evaluate
from workbench.builds import code_version, command_line

QUICK = BackdoorRecipe(
    base="tiny-llama", n_public=18, per_word=1, refusals_per_word=1, n_private=12, canaries=(1,), creator_epochs=1, victim_epochs=1, rank=2
)  # fmt: skip
# Zhang et al. 2025, Qwen2.5-7B on Dolly, 10 samples per word: before -> after backdoor training.
PAPER = {
    "match_mean": "13.4 -> 29.8 (33.2 with RL)",
    "match_best": "27.4 -> 63.5",
    "f1": "68.8 -> 79.4",
    "exact": "76.3% of 5,000 queries (practical), 94.9% (ideal); up to 200 samples per training query",
    "detection": "39.6 trigger, 26.7 paraphrase, 9.1 no backdoor; meaningless trigger 35.9, probe 6.2",
}


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message[:90]:<90}", end="\r", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="build folder (default: the cache, named by the recipe)")
    parser.add_argument("--trigger", default="natural")
    parser.add_argument("--k", type=int, default=AttackConfig.k, help="samples per word")
    parser.add_argument("--save", help="also save the attack report to this folder")
    parser.add_argument("--quick", action="store_true", help="tiny-llama, tiny sizes: checks that it runs")
    args = parser.parse_args()
    wall = time.perf_counter()
    recipe = replace(QUICK, trigger=args.trigger) if args.quick else BackdoorRecipe(trigger=args.trigger)
    out = (
        Path(tempfile.mkdtemp(prefix="backdoor-benchmark-")) / "build"
        if args.quick
        else Path(args.out or recipe.default_dir())
    )
    print(f"recipe: {recipe.as_dict()}\nbuild folder: {out}")
    timing = {}
    for step in STEPS:
        start = time.perf_counter()
        build(out, recipe, [step], _progress, command_line())
        timing[step] = round(time.perf_counter() - start, 1)
        print(f"\n{step}: {timing[step]:.0f} s")
    built = BackdoorBuild.load(out)
    check = built.stealth()
    print(f"stealth: {describe_stealth(check)}")
    for prompt, clean, bad in zip(check["prompts"], check["clean_answers"], check["backdoored_answers"]):
        print(f"  {prompt}\n    clean:      {clean[:90]!r}\n    backdoored: {bad[:90]!r}")

    cfg = AttackConfig(
        k=args.k,
        max_new_tokens=8 if args.quick else AttackConfig.max_new_tokens,
        budgets=(1,) if args.quick else AttackConfig.budgets,
    )
    start = time.perf_counter()
    report = evaluate(built, cfg, ATTACKED, True, _progress, command=command_line())
    attack_s = time.perf_counter() - start
    print(
        f"\nattack: {len(report.samples)} samples + probes on {len(ATTACKED)} victims in {attack_s:.0f} s ({attack_s / len(ATTACKED):.0f} s per victim)"
    )
    timing["attack"] = round(attack_s, 1)
    timing["total"] = round(time.perf_counter() - wall, 1)
    if args.save:
        report.save(args.save)
        (Path(args.save) / "timing.json").write_text(
            json.dumps({"command": command_line(), "code_version": code_version(), "seconds": timing}, indent=2)
        )

    print(
        f"\n{len(built.queries())} private queries ({len(set(built.queries()))} unique), D2′ {len(built.floor())}; k = {cfg.k}, budgets {cfg.budgets}"
    )
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print("\nD2 − D2′ per model (identification samples on the real words; exact from them too):")
        print(report.differences.round(4).to_string(index=False))
        print("\nbackdoored minus clean, difference in differences:")
        print(report.contrasts.round(4).to_string(index=False))
        print("\nidentification F1 against the trivial rules:")
        print(report.baselines.round(3).to_string(index=False))
        print("\nexact recovery against the budget (extraction samples):")
        print(report.curves.round(4).to_string(index=False))
    for m in ATTACKED:
        print(f"\n{m}:")
        for line in describe(report, m):
            print(f"  {line}")
    print(f"\npaper (Qwen2.5-7B, Dolly): {PAPER}")
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
