import numpy as np
import pytest
import torch

from workbench.attention import (
    ablated_neurons,
    attention_pattern,
    column_profile,
    compare_mitigation,
    hidden_norms,
    norm_profile,
    scaled_heads,
    sink_columns,
    sink_comparison,
    sink_heads,
    sink_scores,
)
from workbench.config import SamplingConfig
from workbench.prompts import repeated_token_prompt

PROSE = "The quick brown fox jumps over the lazy dog, and then it runs into the forest to hide. " * 3


def _reference_columns(session, prompt, sink_index=0):
    ids = torch.tensor([session.tokenizer.encode(prompt)], device=session.device)
    with torch.inference_mode():
        attentions = session.model(ids, output_attentions=True).attentions
    return torch.stack([a[0, :, :, sink_index] for a in attentions]).float().cpu().numpy()


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_sink_columns_equal_full_attentions(fixture, request):
    session = request.getfixturevalue(fixture)
    columns = sink_columns(session, PROSE)
    assert columns.shape == (session.info.n_layers, session.info.n_heads, len(session.tokenizer.encode(PROSE)))
    np.testing.assert_allclose(columns, _reference_columns(session, PROSE), atol=1e-5)
    assert session.model.config._attn_implementation == "eager"  # restored


def test_other_sink_index(tiny_llama):
    np.testing.assert_allclose(
        sink_columns(tiny_llama, PROSE, sink_index=3), _reference_columns(tiny_llama, PROSE, 3), atol=1e-5
    )


def test_sink_scores_definition(tiny_llama):
    scores = sink_scores(tiny_llama, PROSE)
    reference = _reference_columns(tiny_llama, PROSE)[:, :, 1:].mean(-1)
    assert list(scores.columns) == ["layer", "head", "score"] and len(scores) == 2 * 4
    np.testing.assert_allclose(scores["score"].to_numpy(), reference.ravel(), atol=1e-5)


@pytest.mark.default_model
def test_default_model_sink_scores_equal_full_attentions_with_gqa(default_session):
    assert default_session.info.n_kv_heads < default_session.info.n_heads
    np.testing.assert_allclose(
        sink_columns(default_session, PROSE), _reference_columns(default_session, PROSE), atol=1e-5
    )
    heads = sink_heads(sink_scores(default_session, PROSE))
    assert len(heads) / (30 * 9) > 0.3  # SmolLM2 has many sink heads on prose


def test_sink_heads_threshold():
    import pandas as pd

    scores = pd.DataFrame({"layer": [0, 0, 1], "head": [0, 1, 0], "score": [0.2, 0.9, 0.3]})
    assert sink_heads(scores).to_dict("list") == {"layer": [0, 1], "head": [1, 0], "score": [0.9, 0.3]}
    assert len(sink_heads(scores, 0.95)) == 0


def test_column_profile_and_pattern_agree(tiny_llama):
    columns = sink_columns(tiny_llama, PROSE)
    profile = column_profile(columns, 1, 2)
    pattern = attention_pattern(tiny_llama, PROSE, 1, 2)
    np.testing.assert_allclose(profile["attention"].to_numpy(), pattern[:, 0], atol=1e-5)
    assert np.allclose(np.triu(pattern, 1), 0)  # causal


def test_hidden_norms(tiny_llama):
    norms = hidden_norms(tiny_llama, "a b c d")
    n = len(tiny_llama.tokenizer.encode("a b c d"))
    assert len(norms) == (tiny_llama.info.n_layers + 1) * n and (norms["norm"] > 0).all()
    profile = norm_profile(norms, {"first": [0], "rest": list(range(1, n))})
    assert set(profile["group"]) == {"first", "rest"} and len(profile) == 2 * (tiny_llama.info.n_layers + 1)
    first = norms[(norms.layer == 1) & (norms.position == 0)]["norm"].item()
    assert profile[(profile.group == "first") & (profile.layer == 1)]["norm"].item() == pytest.approx(first)


