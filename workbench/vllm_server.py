"""A local vLLM server (the CPU build) serving the default model, and the lab adapter beside it.

vLLM lives in its own virtual environment (``make vllm`` makes ``.venv-vllm``): its pins of
torch and transformers differ from the workbench's. It serves the default model's converted
safetensors folder (the same weights the in-process model loads) on 127.0.0.1. Used by
``workbench serve-vllm`` (``make serve-vllm``), the endpoint tests and ``benchmarks/endpoint.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.contract import Progress
from workbench.registry import LAB_DIR, gguf_model_dir, smollm2_gguf_path

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
SERVED_NAME = "smollm2-135m-instruct"  # the default model, under its registry name
LAB_NAME = "lab"  # the shipped lab adapter, served beside it
START_TIMEOUT_S = 600  # the first start compiles into ~/.cache/vllm; 56–150 s seen on 2 cores


def available() -> bool:
    return VLLM_PYTHON.is_file()


def command(port: int, host: str = "127.0.0.1", lab: bool = True, extra: tuple[str, ...] = ()) -> list[str]:
    """The server's command line: fp32 like the in-process model, eager (starts in about half the
    time at about the same speed on a CPU), with the lab adapter as model ``lab`` when asked."""
    folder = gguf_model_dir(smollm2_gguf_path())
    argv = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(folder), "--served-model-name", SERVED_NAME,
        "--host", host, "--port", str(port),
        "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
    ]  # fmt: skip
    if lab:
        adapter = LAB_DIR / "adapter"
        argv += ["--enable-lora", "--max-lora-rank", "16", "--lora-modules", f"{LAB_NAME}={adapter}"]
    return argv + list(extra)


def environment() -> dict[str, str]:
    # The KV cache is set aside up front: 2 GiB holds ~46,000 tokens of the default model.
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}


def is_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # how a process manager, `kill` or a closed terminal stop a service


@contextmanager
def _exit_on_stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise SystemExit(128 + signal), as Ctrl+C raises
    KeyboardInterrupt, so that the ``finally`` of whoever started the server stops it. Only the
    first such signal raises: a second one must not interrupt the stopping. Python lets only
    the main thread set handlers; elsewhere the block runs with the handlers as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_once(signum: int, _frame) -> None:
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    previous = {stop_signal: signal.signal(stop_signal, exit_once) for stop_signal in STOP_SIGNALS}
    try:
        yield
    finally:
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)


@contextmanager
def running(
    port: int = 8011,
    host: str = "127.0.0.1",
    lab: bool = True,
    log: Path | None = None,
    progress: Progress | None = None,
) -> Iterator[str]:
    """Start the server on ``host``, yield its URL once /health answers, and stop it afterwards,
    also when this process is told to stop by SIGTERM or SIGHUP (they raise SystemExit here).

    Raises ValueError when vLLM is not installed, or when the server exits or does not answer
    within START_TIMEOUT_S (the end of its log is in the message)."""
    if not available():
        raise ValueError(f"vLLM is not installed at {VLLM_PYTHON}: run `make vllm` first.")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if is_up(url):
        raise ValueError(f"Port {port} already answers /health: stop that server or choose another port.")
    log = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"workbench-vllm-{port}.log"
    started = time.monotonic()
    with _exit_on_stop_signals():
        with open(log, "wb") as sink:
            # Its own process group, so that stopping it stops the engine processes it starts too.
            server = subprocess.Popen(
                command(port, host, lab),
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=environment(),
                start_new_session=True,
            )
        try:
            while not is_up(url):
                elapsed = time.monotonic() - started
                if server.poll() is not None or elapsed > START_TIMEOUT_S:
                    tail = log.read_text(errors="replace").strip().splitlines()[-8:]
                    reason = (
                        f"exited with code {server.returncode}"
                        if server.poll() is not None
                        else f"did not answer in {elapsed:.0f} s"
                    )
                    raise ValueError(f"The vLLM server {reason}; the end of {log}:\n" + "\n".join(tail))
                if progress is not None:
                    progress(
                        min(elapsed / 150, 0.99),
                        f"Starting vLLM ({elapsed:.0f} s; the first start compiles, ~1–2.5 min)",
                    )
                time.sleep(2)
            yield url
        finally:
            _stop(server)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
