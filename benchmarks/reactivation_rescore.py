"""The shipped reactivation samples re-scored with the paper's trimming, beside the old rule,
once: no model is called.

    python benchmarks/reactivation_rescore.py [--dir data/reactivation] [--out data/benchmarks/reactivation-rescore]

Old rule: a matched run was dropped only when it lay wholly inside the prompt. Trimmed (Liu et
al. 2026, m = 5; ``workbench.overlap.trim_instruction``): every 5 consecutive passage words
inside a run that the instruction also holds are cut out, and the pieces of ≥ 5 words count.
Prints BMC@5 per stage and group under both, with 95% bootstrap intervals over passages, and
writes the per-passage scores. The figures in docs/results/reactivation.md are of the build shipped
before issue 28 (10 A-test, 6 A-never, the summary instruction only): `--dir` a checkout of it
(`git worktree add /tmp/old 3d7113f`, then `--dir /tmp/old/data/reactivation`). On a build of
two instructions each is scored with its own wording.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.builds import SavedReport, code_version, command_line
from workbench.overlap import BMC_K, matched_spans, recall, words
from workbench.reactivation import INSTRUCTIONS, ReactivationBuild
from workbench.stats import bootstrap_mean


def old_rule_bmc(samples: list[str], passage: str, prompt: str, k: int = BMC_K) -> float:
    target, asked = words(passage), words(prompt)
    covered = np.zeros(len(target), dtype=bool)
    for text in samples:
        for start, length in matched_spans(words(text), target, asked):
            if length >= k:
                covered[start : start + length] = True
    return float(covered.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="data/reactivation")
    parser.add_argument("--out", default="data/benchmarks/reactivation-rescore")
    args = parser.parse_args()
    started = time.perf_counter()
    built = ReactivationBuild.load(args.dir)
    # read as saved: a report from before held-out instructions has no instruction column
    samples = SavedReport.load(Path(args.dir) / "report", ("samples",), (), "reactivation report").tables["samples"]
    if "instruction" not in samples:
        samples = samples.assign(instruction="summary")
    passages = {p.id: p for p in built.passages}
    rows = []
    for (stage, instruction, passage_id), part in samples.groupby(["stage", "instruction", "passage"], sort=False):
        passage = passages[passage_id]
        texts, asked = part["text"].fillna("").tolist(), INSTRUCTIONS[instruction](passage)
        rows.append({
            "stage": stage, "instruction": instruction, "passage": passage_id, "group": passage.group, "samples": len(texts),
            "bmc_old_rule": old_rule_bmc(texts, passage.text, asked), "bmc_trimmed": recall(texts, passage.text, asked)["bmc"],
        })  # fmt: skip
    scores = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out / "passages.csv", index=False)
    print(
        f"{'stage':<18}{'instruction':<12}{'group':<9}{'n':>3}{'BMC@5 old rule [95%]':>26}{'trimmed (m = 5) [95%]':>26}"
    )
    for (stage, instruction, group), part in scores.groupby(["stage", "instruction", "group"], sort=False):
        old, trimmed = bootstrap_mean(part["bmc_old_rule"]), bootstrap_mean(part["bmc_trimmed"])
        print(
            f"{stage:<18}{instruction:<12}{group:<9}{len(part):>3}"
            + "".join(f"{f'{m:.3f} [{lo:.3f}, {hi:.3f}]':>26}" for m, lo, hi in (old, trimmed))
        )
    manifest = {
        "command": command_line(),
        "code_version": code_version(),
        "bootstrap_seed": 0,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"per-passage scores: {out / 'passages.csv'}; manifest: {out / 'manifest.json'}")


if __name__ == "__main__":
    main()