def test_sink_comparison_reports_progress_and_matches_its_parts(tiny_llama):
    repeated = repeated_token_prompt(tiny_llama.tokenizer, "poem", 12)
    reports = []
    result = sink_comparison(tiny_llama, PROSE, repeated, lambda fraction, message: reports.append(fraction))
    assert reports == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(result["columns"]["normal"], sink_columns(tiny_llama, PROSE))
    assert set(result["scores"]) == {"normal", "repeated"} and set(result["norms"]["prompt"]) == {"normal", "repeated"}
    assert set(result["profile"]["group"]) == {
        "first token", "repeated tokens (mean)", "normal prompt, later tokens (mean)",
    }  # fmt: skip


def _logits(session, prompt=PROSE):
    ids = torch.tensor([session.tokenizer.encode(prompt)])
    with torch.inference_mode():
        return session.model(ids).logits


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_hooks_change_outputs_and_leave_no_trace(fixture, request):
    session = request.getfixturevalue(fixture)
    before = _logits(session)
    with scaled_heads(session, {(0, 1): 0.0, (1, 3): 0.5}):
        scaled = _logits(session)
    with ablated_neurons(session, {1: [0, 3, 7]}):
        ablated = _logits(session)
    with scaled_heads(session, {(0, 1): 1.0}):
        unit = _logits(session)
    assert not torch.equal(before, scaled) and not torch.equal(before, ablated)
    assert torch.equal(before, unit)
    assert torch.equal(before, _logits(session))  # bit-identical after leaving


def test_hooks_removed_after_an_exception(tiny_llama):
    before = _logits(tiny_llama)
    with pytest.raises(RuntimeError):
        with scaled_heads(tiny_llama, {(0, 0): 0.0}):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with ablated_neurons(tiny_llama, {0: [1]}):
            raise RuntimeError("boom")
    assert torch.equal(before, _logits(tiny_llama))
    assert all(not m._forward_pre_hooks for m in tiny_llama.model.modules())


def test_scaling_a_head_to_zero_equals_zeroing_its_output(tiny_llama):
    """Scale 0 on head h is the same as zeroing h's slice of the o_proj weight columns."""
    o_proj = tiny_llama.model.model.layers[1].self_attn.o_proj
    head_dim = tiny_llama.model.model.layers[1].self_attn.head_dim
    with scaled_heads(tiny_llama, {(1, 2): 0.0}):
        hooked = _logits(tiny_llama)
    saved = o_proj.weight.detach().clone()
    try:
        with torch.no_grad():
            o_proj.weight[:, 2 * head_dim : 3 * head_dim] = 0
        edited = _logits(tiny_llama)
    finally:
        with torch.no_grad():
            o_proj.weight.copy_(saved)
    torch.testing.assert_close(hooked, edited)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: sink_scores(s, ""), "empty"),
        (lambda s: sink_scores(s, []), "no tokens"),
        (lambda s: sink_scores(s, [5] * 600), "context window is 512"),
        (lambda s: sink_scores(s, "hello there", sink_index=10), "sink_index"),
        (lambda s: attention_pattern(s, "hi", 2, 0), "Layer 2 is out of range"),
        (lambda s: attention_pattern(s, "hi", 0, 4), "Head 4 is out of range"),
        (lambda s: scaled_heads(s, {(0, 9): 0.5}).__enter__(), "Head 9 is out of range"),
        (lambda s: ablated_neurons(s, {0: [10_000]}).__enter__(), "Neuron 10000 is out of range"),
        (lambda s: compare_mitigation(s, {}, ["poem"], [5], SamplingConfig()), "at least one head"),
    ],
)
def test_bad_input(tiny_llama, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_llama)


def test_attention_pattern_length_limit(tiny_llama, monkeypatch):
    import workbench.attention

    monkeypatch.setattr(workbench.attention, "PATTERN_MAX_TOKENS", 10)
    with pytest.raises(ValueError, match="limited to 10 tokens"):
        attention_pattern(tiny_llama, [5] * 11, 0, 0)


