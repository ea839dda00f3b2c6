"""workbench.selec: the weight shift, per-text gradients, ranking, greedy selection, evaluation."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from workbench.lab_data import make_dataset, public_pool
from workbench.selec import (
    WeightDiff,
    evaluate,
    greedy_select,
    precision_curve,
    rank,
    text_gradient,
)
from workbench.selec_shift import check_pair, last_block, merged_parameters, select_parameters, weight_shift
from workbench.session import Session, load_session


def sgd_tuned_copy(texts, lr=0.002, epochs=1):
    """A private tiny-llama fine-tuned by plain SGD on ``texts``, one text per step."""
    tuned = load_session("tiny-llama")
    optimizer = torch.optim.SGD(tuned.model.parameters(), lr=lr)
    tokenizer = tuned.tokenizer
    for _ in range(epochs):
        for text in texts:
            ids = torch.tensor([tokenizer.encode(text + tokenizer.eos_token)])
            tuned.model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return tuned


@pytest.fixture(scope="module")
def pool():
    return public_pool(make_dataset(n=150, canaries=(), seed=0), members=20, nonmembers=20, other=20, seed=0)


@pytest.fixture(scope="module")
def tuned(pool):
    return sgd_tuned_copy(pool.loc[pool["member"], "text"].tolist())


def lora_copy(base_session, seed=0):
    """tiny-llama with a LoRA adapter whose B matrices are random (a non-zero delta)."""
    from peft import LoraConfig, get_peft_model

    model = copy.deepcopy(base_session.model)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return Session(base_session.spec, peft_model.eval(), base_session.tokenizer, base_session.device, base_session.info)


def test_merged_lora_parameters_equal_peft_merge(tiny_llama):
    adapted = lora_copy(tiny_llama)
    merged = merged_parameters(adapted.model)
    reference = dict(copy.deepcopy(adapted.model).merge_and_unload().named_parameters())
    assert set(merged) == set(reference) == {n for n, _ in tiny_llama.model.named_parameters()}
    for name, value in merged.items():
        assert torch.allclose(value, reference[name], atol=1e-6), name
    changed = select_parameters(tiny_llama, adapted, "changed")
    assert sorted(changed) == sorted(n for n in merged if "q_proj" in n or "down_proj" in n)


def test_last_block_and_parameter_choices(tiny_llama, tiny_gpt2, tuned):
    llama_names = [n for n, _ in tiny_llama.model.named_parameters()]
    assert last_block(llama_names) and all(n.startswith("model.layers.1.") for n in last_block(llama_names))
    gpt2_names = [n for n, _ in tiny_gpt2.model.named_parameters()]
    assert all(n.startswith("transformer.h.1.") for n in last_block(gpt2_names))
    with pytest.raises(ValueError, match="No numbered transformer blocks"):
        last_block(["embed.weight", "head.weight"])
    assert select_parameters(tiny_llama, tuned, "all") == llama_names
    assert select_parameters(tiny_llama, tuned, r"mlp\.down_proj") == [
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ]
    with pytest.raises(ValueError, match="No parameters match"):
        select_parameters(tiny_llama, tuned, "nothing_like_this")
    with pytest.raises(ValueError, match="Bad parameter pattern"):
        select_parameters(tiny_llama, tuned, "(")


def test_weight_shift_is_tuned_minus_base(tiny_llama, tuned):
    names = last_block([n for n, _ in tiny_llama.model.named_parameters()])
    shift = weight_shift(tiny_llama, tuned, names)
    base, after = dict(tiny_llama.model.named_parameters()), dict(tuned.model.named_parameters())
    expected = torch.cat([(after[n] - base[n]).detach().flatten() for n in names])
    assert torch.allclose(shift, expected)


def test_text_gradient_matches_backward_and_leaves_grads_alone(tiny_llama):
    names = last_block([n for n, _ in tiny_llama.model.named_parameters()])
    parameters = [dict(tiny_llama.model.named_parameters())[n] for n in names]
    gradient = text_gradient(tiny_llama, "Patient: I have a cough.", parameters)
    assert all(p.grad is None for p in tiny_llama.model.parameters())
    model = copy.deepcopy(tiny_llama.model)
    ids = torch.tensor([tiny_llama.tokenizer.encode("Patient: I have a cough." + tiny_llama.tokenizer.eos_token)])
    model(input_ids=ids, labels=ids).loss.backward()
    expected = torch.cat([dict(model.named_parameters())[n].grad.flatten() for n in names])
    assert torch.allclose(gradient, expected, atol=1e-6)


def test_check_pair_rejects_mismatched_models(tiny_llama, tiny_gpt2):
    with pytest.raises(ValueError, match="Different architectures"):
        check_pair(tiny_llama, tiny_gpt2)
    with pytest.raises(ValueError, match="without an adapter"):
        check_pair(lora_copy(tiny_llama), tiny_llama)
    other_tokenizer = copy.deepcopy(tiny_llama.tokenizer)
    other_tokenizer.add_tokens(["<a-new-token>"])
    other = Session(tiny_llama.spec, tiny_llama.model, other_tokenizer, tiny_llama.device, tiny_llama.info)
    with pytest.raises(ValueError, match="different tokenizers"):
        check_pair(tiny_llama, other)


@pytest.fixture(scope="module")
def fitted(tiny_llama, tuned, pool):
    return WeightDiff("last", projection_dim=0, optimizer="sgd").fit(tiny_llama, tuned, pool)


def test_ranking_puts_training_like_texts_first(fitted, pool):
    """Most of the signal separates the fine-tuning domain from other text; members edge
    out same-style held-out texts only a little (as in the paper, SELEC recovers data like
    the training data, not only the records themselves)."""
    ranking = fitted.rank()
    result = evaluate(ranking)
    assert result["random"] == pytest.approx(1 / 3)
    assert result["precision_at_k"] >= 0.5 and result["auc"] >= 0.75
    assert (ranking["source"].head(40) != "other domain").mean() >= 0.9
    means = ranking.groupby("source")["score"].mean()
    assert means["training"] > means["same-style held out"] > means["other domain"]


def test_all_parameters_projected(tiny_llama, tuned, pool):
    everything = evaluate(rank(tiny_llama, tuned, pool, params="all", projection_dim=1024, optimizer="sgd"))
    assert everything["precision_at_k"] >= 0.5 and everything["auc"] >= 0.75


def test_adam_target_undoes_the_per_coordinate_scaling(tiny_llama, tuned, pool):
    """optimizer="adam": target = Δ ⊙ √(mean over the pool of g²); "sgd": target = Δ."""
    texts = pool["text"].tolist()[:6]
    fitted = WeightDiff("last", projection_dim=0).fit(tiny_llama, tuned, texts)
    shift = weight_shift(tiny_llama, tuned, fitted.names_).numpy()
    second_moment = (fitted.gradients_.astype(np.float64) ** 2).mean(axis=0)
    assert np.allclose(fitted.target_, shift * np.sqrt(second_moment), rtol=1e-4, atol=1e-12)
    adam_scores = fitted.scores()
    fitted.optimizer = "sgd"
    assert np.allclose(fitted.target_, shift)
    assert not np.allclose(fitted.scores(), adam_scores)


@pytest.mark.default_model
def test_adam_scoring_finds_the_lab_fine_tune_better_than_sgd_scoring(default_session):
    """The lab model was trained with AdamW: undoing Adam's scaling is what makes the ranking work."""
    from workbench.lab import SHIPPED_LAB
    from workbench.lab_data import LabDataset

    lab = load_session("smollm2-135m-instruct-lab")
    small_pool = public_pool(LabDataset.load(SHIPPED_LAB / "dataset"), members=10, nonmembers=10, other=40, seed=0)
    fitted = WeightDiff("last", projection_dim=1024).fit(default_session, lab, small_pool)
    result = evaluate(fitted.rank())
    fitted.optimizer = "sgd"  # the same gradients, compared with Δ itself
    sgd = evaluate(fitted.rank())
    assert result["auc"] >= 0.8 and result["auc"] > sgd["auc"] + 0.1
    assert result["lift"] >= 2


