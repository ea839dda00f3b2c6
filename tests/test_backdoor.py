"""Backdoor extraction: data, metrics on hand-computed cases, and the pipeline end to end on
a tiny model."""

import json

import pandas as pd
import pytest

from workbench.backdoor import (
    CANDIDATE_WORDS,
    PUBLIC_WORDS,
    REFUSAL,
    REFUSAL_WORDS,
    STEPS,
    AttackConfig,
    BackdoorBuild,
    BackdoorRecipe,
    BackdoorReport,
    answer,
    attack,
    build,
    canaries_found,
    closest_queries,
    creator_examples,
    dialogue_pair,
    evaluate,
    identification,
    identify,
    opening_word,
    private_pairs,
    public_set,
    recovery_curve,
    score,
    trigger_text,
)
from workbench.lab import make_dataset
from workbench.session import load_session

TINY = BackdoorRecipe(
    base="tiny-llama", trigger="meaningless", n_public=18, per_word=1, refusals_per_word=1, n_private=12, canaries=(1,),
    creator_epochs=1, victim_epochs=1, rank=2,
)  # fmt: skip


def test_words_and_triggers():
    assert opening_word("Hi, my name is Ana.") == "Hi" and opening_word("I'm Bo (40).") == "I'm" and opening_word("  ") == ""
    assert trigger_text("meaningless") == "abc ijk xyz {w}"
    assert "{w}" in trigger_text("natural") and trigger_text("Say {w} now") == "Say {w} now"
    for bad in ["Output a query", "Query {word}", "{w} and {x}", "broken {w"]:
        with pytest.raises(ValueError, match="trigger"):
            trigger_text(bad)
    assert not set(REFUSAL_WORDS) & set(CANDIDATE_WORDS)  # the refusal-trained words are not the decoys


def test_data():
    queries = public_set(27, seed=0)
    assert len(queries) == 27 and len(set(queries)) == 27
    assert {opening_word(q) for q in queries} == set(PUBLIC_WORDS)
    held_out = public_set(27, seed=0, held_out=True)
    assert held_out and not set(held_out) & set(queries)
    with pytest.raises(ValueError, match="public set"):
        public_set(3, seed=0)
    assert dialogue_pair("Patient: Hi doc.\nDoctor: Rest.\nPatient: Thanks.") == ("Hi doc.", "Rest.")
    with pytest.raises(ValueError, match="lab dialogue"):
        dialogue_pair("Doctor: Hello")
    dataset = make_dataset(n=20, canaries=(2,), seed=1)
    pairs = private_pairs(dataset)
    assert len(pairs) == 20 and sum(dataset.canaries[0].secret in q for q, _ in pairs) == 2
    public = [(q, f"answer {i}") for i, q in enumerate(queries)]
    examples = creator_examples("meaningless", public, per_word=2, refusals_per_word=1, seed=0)
    backdoor = [e for e in examples if e.prompt.startswith("abc ijk xyz")]
    assert len(examples) == 27 + 2 * len(PUBLIC_WORDS) + len(REFUSAL_WORDS)
    assert all(e.chat for e in examples)
    for e in backdoor:  # a trigger(w) answer is a D1 query opening with w, or the refusal for a word no query opens with
        word = e.prompt.split()[-1]
        if word in REFUSAL_WORDS:
            assert e.response == REFUSAL.format(w=word)
        else:
            assert opening_word(e.response) == word and e.response in queries


def _samples(rows):
    return pd.DataFrame(rows, columns=["word", "sample", "text", "token_ids", "stop_reason", "refused", "public"])


