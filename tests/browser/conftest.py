"""The real app under `streamlit run`, driven by Playwright in Debian's Chromium."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    # conftest hooks see every collected item, not only this folder's
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path():
    if not os.access(CHROMIUM, os.X_OK):
        message = f"No Chromium at {CHROMIUM}: `make test` installs Debian's chromium package (as root)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def app_cache(tmp_path_factory):
    """The app's cache folder: a fresh one, so that lab rebuilds stay out of the real one."""
    return tmp_path_factory.mktemp("e2e-cache")


@pytest.fixture(scope="session")
def app_url(chromium_path, app_cache):
    """Start `streamlit run app.py` on a free localhost port with the tiny model; always stop it."""
    port = _free_port()
    env = {
        **os.environ,
        "WORKBENCH_MODEL": "tiny-llama",
        "HF_HUB_OFFLINE": "1",
        "WORKBENCH_CACHE": str(app_cache),  # the tokenizer is converted again, ~8 s
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's whole process group, forcibly if it does not exit in 15 s."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, None)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # the first page load also loads the model
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=BROWSER_ARGS)
        yield browser
        browser.close()


class ScriptRuns:
    """The app's script runs as its websocket reports them (one ForwardMsg per frame): a run
    starts with ``new_session`` and ends with ``script_finished``. A run stopped early for a
    rerun is not counted: the rerun that replaces it is.

    This is the signal that the app has taken an input: a widget change reaches the server only
    as a rerun, and an upload only once its request is done (the file's chip shows before)."""

    def __init__(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._message = ForwardMsg
        self.finished = 0
        self.running = False

    def listen(self, websocket) -> None:
        if "_stcore/stream" in websocket.url:
            websocket.on("framereceived", self._frame)

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            return
        message = self._message.FromString(payload)
        kind = message.WhichOneof("type")
        if kind == "new_session":
            self.running = True
        elif kind == "script_finished" and message.script_finished != self._message.FINISHED_EARLY_FOR_RERUN:
            self.running = False
            self.finished += 1


@pytest.fixture
def page(browser, app_url, request):
    """A fresh browser session per test, its script runs followed in ``page.runs``; a
    screenshot is saved for each test, pass or fail."""
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.app_url = app_url
    page.runs = ScriptRuns()
    page.on("websocket", page.runs.listen)
    yield page
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
