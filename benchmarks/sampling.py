"""Throughput of ``workbench.sampling.sample`` against a one-sequence-at-a-time loop.

    python benchmarks/sampling.py [--model smollm2-135m-instruct] [--n 64] [--new-tokens 64]

Job: n continuations × new-tokens tokens from a 50 × " poem" prompt, sampled at
temperature 1. Both sides run in this process on the same model; the baseline is a plain
transformers ``generate`` call per sequence. Target: ``sample`` ≥ 4× the baseline's tokens/s.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from workbench.config import SamplingConfig
from workbench.prompts import repeated_token_prompt
from workbench.sampling import sample
from workbench.session import load_session

TARGET_SPEEDUP = 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=64, help="continuations")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    session = load_session(args.model)
    prompt = repeated_token_prompt(session.tokenizer, "poem", args.repeats, context_length=session.info.context_length)
    cfg = SamplingConfig(max_new_tokens=args.new_tokens, n=args.n, seed=0, batch_size=args.batch_size)

    sample(session, [prompt.token_ids], SamplingConfig(max_new_tokens=4, n=2))  # warm-up
    start = time.perf_counter()
    generations = sample(session, [prompt.token_ids], cfg)
    batched_s = time.perf_counter() - start
    batched_tokens = sum(len(g.token_ids) for g in generations)

    input_ids = torch.tensor([prompt.token_ids], device=session.device)
    baseline_tokens = 0
    start = time.perf_counter()
    with session.lock, torch.inference_mode():
        for i in range(args.n):
            torch.manual_seed(i)
            out = session.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                max_new_tokens=args.new_tokens,
                pad_token_id=session.tokenizer.pad_token_id,
            )
            baseline_tokens += out.shape[1] - input_ids.shape[1]
    baseline_s = time.perf_counter() - start

    batched_rate = batched_tokens / batched_s
    baseline_rate = baseline_tokens / baseline_s
    speedup = batched_rate / baseline_rate
    print(f"model: {args.model} on {session.device} ({session.info.dtype}), cpu threads: {os.cpu_count()}")
    print(f"job: {args.n} continuations x {args.new_tokens} new tokens from a {len(prompt.token_ids)}-token prompt")
    print(f"workbench sample (batch {args.batch_size}): {batched_tokens:6d} tokens in {batched_s:7.2f} s = {batched_rate:8.1f} tokens/s")
    print(f"one-at-a-time generate:        {baseline_tokens:6d} tokens in {baseline_s:7.2f} s = {baseline_rate:8.1f} tokens/s")
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
    print(f"speed-up: {speedup:.2f}x (target >= {TARGET_SPEEDUP:.0f}x: {verdict})")


if __name__ == "__main__":
    main()