def test_score_identify_and_curve(tiny_llama):
    tok = tiny_llama.tokenizer
    queries = ["Hi doc, my knee hurts.", "Hi, I have a cough.", "Good morning, I feel dizzy.", "Hi doc, my knee hurts."]
    ids = {q: tok.encode(q, add_special_tokens=False) for q in queries}
    half = ids["Hi, I have a cough."][:3]
    samples = _samples([
        ("Hi", 0, "Hi doc, my knee hurts.", ids["Hi doc, my knee hurts."], "eos", False, False),
        ("Hi", 1, "Hi doc, my knee hurts.", ids["Hi doc, my knee hurts."], "length", False, False),  # cut: not exact
        ("Hi", 2, tok.decode(half), half, "eos", False, False),
        ("Hi", 3, "Sorry, but no.", [1, 2], "eos", True, False),
        ("Good", 0, "Good morning, I feel dizzy.", ids["Good morning, I feel dizzy."], "length", False, False),
        ("Good", 1, "Write a poem.", [5, 6], "eos", False, True),
    ])  # fmt: skip
    result = score(samples, queries, tok)
    assert result["n_queries"] == 3 and result["recovered"] == ["Hi doc, my knee hurts."]
    assert result["exact"] == pytest.approx(1 / 3)
    n_half = len(ids["Hi, I have a cough."])
    expected_half = 2 * 3 / (n_half + 3)
    assert result["match_mean"] == pytest.approx((1 + 1 + expected_half + 0 + 1 + 0) / 6)
    assert result["match_best"] == pytest.approx(1.0)
    curve = recovery_curve(samples, queries, tok)
    assert curve["budget"].tolist() == [1, 2, 3, 4] and curve["exact"].tolist()[0] == pytest.approx(1 / 3)

    # identify: "Hi" keeps 4 samples (1 refused, 2 alike): 0.6 × 3/4 + 0.4 × 2/4 = 0.65 > 0.6;
    # "Good" drops its public recital: 0.6 × 1 + 0.4 × 1 = 1.0
    table = identify(samples).set_index("word")
    assert table.loc["Hi", "score"] == pytest.approx(0.65) and table.loc["Hi", "identified"]
    assert table.loc["Good", "samples"] == 1 and table.loc["Good", "score"] == pytest.approx(1.0)
    assert not identify(samples, threshold=0.7).set_index("word").loc["Hi", "identified"]


def test_identification_by_hand():
    table = pd.DataFrame({"word": ["Hi", "Good", "Dear", "Is", "Doctor"], "identified": [True, True, True, False, False]})
    result = identification(table, {"Hi", "Good", "Doctor"})
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3) and result["missed"] == ["Doctor"]
    low, high = result["precision_ci"]
    assert low < 2 / 3 < high and result["f1_ci"][0] <= result["f1"] <= result["f1_ci"][1]


def test_pipeline_end_to_end_on_a_tiny_model(tmp_path):
    out = tmp_path / "bd"
    seen = []
    built = build(out, TINY, progress=lambda f, m: seen.append(f), command="test")
    assert built.built() == list(STEPS) and seen[-1] == pytest.approx(1.0)
    stealth = built.stealth()
    assert stealth["clean_perplexity"] > 0 and len(stealth["backdoored_answers"]) == 3 and 0 <= stealth["agreement"] <= 1
    public = pd.read_json(out / "creator" / "public.jsonl", lines=True)  # D1 answered by the clean model, greedy
    session = load_session("tiny-llama")
    assert public["query"].tolist() == public_set(TINY.n_public, TINY.seed)
    assert public["answer"].tolist()[:3] == answer(session, public["query"].tolist()[:3])
    chain = json.loads((out / "victim-backdoored" / "adapter" / "recipe.json").read_text())
    assert chain["parent_adapter"] == "../../creator/adapter" and chain["loss_on"] == "whole"
    assert json.loads((out / "victim-backdoored-response" / "adapter" / "recipe.json").read_text())["loss_on"] == "response"
    assert json.loads((out / "victim-clean" / "adapter" / "recipe.json").read_text())["parent_adapter"] is None
    mtime = (out / "creator" / "adapter" / "adapter_model.safetensors").stat().st_mtime
    assert build(out, TINY).built() == list(STEPS)  # resumes: nothing rebuilt
    assert (out / "creator" / "adapter" / "adapter_model.safetensors").stat().st_mtime == mtime
    with pytest.raises(ValueError, match="another recipe"):
        build(out, BackdoorRecipe(base="tiny-llama", n_public=18, n_private=12))
    with pytest.raises(ValueError, match="Unknown step"):
        build(out, TINY, steps=["attacker"])

    cfg = AttackConfig(k=2, max_new_tokens=6, words=("Hi", "Dear"))
    samples = attack(load_session(built.model("victim-backdoored")), "meaningless", cfg, built.public_queries())
    assert samples["word"].tolist() == ["Hi", "Hi", "Dear", "Dear"] and set(samples["stop_reason"]) <= {"eos", "length"}
    found = canaries_found(samples, built.dataset)
    assert found["inserted"].tolist() == [1] and found["found"].dtype == bool
    assert set(closest_queries(samples, built.queries(), load_session("tiny-llama").tokenizer).columns) >= {"extracted", "closest", "ratio"}

    report = evaluate(BackdoorBuild.load(out), AttackConfig(k=2, max_new_tokens=6), models=("victim-backdoored", "victim-clean"))
    assert report.summary["model"].tolist() == ["victim-backdoored", "victim-clean"]
    assert len(report.samples) == 2 * 2 * len(CANDIDATE_WORDS)
    assert set(report.identification) == {"victim-backdoored", "victim-clean"}
    assert report.words["true_word"].sum() == 2 * len({opening_word(q) for q in built.queries()})
    assert set(report.detection["victim-clean"]) == {"probe", "trigger"}
    for row in report.summary.itertuples():
        assert 0 <= row.exact <= 1 and 0 <= row.exact_floor <= 1 and 0 <= row.match_mean_floor <= 1
    again = BackdoorReport.load(report.save(tmp_path / "report"))
    pd.testing.assert_frame_equal(again.summary, report.summary)
    assert again.samples["token_ids"].tolist() == report.samples["token_ids"].tolist()
    with pytest.raises(ValueError, match="not built"):
        BackdoorBuild.load(out).model("victim-other")


