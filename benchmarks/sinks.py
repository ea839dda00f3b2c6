"""Time and peak extra memory of ``sink_scores`` against full ``output_attentions``.

    python benchmarks/sinks.py [--model smollm2-135m-instruct] [--lengths 512 2048 8192]

Each measurement runs in a fresh process: memory is the peak resident set size during the
call minus the size just before it (sampled every 5 ms from /proc, so Linux only). The full
approach is run only where its returned attentions (layers × heads × tokens² floats) fit
in half of this machine's memory. Also prints the share of sink heads (score >= 0.3) on a
prose prompt and on a 1,000 x repeated-token prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, os, sys, threading, time
import torch
from workbench.attention import sink_scores
from workbench.session import load_session

model, approach, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

session = load_session(model)
ids = (session.tokenizer.encode(" The old lighthouse keeper wrote in his journal every night.") * length)[:length]
sink_scores(session, ids[:64])  # warm-up
torch.inference_mode().__enter__()
before, peak, running = rss(), [0], [True]

def watch():
    while running[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.005)

watcher = threading.Thread(target=watch)
watcher.start()
start = time.perf_counter()
if approach == "sink":
    sink_scores(session, ids)
else:
    out = session.model.base_model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
    scores = torch.stack([a[0, :, 1:, 0].mean(-1) for a in out.attentions])
elapsed = time.perf_counter() - start
running[0] = False
watcher.join()
print(json.dumps({"seconds": elapsed, "extra_bytes": max(peak[0], rss()) - before}))
"""

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
    args = parser.parse_args()

    info = child("from workbench.session import load_session; import json, sys; "
                 "print(json.dumps(load_session(sys.argv[1]).info.as_dict()))", args.model)  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    gib = 2**30
    print(f"model: {args.model} ({info['n_layers']} layers x {info['n_heads']} heads), cpu threads: {os.cpu_count()}")
    print(f"{'tokens':>7} | {'sink_scores':>22} | {'output_attentions':>32} | ratios (time, memory)")
    for length in args.lengths:
        sink = child(_CHILD, args.model, "sink", str(length))
        sink_text = f"{sink['seconds']:7.1f} s {sink['extra_bytes'] / gib:6.2f} GiB"
        needed = info["n_layers"] * info["n_heads"] * length * length * 4
        if needed > memory / 2:
            full_text = f"does not fit: needs {needed / gib:5.0f} GiB".rjust(32)
            ratios = "-"
        else:
            full = child(_CHILD, args.model, "full", str(length))
            full_text = f"{full['seconds']:7.1f} s {full['extra_bytes'] / gib:6.2f} GiB".rjust(32)
            ratios = f"{full['seconds'] / sink['seconds']:.2f}x, {full['extra_bytes'] / max(sink['extra_bytes'], 1):.1f}x"
        print(f"{length:7d} | {sink_text:>22} | {full_text} | {ratios}")
    print("target: sink_scores at the full context with under 2 GiB extra memory")
    shares = child(_SHARES, args.model)
    for name, figures in shares.items():
        print(f"share of sink heads (score >= 0.3) on the {name} prompt: {figures['share']:.1%} of {figures['heads']}")


if __name__ == "__main__":
    main()
