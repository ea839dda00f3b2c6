"""Simultaneous browser users on one app server, all running Repeated tokens.

    python benchmarks/workshop_load.py [--identical 20] [--different 8] [--samples 4] [--new-tokens 32] [--placement split|shared]

Starts `streamlit run app.py` on the default model, then drives K users at once, each in its
own browser session (Playwright in Debian's Chromium, as in the browser tests), through
Repeated tokens at samples x new-tokens: K = 1, then K = --identical users with identical
settings, then K = --different users with different settings (each its own seed). Each user
clicks Run at the same moment.

Two latencies per user: on screen, from the click to its results drawn in its browser; and on
the server, from the server taking the request to handing the result to that user's page (the
server's log, WORKBENCH_RUN_LOG, which also gives the order of service). In a room each
browser draws on its own laptop; here the browsers need a machine too. With --placement split
(the default, on two or more cores) the server runs on all cores but the last and every browser
on the last one (taskset), so the browsers' drawing does not slow the server: the server-side
figures are the room's, and the on-screen ones hold all browsers drawing on one core, one after
another: an upper bound. With --placement shared all of them share every core. The breakdown
lines say where the time went.
Targets: the identical users' p95 <= 2x one user's latency; the different users all complete,
without error, served in arrival order.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
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
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_RATIO = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, log: Path, run_log: Path, cpus: str | None) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_RUN_LOG": str(run_log)}
    server = subprocess.Popen(
        pinned([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"], cpus),
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


def cores(placement: str) -> tuple[str | None, str | None]:
    """(the server's cores, the browsers' cores) as taskset lists; None: no pinning."""
    count = os.cpu_count() or 1
    if placement == "shared" or count < 2:
        return None, None
    return f"0-{count - 2}", str(count - 1)


def pinned(command: list[str], cpus: str | None) -> list[str]:
    return command if cpus is None else ["taskset", "-c", cpus, *command]


def browser_launcher(executable: str, cpus: str | None, folder: Path) -> str:
    """The browser's executable, or a launcher that starts it on the given cores."""
    if cpus is None:
        return executable
    launcher = folder / "chromium-pinned"
    launcher.write_text(f'#!/bin/sh\nexec {shlex.join(pinned([executable], cpus))} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


def open_user(browser, url: str, seed: int, samples: int, new_tokens: int):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(600_000)
    page.goto(f"{url}/repeated_tokens?words=poem&repeats=50&n={samples}&max_new_tokens={new_tokens}&seed={seed}")
    page.get_by_test_id("stSidebar").get_by_text("Model card").wait_for()
    page.get_by_role("button", name="Run", exact=True).wait_for()
    return context, page


def scenario(browser, url: str, seeds: list[int], samples: int, new_tokens: int) -> dict:
    """All users click Run together; returns their latencies (s), errors, shared results, the
    first click and when each page showed its results (wall clock)."""
    users = [open_user(browser, url, seed, samples, new_tokens) for seed in seeds]
    clicked = []  # wall clock, as the server's run log
    for _, page in users:
        page.get_by_role("button", name="Run", exact=True).click(no_wait_after=True)
        clicked.append(time.time())
    latencies: list[float | None] = [None] * len(users)
    deadline = time.time() + 900
    while None in latencies and time.time() < deadline:
        for i, (_, page) in enumerate(users):
            if latencies[i] is None and page.get_by_role("heading", name="Results").count():
                latencies[i] = time.time() - clicked[i]
        time.sleep(0.1)
    errors = sum(
        page.get_by_test_id("stException").count() + page.get_by_test_id("stAlertContentError").count()
        for _, page in users
    )
    shared = sum(page.get_by_text("Shared: another user").count() for _, page in users)
    for context, _ in users:
        context.close()
    done = [t for t in latencies if t is not None]
    shown = [c + t for c, t in zip(clicked, latencies) if t is not None]
    return {
        "users": len(seeds),
        "done": len(done),
        "errors": errors,
        "shared": shared,
        "latencies": done,
        "first_click": clicked[0],
        "shown": shown,
    }


def percentiles(values: list[float]) -> str:
    return (
        f"p50 {np.percentile(values, 50):6.1f} s, p95 {np.percentile(values, 95):6.1f} s" if values else "none finished"
    )


def describe(name: str, result: dict, served: list[float]) -> str:
    return (
        f"{name:<34} {result['done']:>2}/{result['users']} done, {result['errors']} errors, {result['shared']} shown as shared\n"
        f"  on screen: {percentiles(result['latencies'])}; on the server: {percentiles(served)}"
    )


def breakdown(result: dict, runs: list[dict]) -> str:
    """Where the on-screen time went, by the server's run log: before the first run started,
    computing, and from the last run's end to each page showing its results."""
    if not runs or not result["shown"]:
        return "  no run logged"
    computing = sum(r["ended"] - r["started"] for r in runs)
    after = np.array(result["shown"]) - max(r["ended"] for r in runs)
    return (
        f"  {len(runs)} run(s) computed in {computing:.1f} s, the first starting {min(r['started'] for r in runs) - result['first_click']:.1f} s "
        f"after the first click; results on screen after the last run ended: p50 {np.percentile(after, 50):.1f} s, p95 {np.percentile(after, 95):.1f} s"
    )


def logged(run_log: Path) -> dict:
    """The server's log: runs in the order of service, and results handed to pages."""
    entries = [json.loads(line) for line in run_log.read_text().splitlines()]
    return {"runs": [e for e in entries if "state" in e], "deliveries": [e for e in entries if "delivered" in e]}


def server_drawing_seconds(samples: int, new_tokens: int, repeats: int = 10) -> float:
    """The server's share of drawing one result page: the page script re-run with a result in
    hand (AppTest, default model), median over repeats."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    app.run()
    app.switch_page("app_pages/repeated_tokens.py").run()
    app.number_input(key="rt_n").set_value(samples)
    app.number_input(key="rt_max_new_tokens").set_value(new_tokens)
    app.button(key="rt_run").click().run()
    if not app.subheader or app.subheader[0].value != "Results":
        raise RuntimeError("the page showed no results under AppTest")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def ratio(many: list[float], one: list[float]) -> float:
    return np.percentile(many, 95) / one[0] if many and one else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identical", type=int, default=20)
    parser.add_argument("--different", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--placement",
        choices=["split", "shared"],
        default="split",
        help="split: the browsers on the last core, the server on the others",
    )
    args = parser.parse_args()

    os.environ.pop("WORKBENCH_MODEL", None)  # the embedded default model, here and in the server
    drawing = server_drawing_seconds(args.samples, args.new_tokens)
    work = Path(tempfile.mkdtemp(prefix="workshop-load-"))
    run_log = work / "runs.jsonl"
    port = free_port()
    server_cpus, browser_cpus = cores(args.placement)
    server = start_app(port, work / "server.log", run_log, server_cpus)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=browser_launcher(CHROMIUM, browser_cpus, work), args=BROWSER_ARGS
            )
            scenario(browser, url, [0], 2, 8)  # warm-up: loads the model once
            run_log.write_text("")
            one = scenario(browser, url, [1], args.samples, args.new_tokens)
            identical = scenario(browser, url, [2] * args.identical, args.samples, args.new_tokens)
            served_before = len(logged(run_log)["runs"])
            different = scenario(browser, url, list(range(3, 3 + args.different)), args.samples, args.new_tokens)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    log = logged(run_log)
    runs = log["runs"]
    computed = runs[1:served_before]
    served = runs[:1], computed, runs[served_before:]
    numbers = [{r["number"] for r in part} for part in served]
    waits = [[d["at"] - d["asked"] for d in log["deliveries"] if d["delivered"] in part] for part in numbers]
    print(
        f"Repeated tokens, {args.samples} samples x {args.new_tokens} new tokens, default model; {os.cpu_count()} cores: server on {server_cpus or 'all'}, browsers on {browser_cpus or 'all'}"
    )
    for name, result, part, wait in zip(
        ["K = 1", f"K = {args.identical}, identical settings", f"K = {args.different}, different settings"], [one, identical, different], served, waits
    ):  # fmt: skip
        print(describe(name, result, wait))
        print(breakdown(result, part))
    print(f"identical users: {len(computed)} run(s) computed for {args.identical} users")
    print(
        f"drawing one result page takes the server {drawing:.3f} s (its script, AppTest), so {args.identical} pages {drawing * args.identical:.1f} s; the rest of the on-screen time after a run is spent outside the page script (messages to the pages and the browsers drawing)"
    )
    order = [r["number"] for r in runs[served_before:]]
    in_order = order == sorted(order)
    print(
        f"different settings: runs served in arrival order (server's numbers, in order of service): {order} -> {in_order}"
    )
    for where, many, single in [
        ("on screen", identical["latencies"], one["latencies"]),
        ("on the server", waits[1], waits[0]),
    ]:
        factor = ratio(many, single)
        verdict = "met" if factor <= TARGET_RATIO and identical["done"] == args.identical else "MISSED"
        print(f"target: identical p95 <= {TARGET_RATIO}x one user's latency, {where} ({factor:.2f}x): {verdict}")
    verdict = "met" if different["done"] == args.different and not different["errors"] and in_order else "MISSED"
    print(f"target: all {args.different} different runs complete, no error, in arrival order: {verdict}")


if __name__ == "__main__":
    main()