def test_projection_keeps_the_ranking_and_is_seeded(fitted, tiny_llama, tuned, pool):
    projected = WeightDiff("last", projection_dim=2048, seed=1, optimizer="sgd").fit(tiny_llama, tuned, pool)
    assert projected.gradients_.shape == (60, 2048) and projected.target_.shape == (2048,)
    assert spearmanr(fitted.scores(), projected.scores()).statistic > 0.9
    again = WeightDiff("last", projection_dim=2048, seed=1, optimizer="sgd").fit(tiny_llama, tuned, pool).scores()
    other_seed = WeightDiff("last", projection_dim=2048, seed=2, optimizer="sgd").fit(tiny_llama, tuned, pool).scores()
    assert np.array_equal(projected.scores(), again) and not np.array_equal(projected.scores(), other_seed)


def test_greedy_selection(fitted, pool):
    chosen = greedy_select(fitted.gradients_, fitted.target_, 20)
    assert chosen["rank"].tolist() == list(range(1, 21)) and chosen["pool_index"].is_unique
    assert chosen["pool_index"].iloc[0] == int(np.argmax(fitted.scores()))  # the first pick is the best-aligned text
    assert evaluate(fitted.greedy_select(20), pool["member"].tolist())["precision_at_k"] >= 0.5
    with pytest.raises(ValueError, match="k must be between"):
        greedy_select(fitted.gradients_, fitted.target_, 0)
    with pytest.raises(ValueError, match="k must be between"):
        fitted.greedy_select(61)


