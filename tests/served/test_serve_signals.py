"""A server started by `workbench serve-vllm` (or `vllm_server.running`) is stopped when its
starter is told to stop by SIGTERM or SIGHUP, as on Ctrl+C: nothing is left holding the port.

The library's handling is checked on a stand-in server (Python's http.server answering /health);
the CLI's against the real vLLM server, whose engine runs in processes of its own."""

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from workbench import vllm_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nothing_listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """vllm_server.running starts Python's http.server instead, with a /health that answers."""
    (tmp_path / "health").write_text("ok")
    monkeypatch.setattr(vllm_server, "available", lambda: True)
    monkeypatch.setattr(
        vllm_server, "command",
        lambda port, host, lab: [sys.executable, "-m", "http.server", str(port), "--bind", host, "--directory", str(tmp_path)],
    )  # fmt: skip
    return tmp_path


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_the_server_and_restores_the_handlers(stand_in, stop_signal):
    port, handler_before = _free_port(), signal.getsignal(stop_signal)
    with pytest.raises(SystemExit) as stopped:
        with vllm_server.running(port, log=stand_in / "server.log") as url:
            assert vllm_server.is_up(url)
            (server,) = [p for p in psutil.Process().children() if str(port) in p.cmdline()]
            os.kill(os.getpid(), stop_signal)
            time.sleep(30)  # the handler raises here
            pytest.fail("the signal did not stop the block")
    assert stopped.value.code == 128 + stop_signal
    assert not server.is_running()
    assert _nothing_listens(port)
    assert signal.getsignal(stop_signal) is handler_before


def test_the_handlers_are_restored_when_the_block_ends_normally(stand_in):
    before = {s: signal.getsignal(s) for s in vllm_server.STOP_SIGNALS}
    port = _free_port()
    with vllm_server.running(port, log=stand_in / "server.log") as url:
        assert vllm_server.is_up(url)
        assert all(signal.getsignal(s) is not before[s] for s in vllm_server.STOP_SIGNALS)
    assert {s: signal.getsignal(s) for s in vllm_server.STOP_SIGNALS} == before
    assert _nothing_listens(port)


@pytest.mark.default_model
def test_sigterm_to_serve_vllm_leaves_no_vllm_process_and_frees_the_port(tmp_path):
    if not vllm_server.available():
        if os.environ.get("CI"):
            pytest.fail("vLLM is not installed; `make test` installs it (make vllm).")
        pytest.skip("vLLM is not installed: run `make vllm`.")
    port = _free_port()
    output, family = tmp_path / "serve.out", []
    with open(output, "w") as sink:
        cli = subprocess.Popen(
            [sys.executable, "-m", "workbench", "serve-vllm", "--port", str(port), "--no-lab"],
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(tmp_path)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + vllm_server.START_TIMEOUT_S
        while "vLLM serves" not in output.read_text():
            assert cli.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "vLLM did not start in time"
            time.sleep(2)
        family = psutil.Process(cli.pid).children(recursive=True)
        assert any("vllm" in " ".join(p.cmdline()) for p in family)

        cli.send_signal(signal.SIGTERM)
        code = cli.wait(timeout=120)
        _, alive = psutil.wait_procs(family, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
        assert _nothing_listens(port)
        assert code == 128 + signal.SIGTERM and "stopping the server" in output.read_text()
    finally:
        if cli.poll() is None:
            cli.kill()
        for process in family:  # nothing may outlive a failed test
            if process.is_running():
                process.kill()
