"""Time and peak extra memory of ``sink_scores`` against a plain forward pass and full ``output_attentions``.

    python benchmarks/sinks.py [--model smollm2-135m-instruct] [--lengths 512 2048 8192] [--repeats 3]

Each approach runs in a fresh process: memory is the peak resident set size during the
call minus the size just before it (sampled every 5 ms from /proc, so Linux only); time is
the median of --repeats calls after a warm-up. The forward pass is the transformer body
(the model without its language-model head) with SDPA attention on the same prompt: the
target is sink_scores <= 1.5x that at the full context, under 2 GiB extra. The full
approach (eager attention returning every attention matrix) runs once, and only where its
attentions (layers x heads x tokens^2 floats) fit in half of this machine's memory. Also
prints the share of sink heads (score >= 0.3) on a prose prompt and on a 1,000 x
repeated-token prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, os, statistics, sys, threading, time
import torch
from workbench.attention import sink_scores
from workbench.decoding import sdpa_attention
from workbench.session import load_session

model, approach, length, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

session = load_session(model)
ids = (session.tokenizer.encode(" The old lighthouse keeper wrote in his journal every night.") * length)[:length]
body = session.model.base_model

def call(prompt):
    if approach == "sink":
        sink_scores(session, prompt)
    elif approach == "forward":
        with sdpa_attention(session.model):
            body(input_ids=torch.tensor([prompt]), use_cache=False)
    else:
        out = body(input_ids=torch.tensor([prompt]), output_attentions=True, use_cache=False)
        torch.stack([a[0, :, 1:, 0].mean(-1) for a in out.attentions])

torch.inference_mode().__enter__()
call(ids[:64])  # warm-up
seconds, extra = [], 0
for _ in range(repeats):
    before, peak, running = rss(), [0], [True]

    def watch():
        while running[0]:
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    call(ids)
    seconds.append(time.perf_counter() - start)
    running[0] = False
    watcher.join()
    extra = max(extra, max(peak[0], rss()) - before)
print(json.dumps({"seconds": statistics.median(seconds), "extra_bytes": extra, "threads": torch.get_num_threads()}))
"""

TARGET_RATIO = 1.5
TARGET_GIB = 2.0

_SHARES = r"""
import json, sys
from workbench.attention import sink_heads, sink_scores
from workbench.prompts import repeated_token_prompt
from workbench.session import load_session

session = load_session(sys.argv[1])
prose = ("It was a bright cold day in April, and the clocks were striking thirteen. The village lay quiet under "
         "the hills, and the baker opened his shop before dawn, as he had done for forty years, while the river "
         "carried the last of the winter ice towards the sea.")
repeated = repeated_token_prompt(session.tokenizer, "poem", 1000, context_length=session.info.context_length)
out = {}
for name, prompt in (("prose", prose), ("repeated", list(repeated.token_ids))):
    scores = sink_scores(session, prompt)
    out[name] = {"share": len(sink_heads(scores)) / len(scores), "heads": len(scores)}
print(json.dumps(out))
"""


def child(code: str, *args: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    info = child("from workbench.session import load_session; import json, sys; "
                 "print(json.dumps(load_session(sys.argv[1]).info.as_dict()))", args.model)  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    gib = 2**30
    rows = []
    for length in args.lengths:
        sink = child(_CHILD, args.model, "sink", str(length), str(args.repeats))
        forward = child(_CHILD, args.model, "forward", str(length), str(args.repeats))
        needed = info["n_layers"] * info["n_heads"] * length * length * 4
        full = child(_CHILD, args.model, "full", str(length), "1") if needed <= memory / 2 else None
        rows.append((length, sink, forward, full, needed))
    print(f"model: {args.model} ({info['n_layers']} layers x {info['n_heads']} heads), torch threads: {rows[0][1]['threads']}, "
          f"cpu count: {os.cpu_count()}; median of {args.repeats} after a warm-up")  # fmt: skip
    print(
        f"{'tokens':>7} | {'sink_scores':>20} | {'forward (SDPA)':>20} | {'ratio':>6} | {'output_attentions (once)':>28}"
    )
    for length, sink, forward, full, needed in rows:
        full_text = (
            f"{full['seconds']:7.1f} s {full['extra_bytes'] / gib:6.2f} GiB"
            if full
            else f"does not fit: {needed / gib:.0f} GiB"
        )
        print(
            f"{length:7d} | {sink['seconds']:7.2f} s {sink['extra_bytes'] / gib:6.2f} GiB | "
            f"{forward['seconds']:7.2f} s {forward['extra_bytes'] / gib:6.2f} GiB | {sink['seconds'] / forward['seconds']:5.2f}x | {full_text:>28}"
        )
    length, sink, forward, _, _ = rows[-1]
    ratio, extra = sink["seconds"] / forward["seconds"], sink["extra_bytes"] / gib
    verdict = "met" if ratio <= TARGET_RATIO and extra < TARGET_GIB else "MISSED"
    print(
        f"target at {length} tokens: sink_scores <= {TARGET_RATIO}x the forward pass ({ratio:.2f}x) and < {TARGET_GIB} GiB extra ({extra:.2f} GiB): {verdict}"
    )
    shares = child(_SHARES, args.model)
    for name, figures in shares.items():
        print(f"share of sink heads (score >= 0.3) on the {name} prompt: {figures['share']:.1%} of {figures['heads']}")


if __name__ == "__main__":
    main()
