"""Loading and the registry, on the seeded tiny models."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import workbench.registry as registry
from workbench.config import ModelSpec
from workbench.registry import (
    default_device,
    default_dtype,
    gguf_tokenizer_dir,
    registry_names,
    smollm2_gguf_path,
)
from workbench.session import load_session


def test_registry_names():
    assert registry_names() == ["smollm2-135m-instruct", "smollm2-135m-instruct-lab", "tiny-llama", "tiny-gpt2"]


def test_tiny_llama_info(tiny_llama):
    info = tiny_llama.info
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.context_length) == (2, 4, 2, 512)
    assert info.n_params == sum(p.numel() for p in tiny_llama.model.parameters())
    assert info.vocab_size == len(tiny_llama.tokenizer)
    assert info.architecture == "LlamaForCausalLM"
    assert (info.dtype, info.device) == ("float32", "cpu")
    assert json.loads(json.dumps(info.as_dict()))["name"] == "tiny-llama"


def test_tiny_gpt2_info(tiny_gpt2):
    info = tiny_gpt2.info
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.context_length) == (2, 4, 4, 512)
    assert info.architecture == "GPT2LMHeadModel"


def test_tiny_models_are_seeded_and_leave_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = load_session("tiny-llama")
    assert torch.equal(torch.rand(3), expected)
    second = load_session("tiny-llama")
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_attention_weights_are_obtainable(fixture, request):
    session = request.getfixturevalue(fixture)
    ids = session.tokenizer("poem poem poem poem", return_tensors="pt").input_ids
    with session.lock, torch.inference_mode():
        out = session.model(ids, output_attentions=True)
    assert len(out.attentions) == session.info.n_layers
    layer0 = out.attentions[0]
    assert layer0.shape == (1, session.info.n_heads, ids.shape[1], ids.shape[1])
    torch.testing.assert_close(layer0.sum(-1), torch.ones_like(layer0.sum(-1)))


def test_lock_is_reentrant(tiny_llama):
    with tiny_llama.lock, tiny_llama.lock:
        assert True  # a plain Lock would deadlock here


def test_device_and_dtype_choice():
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert default_dtype("cuda") == "bfloat16"
    assert default_dtype("cpu") == "float32"


def test_dtype_override():
    session = load_session(ModelSpec("tiny-llama", dtype="bfloat16"))
    assert next(session.model.parameters()).dtype == torch.bfloat16
    assert session.info.dtype == "bfloat16"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no such CUDA GPU"):
        load_session(ModelSpec("tiny-llama", device="cuda"))


@pytest.mark.parametrize(
    "name, tried",
    [
        ("no-such-org/no-such-model", "loading it as a Hugging Face id failed"),
        ("./missing/model.gguf", "no such file or folder exists"),
        ("not a model id!", "no such file or folder exists"),
    ],
)
def test_unknown_model_lists_registry_and_what_was_tried(name, tried):
    with pytest.raises(ValueError) as err:
        load_session(name)
    message = str(err.value)
    assert tried in message
    for registered in registry_names():
        assert registered in message


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        load_session(str(tmp_path))


def test_local_folder_loads_and_remote_code_stays_off(tiny_llama, tmp_path, monkeypatch):
    tiny_llama.model.save_pretrained(tmp_path)
    tiny_llama.tokenizer.save_pretrained(tmp_path)
    seen = []
    real = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(registry.AutoModelForCausalLM, "from_pretrained", spy)
    loaded = load_session(str(tmp_path))
    assert loaded.info.source == f"local folder {tmp_path}"
    assert seen == [False]
    load_session(ModelSpec(str(tmp_path), trust_remote_code=True))
    assert seen == [False, True]
    for name, tensor in tiny_llama.model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name


def test_lora_adapter_is_applied(tiny_llama, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = load_session("tiny-llama").model
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path)
    adapted = load_session(ModelSpec("tiny-llama", adapter=str(tmp_path)))
    assert isinstance(adapted.model, PeftModel)
    assert adapted.info.adapter == str(tmp_path)
    ids = tiny_llama.tokenizer("a b c", return_tensors="pt").input_ids
    with torch.inference_mode():
        assert not torch.allclose(adapted.model(ids).logits, tiny_llama.model(ids).logits)


def test_missing_adapter_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="adapter_config.json"):
        load_session(ModelSpec("tiny-llama", adapter=str(tmp_path)))


def test_interrupted_conversion_leaves_no_cache(tiny_llama, tmp_path, monkeypatch):
    """The conversion writes to a temporary folder and renames: a crash mid-write leaves
    nothing that a later load would take for a finished conversion."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    fake_gguf = tmp_path / "fake.gguf"
    fake_gguf.write_bytes(b"not read: weights and tokenizer are patched in")
    real_tokenizer_dir = gguf_tokenizer_dir(smollm2_gguf_path())
    monkeypatch.setattr(registry, "gguf_tokenizer_dir", lambda gguf, progress=None: real_tokenizer_dir)
    monkeypatch.setattr(registry, "_load_gguf_weights", lambda gguf: tiny_llama.model)

    real_tokenizer_loader = registry.AutoTokenizer.from_pretrained
    calls = {"n": 0}

    def crash_once(*args, **kwargs):
        # The model's safetensors are already written when the tokenizer is copied.
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real_tokenizer_loader(*args, **kwargs)

    monkeypatch.setattr(registry.AutoTokenizer, "from_pretrained", crash_once)
    models_dir = tmp_path / "cache" / "models"
    with pytest.raises(KeyboardInterrupt):
        registry.gguf_model_dir(fake_gguf)
    assert list(models_dir.iterdir()) == []

    converted = registry.gguf_model_dir(fake_gguf)
    assert [p.name for p in models_dir.iterdir()] == [converted.name]
    reloaded = load_session(str(fake_gguf))
    for name, tensor in tiny_llama.model.state_dict().items():
        assert torch.equal(tensor, reloaded.model.state_dict()[name]), name


def test_atomic_dir_keeps_the_first_finished_copy(tmp_path):
    from workbench.cache import atomic_dir

    dest = tmp_path / "out"
    with atomic_dir(dest) as first, atomic_dir(dest) as second:
        (first / "who").write_text("first")
        (second / "who").write_text("second")
        assert not dest.exists()
    # `second` finished first (inner block), so its copy won; the other was discarded.
    assert (dest / "who").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
