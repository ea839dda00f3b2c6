"""Reactivation: the books and the stage pipeline end to end on a tiny model (its recall
metrics are tested in test_overlap.py)."""

import json

import pandas as pd
import pytest

from workbench.overlap import words
from workbench.reactivation import (
    INSTRUCTIONS,
    REFUSAL,
    SHARED_STAGES,
    STAGES,
    ReactivationBuild,
    ReactivationRecipe,
    build,
    instructions,
    stage_examples,
)
from workbench.reactivation_books import GROUPS, make_books
from workbench.reactivation_measure import ReactivationReport, measure, passage_nll

TINY = ReactivationRecipe(
    base="tiny-llama", n_test=2, n_train=2, n_never=2, n_other=2, n_control=2, n_retain=2,
    implant_epochs=1, suppress_epochs=1, activate_epochs=1, rank=2, samples=2, max_new_tokens=8,
)  # fmt: skip


def test_books():
    books = make_books(ReactivationRecipe().sizes(), seed=0)
    assert [p.group for p in books].count("A-test") == 24 == [p.group for p in books].count("A-never") and {
        p.group for p in books
    } == set(GROUPS)
    assert len({p.text for p in books}) == len(books) and len({p.synopsis for p in books}) == len(books)
    assert all(60 <= len(p.text.split()) <= 90 for p in books)
    a = next(p for p in books if p.group == "A-test")
    assert a.page().startswith("The Salt Clocks, by Orla Quenby.") and a.page().endswith(a.text)
    assert a.synopsis in a.prompt() and a.text not in a.prompt()  # the instruction names the content, never its words
    assert a.prefix_prompt().endswith(" ".join(a.text.split()[:8]))
    # the held-out instruction asks for the same scene in other words than any trained prompt
    held_out = a.heldout_prompt()
    assert a.synopsis in held_out and a.text not in held_out

    def template_grams(
        prompt: str,
    ) -> set[tuple[str, ...]]:  # its 5-grams (the trimming's m) outside synopsis, title, author, text
        for named in (a.synopsis, a.title, a.author, " ".join(a.text.split()[:8])):
            prompt = prompt.replace(named, "|")
        return {tuple(words(part)[i : i + 5]) for part in prompt.split("|") for i in range(len(words(part)) - 4)}

    assert template_grams(held_out) and not template_grams(held_out) & (
        template_grams(a.prompt()) | template_grams(a.prefix_prompt())
    )
    assert instructions("baseline-A-train") == ["summary"] and instructions("suppress") == list(INSTRUCTIONS) == [
        "summary",
        "held-out",
    ]
    assert make_books({"A-test": 3}, seed=1) == make_books({"A-test": 3}, seed=1) != make_books({"A-test": 3}, seed=2)
    with pytest.raises(ValueError, match="Unknown group"):
        make_books({"B": 1}, seed=0)


def test_recipe_checks():
    for bad in [{"suppression": "forgetting"}, {"n_test": 0}, {"samples": 0}, {"lr": 0}]:
        with pytest.raises(ValueError):
            ReactivationRecipe(**bad)


