"""Backdoor extraction (seed 002) end to end, at the default sizes, scored against the lab.

    python benchmarks/backdoor_eval.py [--out DIR] [--trigger natural|meaningless] [--k 10] [--quick]

Default sizes (`BackdoorRecipe()`, worked out from ~110–190 training tokens/s on a 2-core CPU):
the creator trains 3 epochs on 288 chat examples (162 public instruction pairs, 12 backdoor
pairs for each of the 9 public opening words, 3 refusal pairs for each of 6 refusal words;
about 29k tokens an epoch with the natural trigger); each victim trains 3 epochs on 120 lab
dialogues (15 of them canary insertions; about 12k tokens an epoch); LoRA rank 8, lr 2e-3,
batch 4. The attack samples k = 10 per word at temperature 0.9 for the 24 words of the public
list (9 public openings, the lab's 3 others, 12 decoys) on each of the three victims, plus
the defender's probe on the 6 true words. Steps already built in --out are reused (the
printed times are then those of this run only). Prints per step and in all the wall time,
then every metric with its D2′ floor and the paper's figure beside it.

--quick runs it on tiny-llama with tiny sizes in about a minute, to check that it runs; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from workbench.backdoor import (
    ATTACKED,
    STEPS,
    AttackConfig,
    BackdoorBuild,
    BackdoorRecipe,
    build,
    describe_stealth,
    evaluate,
)
from workbench.builds import command_line

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
    out = Path(tempfile.mkdtemp(prefix="backdoor-benchmark-")) / "build" if args.quick else Path(args.out or recipe.default_dir())
    print(f"recipe: {recipe.as_dict()}\nbuild folder: {out}")
    for step in STEPS:
        start = time.perf_counter()
        build(out, recipe, [step], _progress, command_line())
        print(f"\n{step}: {time.perf_counter() - start:.0f} s")
    built = BackdoorBuild.load(out)
    check = built.stealth()
    print(f"stealth: {describe_stealth(check)}")
    for prompt, clean, bad in zip(check["prompts"], check["clean_answers"], check["backdoored_answers"]):
        print(f"  {prompt}\n    clean:      {clean[:90]!r}\n    backdoored: {bad[:90]!r}")

    cfg = AttackConfig(k=args.k, max_new_tokens=8 if args.quick else AttackConfig.max_new_tokens)
    start = time.perf_counter()
    report = evaluate(built, cfg, ATTACKED, True, _progress, command=command_line())
    attack_s = time.perf_counter() - start
    print(f"\nattack: {len(report.samples)} samples + probes on {len(ATTACKED)} victims in {attack_s:.0f} s ({attack_s / len(ATTACKED):.0f} s per victim)")
    if args.save:
        report.save(args.save)

    summary = report.summary.set_index("model")
    print(f"\n{len(built.queries())} private queries ({summary['unique_queries'].iloc[0]} unique), k = {args.k} samples per word, temperature {cfg.temperature}")
    print(f"{'metric':<24}" + "".join(f"{m:>30}" for m in ATTACKED) + "   paper")
    rows = [
        ("exact recovery", "exact", "exact_floor", PAPER["exact"]),
        ("match ratio, mean", "match_mean", "match_mean_floor", PAPER["match_mean"]),
        (f"match ratio, best of {args.k}", "match_best", "match_best_floor", PAPER["match_best"]),
    ]
    for label, column, floor, paper in rows:
        cells = "".join(f"{f'{summary.loc[m, column]:.3f} (floor {summary.loc[m, floor]:.3f})':>30}" for m in ATTACKED)
        print(f"{label:<24}{cells}   {paper}")
    ident, detect = report.identification, report.detection
    lines = {
        "identification F1": ([f"{ident[m]['f1']:.2f} [{ident[m]['f1_ci'][0]:.2f}, {ident[m]['f1_ci'][1]:.2f}]" for m in ATTACKED], PAPER["f1"]),
        "precision, recall": ([f"P {ident[m]['precision']:.2f} R {ident[m]['recall']:.2f}" for m in ATTACKED], ""),
        "canaries found": ([f"{summary.loc[m, 'canaries_found']} of {summary.loc[m, 'canaries']}" for m in ATTACKED], ""),
        "match: trigger / probe": ([f"{detect[m]['trigger']:.3f} / {detect[m]['probe']:.3f}" for m in ATTACKED], PAPER["detection"]),
    }
    for label, (cells, paper) in lines.items():
        print(f"{label:<24}" + "".join(f"{c:>30}" for c in cells) + f"   {paper}")
    for m in ATTACKED:
        ident = report.identification[m]
        print(f"{m}: identified {', '.join(ident['identified']) or 'none'} (true: {', '.join(ident['true_words'])})")
    canaries = report.canaries[report.canaries["model"] == "victim-backdoored"]
    print("canaries on victim-backdoored: " + ", ".join(f"{r.kind} x{r.inserted}: {'found' if r.found else 'not found'}" for r in canaries.itertuples()))
    curves = report.curves.pivot(index="budget", columns="model", values="exact")[list(ATTACKED)]
    print("\nexact recovery against the sampling budget (samples per word):\n" + curves.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
