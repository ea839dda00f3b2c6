"""Cold (first conversion) and warm load time of a model, each in a fresh process.

    python benchmarks/load.py [--model smollm2-135m-instruct] [--warm-runs 3]

Cold runs against an empty temporary cache, so it includes the GGUF conversion; warm
runs reuse that cache. Target: warm load under 3 s on the CI machine's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

WARM_TARGET_S = 3.0

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from workbench.session import load_session
t1 = time.perf_counter()
load_session(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1}))
"""


def timed_load(model: str, cache: str) -> dict:
    env = {**os.environ, "WORKBENCH_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, model], env=env, capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_s"] = time.perf_counter() - start
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as cache:
        cold = timed_load(args.model, cache)
        warm = [timed_load(args.model, cache) for _ in range(args.warm_runs)]

    warm_load = statistics.median(w["load_s"] for w in warm)
    warm_process = statistics.median(w["process_s"] for w in warm)
    print(f"model: {args.model}   cpu threads: {os.cpu_count()}")
    print(f"cold load (includes conversion): {cold['load_s']:6.2f} s   whole process {cold['process_s']:6.2f} s")
    print(f"warm load (median of {args.warm_runs}):        {warm_load:6.2f} s   whole process {warm_process:6.2f} s")
    print(f"library import (warm median):    {statistics.median(w['import_s'] for w in warm):6.2f} s")
    print(f"cold / warm load ratio:          {cold['load_s'] / warm_load:6.1f}x")
    verdict = "meets" if warm_load < WARM_TARGET_S else "MISSES"
    print(f"warm load / {WARM_TARGET_S:.0f} s target:        {warm_load / WARM_TARGET_S:6.2f}  ({verdict} the target)")


if __name__ == "__main__":
    main()
