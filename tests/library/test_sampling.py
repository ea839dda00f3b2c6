from dataclasses import replace

import numpy as np
import pytest
import torch

from workbench.config import SamplingConfig
from workbench.sampling import sample, sample_seed, text_logprobs

PROMPTS = ["The capital of France is", "Once upon a time there was a little", "poem poem poem"]


def _generate_one_at_a_time(session, prompt, n):
    ids = session.tokenizer(prompt, return_tensors="pt")
    out = session.model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=session.tokenizer.pad_token_id)
    return out[0, ids.input_ids.shape[1] :].tolist()


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_greedy_batch_with_left_padding_equals_generate(fixture, request):
    session = request.getfixturevalue(fixture)
    generations = sample(session, PROMPTS, SamplingConfig(max_new_tokens=10, temperature=0, batch_size=3))
    for generation, prompt in zip(generations, PROMPTS):
        assert list(generation.token_ids) == _generate_one_at_a_time(session, prompt, 10)
        assert generation.stop_reason == "length"


def test_same_seed_same_outputs_whatever_the_batch_size(tiny_llama):
    big = sample(tiny_llama, PROMPTS, SamplingConfig(max_new_tokens=8, n=3, seed=5, batch_size=9))
    small = sample(tiny_llama, PROMPTS, SamplingConfig(max_new_tokens=8, n=3, seed=5, batch_size=2))
    other = sample(tiny_llama, PROMPTS, SamplingConfig(max_new_tokens=8, n=3, seed=6, batch_size=9))
    assert [g.token_ids for g in big] == [g.token_ids for g in small]
    assert [g.token_ids for g in big] != [g.token_ids for g in other]
    assert [(g.prompt_index, g.sample_index) for g in big] == [(p, s) for p in range(3) for s in range(3)]
    assert len({g.seed for g in big}) == 9 and big[4].seed == sample_seed(5, 1, 1)
    assert all(0 <= g.seed < 2**53 for g in big)


def test_samples_of_one_prompt_differ(tiny_llama):
    generations = sample(tiny_llama, ["poem poem"], SamplingConfig(max_new_tokens=12, n=6, seed=0))
    assert len({g.token_ids for g in generations}) >= 5


def test_logprobs_match_teacher_forcing(tiny_llama):
    (generation,) = sample(tiny_llama, [PROMPTS[0]], SamplingConfig(max_new_tokens=10, seed=3))
    ids = torch.tensor([list(generation.prompt_ids) + list(generation.token_ids)])
    with torch.inference_mode():
        forced = torch.log_softmax(tiny_llama.model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    np.testing.assert_allclose(forced[-len(generation.logprobs) :].numpy(), generation.logprobs, atol=1e-4)
    assert all(lp <= 0 for lp in generation.logprobs)


def test_top_k_one_is_greedy(tiny_llama):
    greedy = sample(tiny_llama, PROMPTS, SamplingConfig(max_new_tokens=8, temperature=0))
    top1 = sample(tiny_llama, PROMPTS, SamplingConfig(max_new_tokens=8, top_k=1, seed=9))
    assert [g.token_ids for g in greedy] == [g.token_ids for g in top1]


def test_stops_at_end_of_sequence_row_by_row(tiny_llama):
    cfg = SamplingConfig(max_new_tokens=5, temperature=0)
    first, second = sample(tiny_llama, PROMPTS[:2], cfg)
    assert first.token_ids[0] not in second.token_ids  # precondition of this test
    config = tiny_llama.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = [first.token_ids[0]]  # the first prompt now ends at once
    try:
        stopped, running = sample(tiny_llama, PROMPTS[:2], cfg)
    finally:
        config.eos_token_id = saved
    assert (stopped.stop_reason, stopped.token_ids, stopped.logprobs) == ("eos", (), ())
    assert running.stop_reason == "length" and running.token_ids == second.token_ids


def test_progress_reaches_one(tiny_llama):
    seen = []
    sample(
        tiny_llama, PROMPTS, SamplingConfig(max_new_tokens=4, n=2, batch_size=4), progress=lambda f, m: seen.append(f)
    )
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 4


def test_sampling_takes_the_session_lock(tiny_llama):
    import threading

    with tiny_llama.lock:
        result = []
        holder = threading.Thread(
            target=lambda: result.append(sample(tiny_llama, ["a"], SamplingConfig(max_new_tokens=2)))
        )
        holder.start()
        holder.join(timeout=0.5)
        assert holder.is_alive() and not result  # waits for the lock
    holder.join(timeout=30)
    assert result


@pytest.mark.parametrize(
    "prompts, cfg, message",
    [
        ([], SamplingConfig(), "No prompts"),
        ([""], SamplingConfig(), "empty"),
        ([[]], SamplingConfig(), "no tokens"),
        (["a"], SamplingConfig(max_new_tokens=600), "exceeds the context window of 512"),
    ],
)
def test_bad_input(tiny_llama, prompts, cfg, message):
    with pytest.raises(ValueError, match=message):
        sample(tiny_llama, prompts, cfg)


@pytest.mark.parametrize(
    "kwargs", [{"n": 0}, {"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_k": -1}, {"batch_size": 0}]
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        SamplingConfig(**kwargs)


@pytest.mark.default_model
def test_default_model_batched_greedy_equals_generate(default_session):
    generations = sample(default_session, PROMPTS, SamplingConfig(max_new_tokens=8, temperature=0, batch_size=3))
    for generation, prompt in zip(generations, PROMPTS):
        assert list(generation.token_ids) == _generate_one_at_a_time(default_session, prompt, 8)
    assert "Paris" in generations[0].text


def test_text_logprobs_shapes(tiny_llama):
    short, longer = text_logprobs(tiny_llama, ["hello", "hello there my friend"])
    n_long = len(tiny_llama.tokenizer.encode("hello there my friend"))
    assert len(longer) == n_long - 1
    assert len(short) == len(tiny_llama.tokenizer.encode("hello")) - 1
    with torch.inference_mode():
        ids = tiny_llama.tokenizer("hello there my friend", return_tensors="pt").input_ids
        logp = torch.log_softmax(tiny_llama.model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    np.testing.assert_allclose(longer, logp.numpy(), atol=1e-5)


def test_rows_that_stop_leave_the_batch_without_changing_the_others(tiny_llama):
    """Samples of one prompt share its prefill, and finished rows are dropped mid-batch:
    each sample is still what it is alone (batch size 1)."""
    cfg = SamplingConfig(max_new_tokens=12, n=8, seed=4)
    free = sample(tiny_llama, ["poem poem"], cfg)
    config = tiny_llama.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = [free[j].token_ids[j + 1] for j in range(4)]  # sample j stops by step j + 1
    try:
        together = sample(tiny_llama, ["poem poem"], cfg)
        alone = sample(tiny_llama, ["poem poem"], replace(cfg, batch_size=1))
    finally:
        config.eos_token_id = saved
    assert [(g.token_ids, g.stop_reason) for g in together] == [(g.token_ids, g.stop_reason) for g in alone]
    np.testing.assert_allclose(
        np.concatenate([g.logprobs for g in together]), np.concatenate([g.logprobs for g in alone]), atol=1e-5
    )
    stopped = [len(g.token_ids) for g in together if g.stop_reason == "eos"]
    assert len(stopped) >= 2 and len(set(stopped)) >= 2