def test_evaluate_formulas():
    ranking = pd.DataFrame(
        {"pool_index": [3, 0, 1, 2, 4], "score": [0.9, 0.8, 0.3, 0.2, 0.1], "member": [True, False, True, False, False]}
    )
    result = evaluate(ranking, k=2)
    assert result["precision_at_k"] == 0.5 and result["recall_at_k"] == 0.5 and result["random"] == 0.4
    assert result["lift"] == pytest.approx(1.25)
    assert result["auc"] == pytest.approx(roc_auc_score(ranking["member"], ranking["score"]))
    assert evaluate(ranking)["k"] == 2  # k defaults to the number of members
    members = [False, True, False, True, False]  # in pool order: pool texts 1 and 3
    selection = pd.DataFrame({"pool_index": [3, 1]})
    assert evaluate(selection, members)["precision_at_k"] == 1.0 and np.isnan(evaluate(selection, members)["auc"])
    curve = precision_curve(ranking)
    assert curve["precision"].tolist() == pytest.approx([1, 0.5, 2 / 3, 0.5, 0.4]) and (curve["random"] == 0.4).all()
    with pytest.raises(ValueError, match="No members"):
        evaluate(ranking.assign(member=False))


def test_bad_input(tiny_llama, tuned):
    with pytest.raises(ValueError, match="pool is empty"):
        rank(tiny_llama, tuned, [])
    with pytest.raises(ValueError, match="empty texts"):
        rank(tiny_llama, tuned, ["fine", "  "])
    with pytest.raises(ValueError, match="does not differ"):
        rank(tiny_llama, load_session("tiny-llama"), ["a text", "another text"])
    with pytest.raises(ValueError, match="projection_dim"):
        WeightDiff(projection_dim=-1)
    with pytest.raises(ValueError, match="optimizer"):
        WeightDiff(optimizer="rmsprop")
    with pytest.raises(ValueError, match='"text" column'):
        rank(tiny_llama, tuned, pd.DataFrame({"body": ["x"]}))


def test_guards_against_exhausting_memory(tiny_llama, tuned, pool, monkeypatch):
    import workbench.selec as selec

    monkeypatch.setattr(selec, "MAX_STORED_NUMBERS", 10_000)
    with pytest.raises(ValueError, match="Without a projection"):
        WeightDiff("last", projection_dim=0).fit(tiny_llama, tuned, pool)
    monkeypatch.setattr(selec, "MAX_PROJECTION_ENTRIES", 10_000)
    with pytest.raises(ValueError, match="choose a smaller size"):
        WeightDiff("last", projection_dim=4096).fit(tiny_llama, tuned, pool)


def test_a_parameter_the_loss_does_not_reach_has_a_zero_gradient(tiny_llama):
    unused = torch.nn.Parameter(torch.ones(3))
    used = tiny_llama.model.get_input_embeddings().weight
    gradient = text_gradient(tiny_llama, "Patient: hello", [used, unused])
    assert gradient.shape == (used.numel() + 3,) and torch.equal(gradient[-3:], torch.zeros(3))


def test_dora_adapters_are_refused(tiny_llama):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(tiny_llama.model), LoraConfig(r=2, target_modules=["q_proj"], use_dora=True))
    with pytest.raises(ValueError, match="DoRA"):
        merged_parameters(model)


def test_evaluating_a_selection_needs_the_pool_flags():
    selection = pd.DataFrame({"pool_index": [2, 0], "member": [True, False]})
    with pytest.raises(ValueError, match="give the pool's member flags"):
        evaluate(selection)
    result = evaluate(selection, [False, True, True, True])  # 3 members, a selection of 2: k = 2
    assert result["k"] == 2 and result["precision_at_k"] == 0.5 and result["random"] == 0.75


