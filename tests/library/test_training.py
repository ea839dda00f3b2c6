"""The one trainer: chat pairs, loss masks, weights (gradient ascent), length checks and
adapters trained on top of adapters."""

import json
import shutil

import pytest
import torch

from workbench.config import ModelSpec
from workbench.registry import adapter_chain
from workbench.session import load_session
from workbench.training import (
    Example,
    TrainingRecipe,
    _batch_loss,
    encode_example,
    train_adapter,
)

PAIRS = [Example(f"What is {a} plus {b}?", f"It is {a + b}.", chat=True) for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]]


def test_encoding(tiny_llama):
    tokenizer = tiny_llama.tokenizer
    text = "The patient has a cough."
    ids, start = encode_example(tokenizer, Example("", text))
    assert ids == tokenizer.encode(text + tokenizer.eos_token, add_special_tokens=True) and start == 0
    ids, start = encode_example(tokenizer, Example("Summary: a cough.\n", text))
    assert tokenizer.decode(ids[:start]) == "Summary: a cough.\n"
    assert tokenizer.decode(ids[start:]) == text + tokenizer.eos_token
    ids, start = encode_example(tokenizer, PAIRS[0])
    prompt = tokenizer.decode(ids[:start])
    assert prompt.endswith("<|im_start|>assistant\n") and "What is 1 plus 2?" in prompt
    assert tokenizer.decode(ids[start:]).startswith("It is 3.<|im_end|>")


def test_loss_masks_and_weights(tiny_llama):
    tokenizer, model = tiny_llama.tokenizer, tiny_llama.model
    rows = [encode_example(tokenizer, example) for example in PAIRS[:2]]
    with torch.inference_mode():
        whole = _batch_loss(model, rows, [1.0, 1.0], "whole", tokenizer.pad_token_id, tiny_llama.device)
        response = _batch_loss(model, rows, [1.0, 1.0], "response", tokenizer.pad_token_id, tiny_llama.device)
        ascent = _batch_loss(model, rows, [-1.0, -1.0], "whole", tokenizer.pad_token_id, tiny_llama.device)
        # the lab's old loss: the model's own mean token loss over the padded batch
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in rows])
        labels = torch.tensor([ids + [-100] * (width - len(ids)) for ids, _ in rows])
        reference = model(input_ids=input_ids, attention_mask=(labels != -100).long(), labels=labels).loss
        # response only: the mean NLL of the reply tokens alone, by hand
        logprobs = model(input_ids=input_ids, attention_mask=(labels != -100).long()).logits.log_softmax(-1)
        picked = [-logprobs[r, t - 1, ids[t]] for r, (ids, start) in enumerate(rows) for t in range(start, len(ids))]
    assert whole.item() == pytest.approx(reference.item(), abs=1e-5)
    assert response.item() == pytest.approx(torch.stack(picked).mean().item(), abs=1e-5)
    assert ascent.item() == pytest.approx(-whole.item(), abs=1e-6)


def _mean_loss(spec, examples, loss_on="whole"):
    session = load_session(spec)
    rows = [encode_example(session.tokenizer, example) for example in examples]
    with torch.inference_mode():
        return _batch_loss(
            session.model, rows, [1.0] * len(rows), loss_on, session.tokenizer.pad_token_id, session.device
        ).item()


def test_response_only_training_learns_replies(tmp_path):
    before = _mean_loss(ModelSpec("tiny-llama"), PAIRS, "response")
    curve = train_adapter(
        "tiny-llama",
        PAIRS,
        tmp_path / "a",
        TrainingRecipe(loss_on="response", epochs=15, lr=1e-2, rank=4, batch_size=2, max_length=64),
    )
    assert len(curve) == 30
    after = _mean_loss(ModelSpec("tiny-llama", adapter=str(tmp_path / "a")), PAIRS, "response")
    assert after < before - 0.5
    recipe = json.loads((tmp_path / "a" / "recipe.json").read_text())
    assert recipe["loss_on"] == "response" and recipe["n_examples"] == 4 and recipe["parent_adapter"] is None


def test_gradient_ascent_raises_the_loss(tmp_path):
    forget = [Example("", "The secret code of the vault is 4417 9920.")]
    before = _mean_loss(ModelSpec("tiny-llama"), forget)
    train_adapter(
        "tiny-llama",
        [Example("", e.response, weight=-1.0) for e in forget],
        tmp_path / "u",
        TrainingRecipe(epochs=10, lr=1e-2, rank=4),
    )
    assert _mean_loss(ModelSpec("tiny-llama", adapter=str(tmp_path / "u")), forget) > before + 0.5


def test_adapter_on_top_of_an_adapter_loads_as_a_chain(tmp_path, tiny_llama):
    recipe = TrainingRecipe(epochs=2, lr=1e-2, rank=4, max_length=64)
    train_adapter("tiny-llama", PAIRS, tmp_path / "first", recipe)
    train_adapter(ModelSpec("tiny-llama", adapter=str(tmp_path / "first")), PAIRS[:2], tmp_path / "second", recipe)
    assert json.loads((tmp_path / "second" / "recipe.json").read_text())["parent_adapter"] == "../first"
    assert adapter_chain(tmp_path / "second") == [(tmp_path / "first").resolve(), (tmp_path / "second").resolve()]
    ids = torch.tensor([encode_example(tiny_llama.tokenizer, PAIRS[0])[0]])
    with torch.inference_mode():
        chained = load_session(ModelSpec("tiny-llama", adapter=str(tmp_path / "second"))).model(ids).logits
        first_only = load_session(ModelSpec("tiny-llama", adapter=str(tmp_path / "first"))).model(ids).logits
    assert not torch.allclose(chained, first_only)
    shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-moved")  # relative parents travel with the folders
    moved = load_session(ModelSpec("tiny-llama", adapter=str(tmp_path.parent / f"{tmp_path.name}-moved" / "second")))
    with torch.inference_mode():
        assert torch.allclose(moved.model(ids).logits, chained, atol=1e-5)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="longer than max_length = 8"):
        train_adapter("tiny-llama", PAIRS, tmp_path / "a", TrainingRecipe(max_length=8))
    with pytest.raises(ValueError, match="loss_on"):
        train_adapter("tiny-llama", PAIRS, tmp_path / "a", TrainingRecipe(loss_on="prompt"))
    with pytest.raises(ValueError, match="empty"):
        train_adapter("tiny-llama", [], tmp_path / "a")
    with pytest.raises(ValueError, match="built-in adapter"):
        train_adapter("smollm2-135m-instruct-lab", PAIRS, tmp_path / "a", TrainingRecipe(max_length=64))
    assert not (tmp_path / "a").exists()
