import pytest

from workbench.cache import cache_dir
from workbench.config import DEFAULT_MODEL, ModelSpec, startup_model


def test_spec_is_hashable_and_equal_by_value():
    a = ModelSpec("tiny-llama", dtype="float32")
    b = ModelSpec(" tiny-llama ", dtype="float32")
    assert a == b
    assert len({a, b}) == 1


def test_spec_defaults():
    spec = ModelSpec()
    assert spec.name == DEFAULT_MODEL
    assert spec.trust_remote_code is False
    assert spec.device is None and spec.dtype is None and spec.adapter is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": ""}, "empty"),
        ({"name": "   "}, "empty"),
        ({"name": "x", "dtype": "float8"}, "Unknown dtype"),
        ({"name": "x", "device": "tpu"}, "Unknown device"),
    ],
)
def test_spec_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(**kwargs)


def test_spec_accepts_indexed_cuda_device():
    assert ModelSpec("x", device="cuda:1").device == "cuda:1"


def test_cache_dir_and_startup_model_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_MODEL", "tiny-gpt2")
    assert cache_dir() == tmp_path
    assert startup_model() == "tiny-gpt2"
    monkeypatch.delenv("WORKBENCH_MODEL")
    assert startup_model() == DEFAULT_MODEL