def test_compare_mitigation_uses_the_same_seeds(tiny_llama):
    cfg = SamplingConfig(max_new_tokens=8, n=3, seed=2)
    table = compare_mitigation(tiny_llama, {(0, 0): 0.0, (1, 1): 0.0}, ["poem"], [10], cfg)
    assert len(table) == 3 and table["seed"].nunique() == 3
    assert (table["output_baseline"] != table["output_mitigated"]).any()
    unchanged = compare_mitigation(tiny_llama, {(0, 0): 1.0}, ["poem"], [10], cfg)
    assert (unchanged["output_baseline"] == unchanged["output_mitigated"]).all()


def test_repeated_prompt_at_the_tiny_context(tiny_llama):
    prompt = repeated_token_prompt(tiny_llama.tokenizer, "poem", 511, context_length=512)
    assert sink_columns(tiny_llama, list(prompt.token_ids)).shape == (2, 4, 511)


def test_last_layer_norm_is_the_blocks_output_not_the_final_norm(tiny_llama):
    captured = []
    block = tiny_llama.model.model.layers[-1]
    handle = block.register_forward_hook(lambda m, a, o: captured.append(o[0] if isinstance(o, tuple) else o))
    try:
        with torch.inference_mode():
            tiny_llama.model(torch.tensor([tiny_llama.tokenizer.encode("a b c")]))
    finally:
        handle.remove()
    norms = hidden_norms(tiny_llama, "a b c")
    last = norms[norms.layer == tiny_llama.info.n_layers]["norm"].to_numpy()
    np.testing.assert_allclose(last, captured[0][0].norm(dim=-1).numpy(), rtol=1e-5)


def test_hooks_on_gpt_neox(tiny_llama, tmp_path):
    """GPT-NeoX (Pythia) names its attention differently (dense, head_size, dense_4h_to_h)."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    from workbench.session import load_session

    config = GPTNeoXConfig(
        vocab_size=len(tiny_llama.tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tiny_llama.tokenizer.save_pretrained(tmp_path)
    neox = load_session(str(tmp_path))
    before = _logits(neox, "a b c d")
    with scaled_heads(neox, {(1, 2): 0.0}):
        scaled = _logits(neox, "a b c d")
    with ablated_neurons(neox, {0: [3]}):
        ablated = _logits(neox, "a b c d")
    assert not torch.equal(before, scaled) and not torch.equal(before, ablated)
    assert torch.equal(before, _logits(neox, "a b c d"))
    np.testing.assert_allclose(sink_columns(neox, "a b c d e f"), _reference_columns(neox, "a b c d e f"), atol=1e-5)


def test_sink_columns_of_a_sliding_window_model(tiny_llama, tmp_path):
    """A sliding window masks the sink from queries past it: the mask path, exact too."""
    from transformers import AutoModelForCausalLM, MistralConfig

    from workbench.session import load_session

    config = MistralConfig(
        vocab_size=len(tiny_llama.tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=8, max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tiny_llama.tokenizer.save_pretrained(tmp_path)
    mistral = load_session(str(tmp_path))
    columns = sink_columns(mistral, PROSE)
    np.testing.assert_allclose(columns, _reference_columns(mistral, PROSE), atol=1e-5)
    assert columns[:, :, 8:].max() == 0  # beyond the window, no query sees the first token
    assert columns[:, :, 1:8].min() > 0


@pytest.mark.parametrize("block", [5, 256])
def test_sink_columns_with_a_soft_cap_take_the_blockwise_path(tiny_llama, tmp_path, block):
    """The CPU flash kernel applies no soft cap (Gemma 2 caps its scores): rows in blocks, exact."""
    from transformers import AutoModelForCausalLM, Gemma2Config

    from workbench.session import load_session

    config = Gemma2Config(
        vocab_size=len(tiny_llama.tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, attn_logit_softcapping=0.5, sliding_window=8,
        max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tiny_llama.tokenizer.save_pretrained(tmp_path)
    gemma = load_session(str(tmp_path))
    np.testing.assert_allclose(sink_columns(gemma, PROSE, block=block), _reference_columns(gemma, PROSE), atol=1e-5)