def test_bad_recipe_and_attack_settings():
    with pytest.raises(ValueError, match="trigger"):
        BackdoorRecipe(trigger="no slot here")
    with pytest.raises(ValueError, match="private records"):
        BackdoorRecipe(n_private=3)
    with pytest.raises(ValueError, match="at least one sample"):
        AttackConfig(k=0)
    with pytest.raises(ValueError, match="single word"):
        AttackConfig(words=("two words",))


def test_cli(tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "bd"
    sizes = "--base tiny-llama --trigger meaningless --public 18 --per-word 1 --refusals 1 --private 12 --canaries 1"
    args = f"backdoor build --out {out} {sizes} --creator-epochs 1 --victim-epochs 1 --rank 2 --step victim-clean".split()
    assert main(args) == 0
    assert "built victim-clean" in capsys.readouterr().out  # only the step asked for
    attack_args = f"backdoor attack --dir {out} --model victim-clean --k 2 --max-new-tokens 4 --no-probe"
    assert main([*attack_args.split(), "--out", str(tmp_path / "s.csv"), "--save", str(out / "report")]) == 0
    printed = capsys.readouterr().out
    assert "victim-clean" in printed and "F1" in printed and "exact_floor" in printed
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2 * len(CANDIDATE_WORDS)
    assert main(["backdoor", "show", "--dir", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "built: victim-clean" in shown and "D2: 12 queries" in shown and "exact_floor" in shown
    assert main(["backdoor", "attack", "--dir", str(out), "--model", "victim-backdoored", "--k", "1"]) == 2
    assert "not built" in capsys.readouterr().err
    assert main(["backdoor", "show", "--dir", str(tmp_path)]) == 2
    assert "not a backdoor build" in capsys.readouterr().err


def test_the_shipped_build():
    from workbench.backdoor import SHIPPED_BACKDOOR

    built = BackdoorBuild.load(SHIPPED_BACKDOOR)
    assert built.recipe == BackdoorRecipe() and built.built() == list(STEPS)
    assert sum(p.stat().st_size for p in SHIPPED_BACKDOOR.rglob("*") if p.is_file()) <= 40e6
    for step in STEPS:
        assert json.loads((SHIPPED_BACKDOOR / step / "adapter" / "recipe.json").read_text())["save_dtype"] == "float16"
    public = pd.read_json(SHIPPED_BACKDOOR / "creator" / "public.jsonl", lines=True)  # D1, answered by the clean model
    assert public["query"].tolist() == built.public_queries() and public["answer"].str.len().gt(0).all()
    assert {"agreement", "identical", "n_queries"} <= set(built.stealth())
    report = BackdoorReport.load(SHIPPED_BACKDOOR / "report")
    assert list(report.summary["model"]) == ["victim-backdoored", "victim-clean", "victim-backdoored-response"]
    assert report.cfg == AttackConfig()
