"""Throughput of ``workbench.sampling.sample`` against a one-sequence-at-a-time loop.

    python benchmarks/sampling.py [--model smollm2-135m-instruct] [--n 64] [--new-tokens 64] [--baseline-n 8]

Job: n continuations x new-tokens tokens from a 50 x " poem" prompt, sampled at
temperature 1. Both sides run in this process on the same model. The baseline is a plain
transformers ``generate`` call per sequence on the model as it loads (eager attention); its
rate does not depend on how many sequences it runs one after the other, so it runs
--baseline-n of them. Each side: the median of --repeats runs after a warm-up.
Target: ``sample`` >= 10x the baseline's tokens/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from workbench.config import SamplingConfig
from workbench.prompts import repeated_token_prompt
from workbench.sampling import sample
from workbench.session import load_session

TARGET_SPEEDUP = 10.0


def rate(run) -> tuple[float, int, float]:
    """(tokens/s, tokens, seconds) of one run of ``run`` (which returns its token count)."""
    start = time.perf_counter()
    tokens = run()
    seconds = time.perf_counter() - start
    return tokens / seconds, tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=64, help="continuations")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-n", type=int, default=8, help="sequences of the one-at-a-time baseline per run")
    args = parser.parse_args()

    session = load_session(args.model)
    prompt = repeated_token_prompt(session.tokenizer, "poem", 50, context_length=session.info.context_length)
    cfg = SamplingConfig(max_new_tokens=args.new_tokens, n=args.n, seed=0, batch_size=args.batch_size)

    def batched() -> int:
        return sum(len(g.token_ids) for g in sample(session, [prompt.token_ids], cfg))

    input_ids = torch.tensor([prompt.token_ids], device=session.device)

    def one_at_a_time(n: int = args.baseline_n) -> int:
        tokens = 0
        with session.lock, torch.inference_mode():
            for i in range(n):
                torch.manual_seed(i)
                out = session.model.generate(
                    input_ids, attention_mask=torch.ones_like(input_ids), do_sample=True, temperature=1.0, top_k=0,
                    max_new_tokens=args.new_tokens, pad_token_id=session.tokenizer.pad_token_id,
                )  # fmt: skip
                tokens += out.shape[1] - input_ids.shape[1]
        return tokens

    sample(session, [prompt.token_ids], SamplingConfig(max_new_tokens=4, n=2))  # warm-up
    one_at_a_time(1)
    batched_runs = [rate(batched) for _ in range(args.repeats)]
    baseline_runs = [rate(one_at_a_time) for _ in range(args.repeats)]
    batched_rate = statistics.median(r for r, _, _ in batched_runs)
    baseline_rate = statistics.median(r for r, _, _ in baseline_runs)
    speedup = batched_rate / baseline_rate
    print(
        f"model: {args.model} on {session.device} ({session.info.dtype}), torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}"
    )
    print(
        f"job: {args.n} continuations x {args.new_tokens} new tokens from a {len(prompt.token_ids)}-token prompt; median of {args.repeats}"
    )
    runs = ", ".join(f"{t} tokens in {s:.1f} s" for _, t, s in batched_runs)
    print(f"workbench sample (batch {args.batch_size}): {batched_rate:8.1f} tokens/s ({runs})")
    runs = ", ".join(f"{t} tokens in {s:.1f} s" for _, t, s in baseline_runs)
    print(f"one-at-a-time generate (eager):  {baseline_rate:8.1f} tokens/s ({runs})")
    verdict = "met" if speedup >= TARGET_SPEEDUP else "MISSED"
    print(f"speed-up: {speedup:.2f}x (target >= {TARGET_SPEEDUP:.0f}x: {verdict})")


if __name__ == "__main__":
    main()
