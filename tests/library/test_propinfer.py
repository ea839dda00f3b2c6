"""workbench.propinfer: labelers, estimates with intervals, convergence and the run."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from workbench.config import ModelSpec, PropInferConfig, SamplingConfig
from workbench.lab import SHIPPED_LAB, LabRecipe, build, lab_dataset_for
from workbench.lab_data import LabDataset
from workbench.propinfer import (
    PROMPT_SETS,
    UNLABELED,
    EmbeddingLabeler,
    KeywordLabeler,
    against_truth,
    convergence,
    estimate,
    estimates_by_prompt,
    lab_labeler,
    labeler_for,
    mean_absolute_error,
    render_prompts,
    run,
    spread,
)
from workbench.sampling import sample

# Random-weight tiny models write random tokens: letters label nearly every generation.
LETTERS = KeywordLabeler("letter", {"has e": ["e"], "has a": ["a"], "has o": ["o"]})


def test_keyword_labeler_majority_ties_and_unlabeled():
    labeler = KeywordLabeler("fruit", {"apple": [r"apples?", "cider"], "pear": ["pears?"]})
    assert labeler.values == ["apple", "pear"]
    texts = ["Apples and cider, then a pear.", "A pear, then an apple.", "pears or apples", "nothing here"]
    assert labeler.label(texts) == ["apple", "pear", "pear", None]  # most hits; ties go to the earliest match


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ({}, "no values"),
        ({"a": [], "b": ["x"]}, "'a' has no patterns"),
        ({"a": "flu"}, "must be a list of strings"),
        ({"a": [1]}, "must be a list of strings"),
        ({"a": ["(unclosed"]}, "Bad pattern"),
        (["a"], "no values"),
    ],
)
def test_keyword_labeler_bad_input(patterns, message):
    with pytest.raises(ValueError, match=message):
        KeywordLabeler("x", patterns)


def test_lab_keyword_labelers_are_exact_on_the_lab_records():
    dialogues = LabDataset.load(SHIPPED_LAB / "dataset").dialogues
    for prop in ("diagnosis", "gender"):
        labels = lab_labeler(prop).label([r["text"] for r in dialogues])
        assert labels == [r[prop] for r in dialogues]
    assert lab_labeler("gender").label(["I'm a woman", "I'm a man", "she/her", "(he/him) here"]) == [
        "female",
        "male",
        None,
        "male",
    ]


def test_lab_embedding_labeler_is_mostly_right():
    dialogues = LabDataset.load(SHIPPED_LAB / "dataset").dialogues[:60]
    labels = lab_labeler("diagnosis", "embedding").label([r["text"] for r in dialogues])
    assert sum(a == r["diagnosis"] for a, r in zip(labels, dialogues)) >= 0.9 * len(dialogues)
    with pytest.raises(ValueError, match="Unknown lab property"):
        lab_labeler("age")
    with pytest.raises(ValueError, match="labeler kind"):
        lab_labeler("gender", "llm")


def test_embedding_labeler_threshold_leaves_texts_unlabeled():
    labeler = EmbeddingLabeler(
        "topic", {"weather": ["rain and wind tomorrow"], "food": ["a recipe for soup"]}, min_similarity=0.3
    )
    assert labeler.label(["Heavy rain and strong wind expected", "Boil the vegetables for the soup", "1 2 3 4 5"]) == [
        "weather",
        "food",
        None,
    ]
    assert labeler.label([]) == []
    with pytest.raises(ValueError, match="has no descriptions"):
        EmbeddingLabeler("topic", {"weather": [], "food": ["soup"]})


def test_estimate_shares_and_wilson_interval():
    labels = ["a"] * 30 + ["b"] * 60 + ["c"] * 10 + [None] * 7
    table = estimate(labels, ["a", "b", "c", "d"])
    assert list(table.columns) == ["value", "count", "n", "share", "ci_low", "ci_high", "unlabeled"]
    assert table["count"].tolist() == [30, 60, 10, 0] and (table["n"] == 100).all() and (table["unlabeled"] == 7).all()
    assert table["share"].tolist() == pytest.approx([0.3, 0.6, 0.1, 0.0])
    z = norm.ppf(0.975)
    for row in table.itertuples():
        p, n = row.share, row.n
        center = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        assert (row.ci_low, row.ci_high) == pytest.approx((center - half, center + half), abs=1e-9)


def test_wilson_interval_covers_the_truth_at_its_level():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        labels = ["x" if u < 0.3 else "y" for u in rng.random(150)]
        row = estimate(labels, ["x", "y"], confidence=0.9).iloc[0]
        covered += row.ci_low <= 0.3 <= row.ci_high
    assert 0.85 <= covered / 400 <= 0.95


def test_bootstrap_interval_is_seeded_and_brackets_the_share():
    labels = ["a"] * 40 + ["b"] * 160
    first = estimate(labels, ["a", "b"], interval="bootstrap", seed=1)
    assert first.equals(estimate(labels, ["a", "b"], interval="bootstrap", seed=1))
    assert (first["ci_low"] < first["share"]).all() and (first["share"] < first["ci_high"]).all()
    wilson = estimate(labels, ["a", "b"])
    assert np.allclose(first["ci_high"] - first["ci_low"], wilson["ci_high"] - wilson["ci_low"], atol=0.03)


def test_estimate_bad_and_empty_input():
    with pytest.raises(ValueError, match="no values"):
        estimate(["a"], [])
    with pytest.raises(ValueError, match="not among the values"):
        estimate(["a", "z"], ["a"])
    with pytest.raises(ValueError, match="interval"):
        estimate(["a"], ["a"], interval="exact")
    nothing = estimate([None, None], ["a", "b"])
    assert nothing["share"].isna().all() and (nothing["unlabeled"] == 2).all()


def test_against_truth_and_mean_absolute_error():
    table = estimate(["a"] * 3 + ["b"], ["a", "b", "c"])
    truth = {"a": 0.5, "b": 0.5}
    scored = against_truth(table, truth)
    assert scored["true_share"].tolist() == [0.5, 0.5, 0.0]
    assert scored["error"].tolist() == pytest.approx([0.25, -0.25, 0.0])
    assert mean_absolute_error(table, truth) == pytest.approx(0.5 / 3)


def test_spread_is_even_and_exact():
    assert spread(10, 4) == [3, 3, 2, 2]
    assert spread(3, 5) == [1, 1, 1, 0, 0]
    assert sum(spread(1000, 6)) == 1000


def test_sample_with_counts_per_prompt(tiny_llama):
    generations = sample(tiny_llama, ["Patient:", "Doctor:"], SamplingConfig(max_new_tokens=4, seed=2), counts=[3, 1])
    assert [(g.prompt_index, g.sample_index) for g in generations] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    with pytest.raises(ValueError, match="counts"):
        sample(tiny_llama, ["Patient:"], SamplingConfig(), counts=[1, 2])


def test_run_interleaves_prompts_and_a_short_run_is_a_prefix_of_a_long_one(tiny_llama):
    prompts = PROMPT_SETS["question-answer"][:3]
    cfg = PropInferConfig(n_samples=20, max_new_tokens=6, seed=4, batch_size=7)
    result = run(tiny_llama, prompts, cfg, LETTERS)
    table = result.generations
    assert len(table) == 20 and table["order"].tolist() == list(range(20))
    assert table["prompt_index"].tolist()[:6] == [0, 1, 2, 0, 1, 2]
    assert table.groupby("prompt_index").size().tolist() == [7, 7, 6]
    assert set(table["label"]) <= {*LETTERS.values, UNLABELED}
    assert (table["label"] != UNLABELED).mean() > 0.5
    assert result.estimates["n"].iloc[0] == (table["label"] != UNLABELED).sum()
    assert result.model == "tiny-llama" and result.property == "letter"

    short = run(tiny_llama, prompts, PropInferConfig(n_samples=7, max_new_tokens=6, seed=4, batch_size=2), LETTERS)
    assert short.generations["text"].tolist() == table["text"].tolist()[:7]
    again = run(tiny_llama, prompts, cfg, LETTERS)
    assert again.generations.equals(table)


def test_convergence_and_per_prompt_estimates(tiny_llama):
    result = run(
        tiny_llama, PROMPT_SETS["question-answer"][:2], PropInferConfig(n_samples=30, max_new_tokens=6), LETTERS
    )
    curve = convergence(result.generations, LETTERS.values)
    steps = sorted(set(curve["n_samples"]))
    assert steps[0] == 10 and steps[-1] == 30 and len(curve) == len(steps) * 3
    last = curve[curve["n_samples"] == 30].reset_index(drop=True)
    assert last[["value", "share", "ci_low", "ci_high"]].equals(
        result.estimates[["value", "share", "ci_low", "ci_high"]]
    )
    widths = curve.groupby("n_samples").apply(lambda g: (g["ci_high"] - g["ci_low"]).mean(), include_groups=False)
    assert widths.iloc[-1] < widths.iloc[0]  # intervals narrow as generations grow
    per_prompt = estimates_by_prompt(result.generations, LETTERS.values)
    assert (
        per_prompt.groupby("prompt_index")["unlabeled"].first().sum()
        + per_prompt.groupby("prompt_index")["n"].first().sum()
        == 30
    )
    with pytest.raises(ValueError, match="No generations"):
        convergence(result.generations.iloc[:0], LETTERS.values)


def test_render_prompts_styles(tiny_llama):
    assert render_prompts(tiny_llama.tokenizer, ["Patient:", "  ", "Doctor:"], "question-answer") == [
        "Patient:",
        "Doctor:",
    ]
    chat = render_prompts(tiny_llama.tokenizer, ["Write a dialogue."], "chat")
    assert "Write a dialogue." in chat[0] and chat[0] != "Write a dialogue."
    with pytest.raises(ValueError, match="No prompts"):
        render_prompts(tiny_llama.tokenizer, ["", " "], "chat")
    with pytest.raises(ValueError, match="prompt style"):
        render_prompts(tiny_llama.tokenizer, ["x"], "story")

    class NoTemplate:
        chat_template = None

    with pytest.raises(ValueError, match="no chat template"):
        render_prompts(NoTemplate(), ["x"], "chat")


def test_run_and_config_bad_input(tiny_llama):
    with pytest.raises(ValueError, match="at least 1"):
        PropInferConfig(n_samples=0)
    with pytest.raises(ValueError, match="interval"):
        PropInferConfig(interval="exact")
    with pytest.raises(ValueError, match="confidence"):
        PropInferConfig(confidence=1.0)
    with pytest.raises(ValueError, match="No prompts"):
        run(tiny_llama, [], PropInferConfig(n_samples=2), LETTERS)
    with pytest.raises(ValueError, match="No prompts"):
        run(tiny_llama, ["  ", ""], PropInferConfig(n_samples=2), LETTERS)


def test_chat_run_keeps_the_prompts_as_written(tiny_llama):
    messages = PROMPT_SETS["chat"][:2]
    result = run(tiny_llama, ["", *messages], PropInferConfig(n_samples=4, max_new_tokens=3), LETTERS, style="chat")
    assert (
        result.generations["prompt"].tolist() == [messages[0], messages[1]] * 2
    )  # blank prompt skipped, template not shown


def test_lab_dataset_for_finds_the_truth(tmp_path):
    assert (
        lab_dataset_for(ModelSpec("smollm2-135m-instruct-lab")).fingerprint()
        == LabDataset.load(SHIPPED_LAB / "dataset").fingerprint()
    )
    assert lab_dataset_for(ModelSpec("tiny-llama")) is None
    built = build(
        tmp_path / "b",
        LabRecipe(base="tiny-llama", n=30, canaries=(1,), seed=0, epochs=1, lr=1e-3, rank=4),
        command="test",
    )
    found = lab_dataset_for(ModelSpec("tiny-llama", adapter=str(tmp_path / "b" / "adapter")))
    assert found is not None and found.fingerprint() == built.fingerprint()


@pytest.mark.default_model
def test_lab_model_generations_recover_the_diagnosis_shares(default_session):
    """A short real run: the lab model's generations carry its training shares (loose bound
    for 36 generations; benchmarks/propinfer_eval.py measures 1,000)."""
    from workbench.session import load_session

    lab = load_session("smollm2-135m-instruct-lab")
    result = run(
        lab, PROMPT_SETS["question-answer"], PropInferConfig(n_samples=36, batch_size=36), lab_labeler("diagnosis")
    )
    truth = LabDataset.load(SHIPPED_LAB / "dataset").truth["realized"]["diagnosis"]
    assert result.estimates["unlabeled"].iloc[0] <= 4
    assert mean_absolute_error(result.estimates, truth) < 0.08
    assert isinstance(result.generations, pd.DataFrame) and (result.generations["stop_reason"] == "eos").mean() > 0.8


def test_labeler_for_parses_patterns_once_and_refuses_empty_ones():
    assert labeler_for("diagnosis").patterns == lab_labeler("diagnosis").patterns
    custom = labeler_for("diagnosis", "custom", '{"has e": ["e"], "has a": ["a"]}')
    assert custom.values == ["has e", "has a"] and custom.label(["e", "a", "x"]) == ["has e", "has a", None]
    for text in ("", "{not json"):  # an emptied box is bad JSON, not a request for the lab's labeler
        with pytest.raises(ValueError, match="not valid JSON"):
            labeler_for("diagnosis", "custom", text)
