"""The default model in-process against the same weights served by vLLM's CPU build.

    python benchmarks/endpoint.py [--n 64] [--new-tokens 64] [--propinfer 400] [--port 8011]

Jobs, the same on both sides: n continuations × new-tokens tokens of a 50 × " poem" prompt at
temperature 1, with 1 and with n sequences at once (in-process: batch size 1 and n; served:
1 and n requests in flight); teacher-forced log-probs of a few texts; and property inference
(diagnosis, keyword labeler, chat prompts, no seed sent) of the lab model (in-process: the
registry's lab model; served: the lab adapter under vLLM's LoRA support, tied to data/lab).
Targets: log-probs equal to <= 1e-3 per token; the two MAEs within 0.03 of each other.

The two sides never run at once: two torch processes on two cores slow each other badly.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import time

import numpy as np
import torch

from workbench import vllm_server
from workbench.config import ModelSpec, PropInferConfig, SamplingConfig
from workbench.lab import lab_dataset_for
from workbench.prompts import repeated_token_prompt
from workbench.propinfer import PROMPT_SETS, lab_labeler, mean_absolute_error
from workbench.propinfer import run as run_propinfer
from workbench.registry import LAB_DIR, LAB_MODEL
from workbench.sampling import sample, text_logprobs
from workbench.session import load_session

TEXTS = [
    "Four score and seven years ago our fathers brought forth on this continent a new nation, conceived in liberty.",
    "Patient: I have had a dry cough for two weeks and it gets worse at night.\nDoctor: Any fever or shortness of breath?",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
]
LOGPROB_TOLERANCE = 1e-3
MAE_TOLERANCE = 0.03


def throughput(session, prompt: list[int], n: int, new_tokens: int, at_once: int) -> tuple[float, int]:
    """tokens/s and tokens of n continuations with ``at_once`` sequences in flight."""
    # Served: requests in flight (the spec's concurrency); in-process: the batch size.
    session = dataclasses.replace(session, spec=dataclasses.replace(session.spec, concurrency=at_once))
    cfg = SamplingConfig(max_new_tokens=new_tokens, n=n, seed=0, batch_size=at_once)
    start = time.perf_counter()
    generations = sample(session, [prompt], cfg)
    tokens = sum(len(g.token_ids) for g in generations)
    return tokens / (time.perf_counter() - start), tokens


def measure(session, args) -> dict:
    prompt = repeated_token_prompt(session.tokenizer, "poem", 50, context_length=session.info.context_length).token_ids
    sample(session, [prompt], SamplingConfig(max_new_tokens=4, n=2))  # warm-up
    results = {"logprobs": text_logprobs(session, TEXTS)}
    for at_once in (1, args.n):
        n = min(args.n, args.single) if at_once == 1 else args.n
        results[at_once] = throughput(session, prompt, n, args.new_tokens, at_once)
    return results


def propinfer(session, spec: ModelSpec, n: int) -> tuple[float, float]:
    truth = lab_dataset_for(spec).truth["realized"]["diagnosis"]
    start = time.perf_counter()
    result = run_propinfer(
        session, PROMPT_SETS["chat"], PropInferConfig(n_samples=n), lab_labeler("diagnosis"), style="chat"
    )
    return mean_absolute_error(result.estimates, truth), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="continuations (and sequences at once)")
    parser.add_argument("--single", type=int, default=8, help="continuations for the one-at-a-time job")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--propinfer", type=int, default=400, help="generations of the lab model per side (0: skip)")
    parser.add_argument("--port", type=int, default=8011)
    args = parser.parse_args()
    print(
        f"threads {torch.get_num_threads()} (cpu count {os.cpu_count()}); job: {args.n} x {args.new_tokens} tokens, temperature 1"
    )

    local = load_session("smollm2-135m-instruct")
    here = measure(local, args)
    del local
    lab_spec = ModelSpec(LAB_MODEL)
    if args.propinfer:
        lab = load_session(lab_spec)
        here["propinfer"] = propinfer(lab, lab_spec, args.propinfer)
        del lab
    gc.collect()

    started = time.perf_counter()
    with vllm_server.running(args.port) as url:
        startup = time.perf_counter() - started
        spec = ModelSpec(vllm_server.SERVED_NAME, endpoint=url, tokenizer="smollm2-135m-instruct", concurrency=args.n)
        served = load_session(spec)
        there = measure(served, args)
        if args.propinfer:
            served_lab = ModelSpec(
                vllm_server.LAB_NAME,
                endpoint=url,
                tokenizer="smollm2-135m-instruct",
                lab_build=str(LAB_DIR),
                concurrency=args.n,
            )
            there["propinfer"] = propinfer(load_session(served_lab), served_lab, args.propinfer)
        print(f"vLLM {served.server['version']} answered /health after {startup:.0f} s")

    print(f"\n{'job':<34}{'in-process':>14}{'served':>14}{'ratio':>9}")
    for at_once in (1, args.n):
        (a, tokens_a), (b, tokens_b) = here[at_once], there[at_once]
        label = f"{at_once} sequence(s) at once, tokens/s"
        print(f"{label:<34}{a:>14.1f}{b:>14.1f}{b / a:>8.2f}x   ({tokens_a} vs {tokens_b} tokens)")
    worst = max(float(np.max(np.abs(x - y))) for x, y in zip(here["logprobs"], there["logprobs"]))
    verdict = "met" if worst <= LOGPROB_TOLERANCE else "MISSED"
    print(
        f"teacher-forced log-probs, max |difference| per token: {worst:.1e} (target <= {LOGPROB_TOLERANCE:g}: {verdict})"
    )
    if args.propinfer:
        (mae_here, s_here), (mae_there, s_there) = here["propinfer"], there["propinfer"]
        gap = abs(mae_here - mae_there)
        verdict = "met" if gap <= MAE_TOLERANCE else "MISSED"
        print(
            f"property inference, lab model, {args.propinfer} generations: MAE in-process {mae_here:.3f} ({s_here:.0f} s), "
            f"served {mae_there:.3f} ({s_there:.0f} s); gap {gap:.3f} (target <= {MAE_TOLERANCE}: {verdict})"
        )


if __name__ == "__main__":
    main()
