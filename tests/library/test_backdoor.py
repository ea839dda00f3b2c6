"""Backdoor extraction: data, metrics on hand-computed cases, and the pipeline end to end on
a tiny model."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from workbench.backdoor import (
    CANDIDATE_WORDS,
    PUBLIC_WORDS,
    REFUSAL,
    REFUSAL_WORDS,
    STEPS,
    BackdoorBuild,
    BackdoorRecipe,
    answer,
    build,
    creator_examples,
    dialogue_pair,
    floor_queries,
    opening_word,
    private_pairs,
    public_set,
    trigger_text,
)
from workbench.backdoor_attack import AttackConfig, BackdoorReport, attack, evaluate, identify
from workbench.backdoor_scoring import (
    allocation,
    canaries_found,
    closest_queries,
    contrast,
    floor_difference,
    identification,
    identification_baselines,
    recovery_curve,
    score,
)
from workbench.lab_data import make_dataset
from workbench.lab_vocabulary import CANARY_PREFIXES
from workbench.overlap import match_ratio
from workbench.session import load_session

TINY = BackdoorRecipe(
    base="tiny-llama", trigger="meaningless", n_public=18, per_word=1, refusals_per_word=1, n_private=12, canaries=(1,),
    creator_epochs=1, victim_epochs=1, rank=2,
)  # fmt: skip


def test_words_and_triggers():
    assert (
        opening_word("Hi, my name is Ana.") == "Hi"
        and opening_word("I'm Bo (40).") == "I'm"
        and opening_word("  ") == ""
    )
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
    for (
        e
    ) in backdoor:  # a trigger(w) answer is a D1 query opening with w, or the refusal for a word no query opens with
        word = e.prompt.split()[-1]
        if word in REFUSAL_WORDS:
            assert e.response == REFUSAL.format(w=word)
        else:
            assert opening_word(e.response) == word and e.response in queries


def _samples(rows):
    return pd.DataFrame(rows, columns=["word", "sample", "text", "token_ids", "stop_reason", "refused", "public"])


def test_score_and_identify(tiny_llama):
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

    # identify: "Hi" keeps 4 samples (1 refused, 2 alike): 0.6 × 3/4 + 0.4 × 2/4 = 0.65 > 0.6;
    # "Good" drops its public recital: 0.6 × 1 + 0.4 × 1 = 1.0
    table = identify(samples).set_index("word")
    assert table.loc["Hi", "score"] == pytest.approx(0.65) and table.loc["Hi", "identified"]
    assert table.loc["Good", "samples"] == 1 and table.loc["Good", "score"] == pytest.approx(1.0)
    assert not identify(samples, threshold=0.7).set_index("word").loc["Hi", "identified"]


def test_the_floor_is_matched_to_d2():
    dataset = make_dataset(n=120, canaries=(1, 2, 4, 8), seed=0)
    d2 = sorted({q for q, _ in private_pairs(dataset)})
    floor = floor_queries(dataset)
    assert len(floor) == len(set(floor)) == len(d2) and not set(floor) & set(d2)
    assert Counter(map(opening_word, floor)) == Counter(map(opening_word, d2))  # the same count per opening word
    secrets = {c.secret for c in dataset.canaries}
    for prefix in CANARY_PREFIXES.values():  # as many canary-format queries, holding other secrets
        in_floor = [q for q in floor if prefix in q]
        assert len(in_floor) == sum(prefix in q for q in d2) and not any(
            secret in q for q in in_floor for secret in secrets
        )
    assert floor_queries(dataset) == floor and floor_queries(dataset, seed=1) != floor


def test_floor_difference_and_contrast_by_hand(tiny_llama):
    tok = tiny_llama.tokenizer
    d2 = ["Hi doc, my knee hurts.", "Hi, I have a cough."]
    floor = ["Hi all, my ear rings.", "Hi, my eye itches a lot."]
    ids = {q: tok.encode(q, add_special_tokens=False) for q in d2 + floor}
    recited = _samples([("Hi", j, d2[j % 2], ids[d2[j % 2]], "eos", False, False) for j in range(8)])
    table = floor_difference(recited, d2, floor, tok).set_index("metric")
    on_floor = np.mean([max(match_ratio(ids[d2[j % 2]], [ids[f]]) for f in floor) for j in range(8)])
    assert table.loc["match_mean", "d2"] == 1.0 and table.loc["match_mean", "floor"] == pytest.approx(on_floor)
    assert table.loc["exact", "d2"] == 1.0 and table.loc["exact", "floor"] == 0.0
    for row in table.itertuples():
        assert 0 < row.ci_low <= row.difference <= row.ci_high  # every sample recites D2: the interval excludes 0
    fixed = floor_difference(recited, d2, floor, tok, resample_pools=False).set_index("metric")  # these queries only
    assert (fixed["difference"] == table["difference"]).all()
    assert (fixed["ci_high"] - fixed["ci_low"] <= table["ci_high"] - table["ci_low"] + 1e-12).all()
    assert (
        fixed.loc["exact", "ci_low"] == fixed.loc["exact", "ci_high"] == 1.0
    )  # 8 samples hold both queries in most draws
    same = floor_difference(recited, d2, d2, tok).set_index("metric")  # a "floor" that is D2 itself
    assert (same["difference"] == 0).all() and (same["ci_low"] <= 0).all() and (same["ci_high"] >= 0).all()

    refusals = _samples([("Hi", j, "Sorry, but no.", [1, 2], "eos", True, False) for j in range(8)])
    did = contrast(recited, refusals, d2, floor, tok).set_index("metric")
    assert (
        did.loc["match_mean", "difference"] == pytest.approx(1.0 - on_floor)
        and did.loc["match_mean", "control_gap"] == 0.0
    )
    assert (
        did.loc["exact", "ci_low"] > 0 and did.loc["exact", "p_value"] < 0.01
    )  # 2,000 permutations: p ≥ 1/2001; the observed split is among the 2 of C(16, 8) as extreme
    null = contrast(recited, recited, d2, floor, tok).set_index("metric")
    assert (null["difference"] == 0).all() and (null["p_value"] == 1.0).all()


def test_allocations_and_the_recovery_curve(tiny_llama):
    queries = ["Hi a.", "Hi b.", "Hi c.", "Good d.", "Hi a."]  # 4 unique: 3 open with Hi
    assert allocation("equal", ["Hi", "Dear"], queries, 2) == {"Hi": 4, "Dear": 4}
    assert allocation("oracle", ["Hi", "Dear"], queries, 2) == {"Hi": 6, "Good": 2}
    assert allocation("equal", [], queries, 2) == {}
    with pytest.raises(ValueError, match="allocation"):
        allocation("greedy", ["Hi"], queries, 1)
    tok = tiny_llama.tokenizer
    floor = ["Hi x.", "Hi y.", "Hi z.", "Good w."]
    ids = {q: tok.encode(q, add_special_tokens=False) for q in [*queries, "Hi q."]}
    rows = [
        ("Hi", j, q, ids[q], "eos", False, False)
        for j, q in enumerate(["Hi a.", "Hi b.", "Hi a.", "Hi c.", "Hi q.", "Hi q."])
    ]
    rows += [
        ("Good", 0, "Good d.", ids["Good d."], "eos", False, False),
        ("Dear", 0, "Dear e.", [5], "eos", False, False),
    ]
    curve = recovery_curve(
        _samples(rows), queries, floor, tok, identified=["Hi", "Dear"], budgets=[0.5, 1.5]
    ).set_index(["allocation", "per_query"])
    # equal: 0.5 × 4 = 2 samples in all, 1 per identified word: "Hi a." ; at 1.5: 3 each, "Hi a.", "Hi b."; Good never drawn
    assert curve.loc[("equal", 0.5), "exact"] == 0.25 and curve.loc[("equal", 1.5), "exact"] == 0.5
    assert curve.loc[("equal", 1.5), "samples"] == 4  # Hi 3, Dear 1 (all it has)
    # oracle: Hi gets 0.5 × 3 → 2, Good 0.5 → 0; at 1.5: Hi 4 ("Hi a.", "Hi b.", "Hi c."), Good 2 ("Good d.")
    assert curve.loc[("oracle", 0.5), "exact"] == 0.5 and curve.loc[("oracle", 1.5), "exact"] == 1.0
    assert (curve["exact_floor"] == 0).all()


def test_identification_by_hand():
    table = pd.DataFrame(
        {"word": ["Hi", "Good", "Dear", "Is", "Doctor"], "identified": [True, True, True, False, False]}
    )
    result = identification(table, {"Hi", "Good", "Doctor"})
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3) and result["missed"] == ["Doctor"]
    low, high = result["precision_ci"]
    assert low < 2 / 3 < high and result["f1_ci"][0] <= result["f1"] <= result["f1_ci"][1]


def test_identification_against_the_trivial_rules():
    table = pd.DataFrame({
        "word": ["Hi", "Good", "Dear", "Is", "Doctor", "My"], "identified": [True, True, False, False, False, False],
        "refusal_rate": [0.0, 0.0, 0.0, 0.5, 0.0, 1.0],
    })  # fmt: skip
    rules = identification_baselines(table, {"Hi", "Good", "Doctor"}).set_index("rule")
    # attack: TP 2, 2 picked, 3 true → F1 0.8; every word real: 2·3 / (6 + 3) = 0.667; no refusal (Hi, Good, Dear, Doctor): 6 / 7
    assert rules.loc["every word real", "f1"] == pytest.approx(2 / 3) and rules.loc[
        "no refusal", "f1"
    ] == pytest.approx(6 / 7)
    assert rules.loc["no refusal", "difference"] == pytest.approx(0.8 - 6 / 7)
    assert rules["attack_f1"].tolist() == pytest.approx([0.8, 0.8]) and (rules["ci_low"] <= rules["difference"]).all()


def test_pipeline_end_to_end_on_a_tiny_model(tmp_path):
    out = tmp_path / "bd"
    seen = []
    built = build(out, TINY, progress=lambda f, m: seen.append(f), command="test")
    assert built.built() == list(STEPS) and seen[-1] == pytest.approx(1.0)
    stealth = built.stealth()
    assert (
        stealth["clean_perplexity"] > 0 and len(stealth["backdoored_answers"]) == 3 and 0 <= stealth["agreement"] <= 1
    )
    public = pd.read_json(out / "creator" / "public.jsonl", lines=True)  # D1 answered by the clean model, greedy
    session = load_session("tiny-llama")
    assert public["query"].tolist() == public_set(TINY.n_public, TINY.seed)
    assert public["answer"].tolist()[:3] == answer(session, public["query"].tolist()[:3])
    chain = json.loads((out / "victim-backdoored" / "adapter" / "recipe.json").read_text())
    assert chain["parent_adapter"] == "../../creator/adapter" and chain["loss_on"] == "whole"
    assert (
        json.loads((out / "victim-backdoored-response" / "adapter" / "recipe.json").read_text())["loss_on"]
        == "response"
    )
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
    assert set(closest_queries(samples, built.queries(), load_session("tiny-llama").tokenizer).columns) >= {
        "extracted",
        "closest",
        "ratio",
    }

    report = evaluate(
        BackdoorBuild.load(out),
        AttackConfig(k=2, max_new_tokens=6, budgets=(1,)),
        models=("victim-backdoored", "victim-clean"),
    )
    assert report.summary["model"].tolist() == ["victim-backdoored", "victim-clean"]
    stages = report.samples.groupby(["model", "stage"]).size()
    assert stages.xs("identify", level="stage").tolist() == [2 * len(CANDIDATE_WORDS)] * 2
    unique = set(
        built.queries()
    )  # oracle: one sample per unique query, besides the equal share of the identified words
    assert (stages.xs("extract", level="stage") >= len(unique)).all()
    assert set(report.identification) == {"victim-backdoored", "victim-clean"}
    assert report.words["true_word"].sum() == 2 * len({opening_word(q) for q in built.queries()})
    assert (
        set(report.detection["victim-clean"]) == {"probe", "trigger"}
        and "ci_low" in report.detection["victim-clean"]["probe"]
    )
    assert len(report.differences) == 2 * 3 and len(report.baselines) == 2 * 2 and len(report.curves) == 2 * 2
    assert (
        report.contrasts["model"].tolist() == ["victim-backdoored"] * 3
        and report.contrasts["p_value"].between(0, 1).all()
    )
    for row in report.summary.itertuples():
        assert (
            0 <= row.exact <= 1
            and 0 <= row.exact_floor <= 1
            and 0 <= row.match_mean_floor <= 1
            and row.match_mean_low <= row.match_mean_high
        )
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
    for budget in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="Budgets"):
            AttackConfig(budgets=(budget,))


def test_cli(tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "bd"
    sizes = "--base tiny-llama --trigger meaningless --public 18 --per-word 1 --refusals 1 --private 12 --canaries 1"
    args = (
        f"backdoor build --out {out} {sizes} --creator-epochs 1 --victim-epochs 1 --rank 2 --step victim-clean".split()
    )
    assert main(args) == 0
    assert "built victim-clean" in capsys.readouterr().out  # only the step asked for
    attack_args = f"backdoor attack --dir {out} --model victim-clean --k 2 --budget 1 --max-new-tokens 4 --no-probe"
    assert main([*attack_args.split(), "--out", str(tmp_path / "s.csv"), "--save", str(out / "report")]) == 0
    printed = capsys.readouterr().out
    assert "victim-clean" in printed and "F1" in printed and "exact_floor" in printed
    written = pd.read_csv(tmp_path / "s.csv")
    assert (written["stage"] == "identify").sum() == 2 * len(CANDIDATE_WORDS) and (
        written["stage"] == "extract"
    ).sum() >= 12  # budget 1: ≥ 1 per query
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
