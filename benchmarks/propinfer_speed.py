"""Time of property inference on the lab model, and that the same seed gives the same estimates.

    python benchmarks/propinfer_speed.py [--n 1000] [--repeats 3]

The lab model, n generations (question-answer prompts, the default sampling settings), labeled
for diagnosis by the keyword labeler: the median time of --repeats runs after a warm-up, and
whether every run gave identical estimates. Target: 1,000 generations in <= 240 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from workbench.config import PropInferConfig
from workbench.propinfer import PROMPT_SETS, lab_labeler, run
from workbench.registry import LAB_MODEL
from workbench.session import load_session

TARGET_S = 240.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--style", default="question-answer", choices=list(PROMPT_SETS))
    args = parser.parse_args()

    session = load_session(LAB_MODEL)
    labeler = lab_labeler("diagnosis")
    run(session, PROMPT_SETS[args.style], PropInferConfig(n_samples=8), labeler, style=args.style)  # warm-up
    seconds, estimates = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = run(session, PROMPT_SETS[args.style], PropInferConfig(n_samples=args.n), labeler, style=args.style)
        seconds.append(time.perf_counter() - start)
        estimates.append(result.estimates)
    median = statistics.median(seconds)
    same = all(e.equals(estimates[0]) for e in estimates[1:])
    tokens = int(result.generations["text"].map(lambda t: len(session.tokenizer.encode(t))).sum())
    print(f"lab model, {args.n} generations ({args.style} prompts), torch threads {torch.get_num_threads()}: "
          f"median {median:.0f} s of {', '.join(f'{s:.0f}' for s in seconds)} s; about {tokens / median:.0f} generated tokens/s")  # fmt: skip
    print(f"the same seed gave identical estimates in all {args.repeats} runs: {same}")
    print(result.estimates.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    verdict = "met" if median <= TARGET_S and same else "MISSED"
    print(f"target: {args.n} generations in <= {TARGET_S:.0f} s ({median:.0f} s), same estimates every run: {verdict}")


if __name__ == "__main__":
    main()
