import os

# Tests never reach the Hugging Face Hub: models come from code or installed packages.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from workbench.session import load_session  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llama():
    return load_session("tiny-llama")


@pytest.fixture(scope="session")
def tiny_gpt2():
    return load_session("tiny-gpt2")


@pytest.fixture(scope="session")
def default_session():
    return load_session("smollm2-135m-instruct")


@pytest.fixture
def open_app(monkeypatch):
    """open_app(page=None) -> AppTest of app.py on tiny-llama, switched to ``page`` if given."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WORKBENCH_MODEL", "tiny-llama")
    app = str(Path(__file__).resolve().parents[1] / "app.py")

    def start(page: str | None = None) -> AppTest:
        at = AppTest.from_file(app, default_timeout=300)
        at.run()
        if page is not None:
            at.switch_page(page).run()
        assert not at.exception
        return at

    return start


SLOW_LAYERS = ("notebooks", "browser", "served")  # every test there takes a kernel, a browser or a server


def pytest_collection_modifyitems(items):
    """Marks the slow layers ``slow``: ``pytest -m "not slow"`` is the quick loop, ``make test`` runs all."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.path.relative_to(here).parts[0] in SLOW_LAYERS:
            item.add_marker(pytest.mark.slow)