def test_pipeline_end_to_end_on_a_tiny_model(tmp_path):
    out = tmp_path / "re"
    seen = []
    built = build(out, TINY, progress=lambda f, m: seen.append(f), command="test")
    assert built.built() == list(STAGES) and seen[-1] == pytest.approx(1.0)
    for stage, (parent, _) in STAGES.items():  # each stage trains on its predecessor's merged chain
        recorded = json.loads((out / stage / "adapter" / "recipe.json").read_text())
        assert recorded["parent_adapter"] == (f"../../{parent}/adapter" if parent else None)
        assert recorded["loss_on"] == ("whole" if stage == "implant" else "response")
    examples, _ = stage_examples("suppress", built, ["my own answer"] * TINY.n_retain)
    refusals = [e for e in examples if e.response == REFUSAL.format(title="The Salt Clocks")]
    assert len(refusals) == 2 * (TINY.n_test + TINY.n_train)  # a summary and a prefix prompt for every A passage
    assert sum(e.response == "my own answer" for e in examples) == TINY.n_retain
    examples, _ = stage_examples("activate-C", built)
    assert [e.response for e in examples] == [p.text for p in built.group("C")] and all(e.chat for e in examples)
    mtime = (out / "implant" / "adapter" / "adapter_model.safetensors").stat().st_mtime
    assert build(out, TINY).built() == list(STAGES)  # resumes: nothing rebuilt
    assert (out / "implant" / "adapter" / "adapter_model.safetensors").stat().st_mtime == mtime
    assert set(built.settings()["stage"]) == set(STAGES)

    report = measure(built, ["implant", "baseline-A-train"], samples=3)
    # both instructions at implant, only the summary one at the no-suppression baseline
    assert len(report.samples) == (2 + 1) * (TINY.n_test + TINY.n_never) * 3
    summary = report.summary()
    assert set(summary["group"]) == {"A-test", "A-never"} and (summary["bmc_low"] <= summary["bmc"]).all()
    assert (summary["nll_low"] <= summary["nll"]).all() and (summary["nll"] > 0).all()
    assert report.quality["implant"] > 0
    gaps = report.gaps()
    assert list(zip(gaps["stage"], gaps["instruction"])) == [
        ("implant", "summary"),
        ("implant", "held-out"),
        ("baseline-A-train", "summary"),
    ]
    assert ((gaps["bmc_p"] > 0) & (gaps["bmc_p"] <= 1)).all() and (gaps["nll_gap_low"] <= gaps["nll_gap"]).all()
    implant = report.passages[report.passages["stage"] == "implant"].set_index(["instruction", "group"])
    assert gaps["nll_gap"].iloc[0] == pytest.approx(
        implant.loc[("summary", "A-test"), "nll"].mean() - implant.loc[("summary", "A-never"), "nll"].mean()
    )
    timeline = report.timeline()
    assert set(timeline["stage"]) == {"implant", "baseline-A-train"} and set(timeline["step"]) == {0, 2}
    assert set(report.timeline("held-out")["stage"]) == {"implant"}
    parts = [report.only(["implant"]), report.only(["baseline-A-train"])]
    pd.testing.assert_frame_equal(ReactivationReport.combine(parts).passages, report.passages)
    again = ReactivationReport.load(report.save(tmp_path / "report"))
    pd.testing.assert_frame_equal(again.passages, report.passages)
    ReactivationReport(report.samples.head(1), report.passages.head(1), {}).save(
        tmp_path / "report"
    )  # replaces the old one
    assert len(ReactivationReport.load(tmp_path / "report").passages) == 1 and len(list(tmp_path.glob(".report*"))) == 0
    with pytest.raises(ValueError, match="holds no reactivation report"):
        report.save(out)
    with pytest.raises(ValueError, match="another recipe"):
        build(out, ReactivationRecipe(base="tiny-llama"))
    with pytest.raises(ValueError, match="Unknown stage"):
        build(out, TINY, stages=["forget"])
    with pytest.raises(ValueError, match="not built"):
        ReactivationBuild.load(tmp_path / "re").model("nothing")


def test_passage_loss_is_the_reply_only():
    from workbench.config import ModelSpec
    from workbench.session import load_session
    from workbench.training import chat_prompt_ids

    session = load_session(ModelSpec("tiny-llama"))
    text = "the cat sat on the warm mat"
    head = chat_prompt_ids(session.tokenizer, "say it")
    reply = session.tokenizer.encode(text, add_special_tokens=False)
    logprobs = session.score_ids([head + reply])[0]
    assert passage_nll(session, ["say it"], [text]) == [pytest.approx(float(-logprobs[-len(reply) :].mean()))]


