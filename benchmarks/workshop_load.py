"""Simultaneous browser users on one app server, all running Repeated tokens.

    python benchmarks/workshop_load.py [--identical 20] [--different 8] [--samples 4] [--new-tokens 32]

Starts `streamlit run app.py` on the default model, then drives K users at once, each in its
own browser session (Playwright in Debian's Chromium, as in the browser tests), through
Repeated tokens at samples x new-tokens: K = 1, then K = --identical users with identical
settings, then K = --different users with different settings (each its own seed). Each user
clicks Run at the same moment; latency is from that click to its results on screen. The server
logs every run it serves (WORKBENCH_RUN_LOG), which gives the order of service.
Targets: the identical users' p95 <= 2x one user's latency; the different users all complete,
without error, served in arrival order.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TARGET_RATIO = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, log: Path, run_log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_RUN_LOG": str(run_log)}
    env.pop("WORKBENCH_MODEL", None)  # the embedded default model
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start; see {log}")
        time.sleep(0.5)


def open_user(browser, url: str, seed: int, samples: int, new_tokens: int):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(600_000)
    page.goto(f"{url}/repeated_tokens?words=poem&repeats=50&n={samples}&max_new_tokens={new_tokens}&seed={seed}")
    page.get_by_test_id("stSidebar").get_by_text("Model card").wait_for()
    page.get_by_role("button", name="Run", exact=True).wait_for()
    return context, page


def scenario(browser, url: str, seeds: list[int], samples: int, new_tokens: int) -> dict:
    """All users click Run together; returns latencies (s), errors and the click order."""
    users = [open_user(browser, url, seed, samples, new_tokens) for seed in seeds]
    clicked = []
    for _, page in users:
        page.get_by_role("button", name="Run", exact=True).click(no_wait_after=True)
        clicked.append(time.perf_counter())
    latencies: list[float | None] = [None] * len(users)
    deadline = time.perf_counter() + 900
    while None in latencies and time.perf_counter() < deadline:
        for i, (_, page) in enumerate(users):
            if latencies[i] is None and page.get_by_role("heading", name="Results").count():
                latencies[i] = time.perf_counter() - clicked[i]
        time.sleep(0.1)
    errors = sum(page.get_by_test_id("stException").count() + page.get_by_test_id("stAlertContentError").count() for _, page in users)
    shared = sum(page.get_by_text("Shared: another user").count() for _, page in users)
    for context, _ in users:
        context.close()
    done = [t for t in latencies if t is not None]
    return {"users": len(seeds), "done": len(done), "errors": errors, "shared": shared, "latencies": done}


def describe(name: str, result: dict) -> str:
    lat = np.array(result["latencies"])
    figures = f"p50 {np.percentile(lat, 50):6.1f} s, p95 {np.percentile(lat, 95):6.1f} s" if len(lat) else "no run finished"
    return f"{name:<34} {result['done']:>2}/{result['users']} done, {result['errors']} errors, {result['shared']} shown as shared; {figures}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identical", type=int, default=20)
    parser.add_argument("--different", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="workshop-load-"))
    run_log = work / "runs.jsonl"
    port = free_port()
    server = start_app(port, work / "server.log", run_log)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            scenario(browser, url, [0], 2, 8)  # warm-up: loads the model once
            run_log.write_text("")
            one = scenario(browser, url, [1], args.samples, args.new_tokens)
            identical = scenario(browser, url, [2] * args.identical, args.samples, args.new_tokens)
            served_before = len(run_log.read_text().splitlines())
            different = scenario(browser, url, list(range(3, 3 + args.different)), args.samples, args.new_tokens)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    runs = [json.loads(line) for line in run_log.read_text().splitlines()]
    print(f"Repeated tokens, {args.samples} samples x {args.new_tokens} new tokens, default model; cpu count {os.cpu_count()}")
    print(describe("K = 1", one))
    print(describe(f"K = {args.identical}, identical settings", identical))
    print(describe(f"K = {args.different}, different settings", different))
    computed = runs[1:served_before]
    print(f"identical users: {len(computed)} run(s) computed for {args.identical} users")
    order = [r["number"] for r in runs[served_before:]]
    in_order = order == sorted(order)
    print(f"different settings: runs served in arrival order (server's numbers, in order of service): {order} -> {in_order}")
    ratio = np.percentile(identical["latencies"], 95) / one["latencies"][0] if identical["latencies"] and one["latencies"] else float("inf")
    verdict = "met" if ratio <= TARGET_RATIO and identical["done"] == args.identical else "MISSED"
    print(f"target: identical p95 <= {TARGET_RATIO}x one user's latency ({ratio:.2f}x): {verdict}")
    verdict = "met" if different["done"] == args.different and not different["errors"] and in_order else "MISSED"
    print(f"target: all {args.different} different runs complete, no error, in arrival order: {verdict}")


if __name__ == "__main__":
    main()
