import os

# Tests never reach the Hugging Face Hub: models come from code or installed packages.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

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