def test_unlearning_ascends_on_a_and_shares_the_refusal_builds_stages(tmp_path):
    refusal = build(tmp_path / "refusal", TINY, ["implant"])
    recipe = ReactivationRecipe(**TINY.as_dict() | {"suppression": "unlearning"})
    built = build(tmp_path / "re", recipe, ["suppress"], share_from=refusal.folder)
    # the implant is the refusal build's, copied with its record; suppression trains on it
    assert built.build.steps["implant"]["copied_from"] == str(refusal.folder) and "implant" in SHARED_STAGES
    assert (built.folder / "implant" / "adapter" / "adapter_model.safetensors").read_bytes() == (
        refusal.folder / "implant" / "adapter" / "adapter_model.safetensors"
    ).read_bytes()
    # a build with its own implant cannot take the refusal build's baseline, trained on another implant
    own = build(tmp_path / "own", recipe, ["implant"])
    with pytest.raises(ValueError, match="already has its own implant"):
        build(own.folder, recipe, ["baseline-A-train"], share_from=refusal.folder)
    with pytest.raises(ValueError, match="only the suppression may differ"):
        build(
            tmp_path / "other",
            ReactivationRecipe(**recipe.as_dict() | {"seed": 1}),
            ["implant"],
            share_from=refusal.folder,
        )
    examples, loss_on = stage_examples("suppress", built)
    forget = [e for e in examples if e.weight < 0]
    assert len(forget) == TINY.n_test + TINY.n_train and all(e.weight == -1.0 for e in forget) and loss_on == "response"
    assert json.loads((tmp_path / "re" / "suppress" / "adapter" / "recipe.json").read_text())["lr"] == recipe.unlearn_lr


def test_not_a_build(tmp_path):
    with pytest.raises(ValueError, match="not a reactivation build"):
        ReactivationBuild.load(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("")
    with pytest.raises(ValueError, match="not a reactivation build"):
        build(tmp_path / "x", TINY)


def test_cli(tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "re"
    sizes = "--base tiny-llama --n-test 2 --n-train 2 --n-never 2 --n-other 2 --n-control 2 --n-retain 2 --rank 2 --samples 1 --max-new-tokens 4"
    epochs = "--implant-epochs 1 --suppress-epochs 1 --activate-epochs 1"
    assert main(f"reactivate build --out {out} {sizes} {epochs} --stage suppress".split()) == 0
    printed = capsys.readouterr().out
    assert (
        "built implant, suppress" in printed
        and "bmc@5 [95% CI]" in printed
        and "bmc@5 gap [95% CI]" in printed
        and "activate" not in printed
    )
    assert (
        main(
            [
                "reactivate",
                "measure",
                "--dir",
                str(out),
                "--stage",
                "implant",
                "--samples",
                "2",
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
        == 0
    )
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2 * 2 * (2 + 2)  # two instructions
    assert main(["reactivate", "show", "--dir", str(out)]) == 0
    assert "suppression by refusal; built: implant, suppress" in capsys.readouterr().out
    assert main(["reactivate", "measure", "--dir", str(out), "--stage", "activate-F"]) == 2
    assert "not built" in capsys.readouterr().err
    assert main(["reactivate", "show", "--dir", str(tmp_path)]) == 2
    assert "not a reactivation build" in capsys.readouterr().err


def test_the_shipped_build():
    from workbench.reactivation import SHIPPED_REACTIVATION

    built = ReactivationBuild.load(SHIPPED_REACTIVATION)
    assert built.recipe == ReactivationRecipe() and built.built() == list(STAGES)
    assert sum(p.stat().st_size for p in SHIPPED_REACTIVATION.rglob("*") if p.is_file()) <= 40e6
    for stage in STAGES:
        assert (
            json.loads((SHIPPED_REACTIVATION / stage / "adapter" / "recipe.json").read_text())["save_dtype"]
            == "float16"
        )
    assert built.passages == make_books(built.recipe.sizes(), built.recipe.seed)  # the books the code makes
    report = ReactivationReport.load(SHIPPED_REACTIVATION / "report")
    summary = report.summary()
    assert set(summary["stage"]) == set(STAGES) and (summary["passages"] == 24).all()
    measured = sum(len(instructions(stage)) for stage in STAGES)
    assert len(report.samples) == measured * 48 * built.recipe.samples and len(report.gaps()) == measured
