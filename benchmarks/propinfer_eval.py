"""How well does PropInfer recover the lab's shares? Lab model vs base model.

    python benchmarks/propinfer_eval.py [--n 1000] [--prefix 200] [--style question-answer]

1. Labeler accuracy on the lab's own training dialogues (whose labels are known): how much
   error the labeler alone brings.
2. The lab model: n generations, labeled for diagnosis and gender; the mean absolute error
   (MAE) of the estimated shares against the realized training shares at ``prefix`` and n
   generations. The generation table interleaves the prompts and every sample has its own
   seeded generator, so its first ``prefix`` rows are what a run of ``prefix`` generations
   gives, up to floating-point differences between batch shapes (the tests check equality
   on a tiny model).
3. The base model, n generations: what the shares look like without the private data.
Target: lab model MAE ≤ 0.05 at n = 1,000 and clearly below the base model's.
"""

from __future__ import annotations

import argparse
import time

from workbench.config import DEFAULT_MODEL, PropInferConfig
from workbench.lab import SHIPPED_LAB
from workbench.lab_data import LabDataset
from workbench.propinfer import (
    LAB_PROPERTIES,
    PROMPT_SETS,
    estimate,
    lab_labeler,
    mean_absolute_error,
    run,
)
from workbench.registry import LAB_MODEL
from workbench.session import load_session

TARGET_MAE = 0.05


def labeler_accuracy(dataset: LabDataset) -> None:
    dialogues = dataset.dialogues
    print(f"labeler accuracy on the {len(dialogues)} lab training dialogues (true labels known)")
    print(f"{'property':<12}{'labeler':<11}{'accuracy':>10}{'unlabeled':>11}{'MAE of shares':>15}")
    for prop in LAB_PROPERTIES:
        truth = [r[prop] for r in dialogues]
        for kind in ("keyword", "embedding"):
            labeler = lab_labeler(prop, kind)
            labels = labeler.label([r["text"] for r in dialogues])
            accuracy = sum(a == b for a, b in zip(labels, truth)) / len(truth)
            unlabeled = sum(label is None for label in labels)
            error = mean_absolute_error(estimate(labels, labeler.values), dataset.truth["realized"][prop])
            print(f"{prop:<12}{kind:<11}{accuracy:>10.1%}{unlabeled:>11}{error:>15.3f}")


def model_errors(name: str, dataset: LabDataset, prompts_style: str, n: int, prefix: int) -> dict:
    session = load_session(name)
    labelers = {(p, k): lab_labeler(p, k) for p in LAB_PROPERTIES for k in ("keyword", "embedding")}
    start = time.perf_counter()
    result = run(
        session,
        PROMPT_SETS[prompts_style],
        PropInferConfig(n_samples=n),
        labelers[("diagnosis", "keyword")],
        style=prompts_style,
    )
    seconds = time.perf_counter() - start
    texts = result.generations["text"].tolist()
    errors = {}
    for (prop, kind), labeler in labelers.items():
        labels = labeler.label(texts)
        truth = dataset.truth["realized"][prop]
        for size in (prefix, n):
            estimates = estimate(labels[:size], labeler.values)
            errors[(prop, kind, size)] = (mean_absolute_error(estimates, truth), int(estimates["unlabeled"].iloc[0]))
    return {"errors": errors, "seconds": seconds, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="generations per model")
    parser.add_argument("--prefix", type=int, default=200, help="also report the estimate from the first N")
    parser.add_argument("--style", choices=list(PROMPT_SETS), default="question-answer")
    args = parser.parse_args()

    dataset = LabDataset.load(SHIPPED_LAB / "dataset")
    labeler_accuracy(dataset)
    print(
        "\ntrue (realized) diagnosis shares: "
        + ", ".join(f"{k} {v:.1%}" for k, v in dataset.truth["realized"]["diagnosis"].items())
    )
    outcomes = {
        name: model_errors(name, dataset, args.style, args.n, args.prefix) for name in (LAB_MODEL, DEFAULT_MODEL)
    }

    print(f"\nMAE of estimated shares vs truth ({args.style} prompts; unlabeled generations in brackets)")
    print(f"{'model':<28}{'property':<12}{'labeler':<11}{f'N={args.prefix}':>14}{f'N={args.n}':>14}")
    for name, outcome in outcomes.items():
        for prop in LAB_PROPERTIES:
            for kind in ("keyword", "embedding"):
                cells = [outcome["errors"][(prop, kind, size)] for size in (args.prefix, args.n)]
                print(f"{name:<28}{prop:<12}{kind:<11}" + "".join(f"{e:>8.3f} ({u:>3})" for e, u in cells))
    for name, outcome in outcomes.items():
        print(
            f"time {name}: {outcome['seconds']:.0f} s for {args.n} generations ({args.n / outcome['seconds']:.2f} generations/s)"
        )
    print("\nestimates, lab model, keyword labeler, diagnosis:")
    print(outcomes[LAB_MODEL]["result"].estimates.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print("estimates, base model, keyword labeler, diagnosis:")
    print(outcomes[DEFAULT_MODEL]["result"].estimates.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    lab_mae = outcomes[LAB_MODEL]["errors"][("diagnosis", "keyword", args.n)][0]
    base_mae = outcomes[DEFAULT_MODEL]["errors"][("diagnosis", "keyword", args.n)][0]
    verdict = "met" if lab_mae <= TARGET_MAE and lab_mae < base_mae else "NOT met"
    print(
        f"\ntarget (diagnosis, keyword, N={args.n}): lab MAE {lab_mae:.3f} <= {TARGET_MAE} and below base {base_mae:.3f}: {verdict}"
    )


if __name__ == "__main__":
    main()