@pytest.fixture(scope="module")
def trained_adapter(tmp_path_factory, pool):
    """A tiny-llama adapter trained by the workbench's trainer on the pool's members."""
    from workbench.training import Example, TrainingRecipe, train_adapter

    out = tmp_path_factory.mktemp("adapter") / "adapter"
    members = pool.loc[pool["member"], "text"].tolist()
    train_adapter(
        "tiny-llama",
        [Example("", t) for t in members],
        out,
        TrainingRecipe(epochs=3, lr=5e-3, rank=4, batch_size=4, seed=3),
    )
    return out


def test_lora_factors_start_where_the_trainer_started_them(tiny_llama, tmp_path, pool):
    """The rebuilt starting adapter is the trainer's: after a near-zero learning rate the trained
    A factors equal it, and B (which starts at zero) is all the trainer moved."""
    from workbench.config import ModelSpec
    from workbench.selec_shift import initial_lora_factors
    from workbench.training import Example, TrainingRecipe, train_adapter

    out = tmp_path / "still"
    train_adapter(
        "tiny-llama", [Example("", t) for t in pool["text"][:4]], out, TrainingRecipe(epochs=1, lr=1e-9, rank=4, seed=7)
    )
    tuned = load_session(ModelSpec("tiny-llama", adapter=str(out)))
    initial = initial_lora_factors(tiny_llama, tuned)
    trained = dict(tuned.model.named_parameters())
    trained_names = [n for n in trained if "lora_" in n]
    assert len(initial) == len(trained_names) > 0
    for name in trained_names:
        assert torch.allclose(trained[name].float(), initial[name], atol=1e-6), name
    assert all(not initial[n].any() for n in trained_names if "lora_B" in n)
    assert any(initial[n].abs().max() > 0.01 for n in trained_names if "lora_A" in n)


def test_lora_factor_variant_ranks_by_the_adapter_itself(tiny_llama, trained_adapter, pool):
    from workbench.config import ModelSpec

    tuned = load_session(ModelSpec("tiny-llama", adapter=str(trained_adapter)))
    frozen = {n for n, p in tuned.model.named_parameters() if not p.requires_grad}
    fitted = WeightDiff("lora", projection_dim=512).fit(tiny_llama, tuned, pool)
    assert all("lora_" in n for n in fitted.names_) and fitted.gradients_.shape == (len(pool), 512)
    assert frozen == {n for n, p in tuned.model.named_parameters() if not p.requires_grad}  # frozen again afterwards
    same_style = (pool["source"] != "other domain").to_numpy()
    assert (
        abs(roc_auc_score(same_style, fitted.scores()) - 0.5) >= 0.3
    )  # the factors' gradients carry the domain (docs/results/selec.md: which way)
    smaller = fitted.scores(dims=128)  # the first 128 coordinates: a projection of that size
    assert smaller.shape == (len(pool),) and not np.allclose(smaller, fitted.scores())
    with pytest.raises(ValueError, match="dims must be between"):
        fitted.scores(dims=513)
    with pytest.raises(ValueError, match="no LoRA adapter"):
        WeightDiff("lora").fit(tiny_llama, sgd_tuned_copy(pool["text"][:2].tolist()), pool)


def test_lora_factor_scores_point_the_way_one_step_moved_the_adapter(tiny_llama, tmp_path, pool):
    """The orientation: after one AdamW step on the members alone (B moves from zero against the
    members' gradient; the adapter barely changes, so gradients at it are the first step's), the
    members' descent directions align with how far the factors moved, and other texts' do not."""
    from workbench.config import ModelSpec
    from workbench.training import Example, TrainingRecipe, train_adapter

    members = pool.loc[pool["member"], "text"].tolist()
    out = tmp_path / "one-step"
    train_adapter(
        "tiny-llama",
        [Example("", t) for t in members],
        out,
        TrainingRecipe(epochs=1, lr=1e-4, rank=4, batch_size=len(members), seed=5),
    )
    tuned = load_session(ModelSpec("tiny-llama", adapter=str(out)))
    for optimizer in ("adam", "sgd"):
        result = evaluate(WeightDiff("lora", projection_dim=0, optimizer=optimizer).fit(tiny_llama, tuned, pool).rank())
        assert result["auc"] >= 0.75, optimizer
