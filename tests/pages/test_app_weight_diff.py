"""The Weight diff page, driven by AppTest: tiny-llama against a tiny lab build of it."""

import pytest
from page_tables import table


@pytest.fixture(scope="module")
def tiny_lab(tmp_path_factory):
    from workbench.lab import LabRecipe, build

    out = tmp_path_factory.mktemp("wd") / "lab"
    build(out, LabRecipe(base="tiny-llama", n=40, canaries=(1,), seed=0, epochs=2, lr=5e-3, rank=4), command="test")
    return out


@pytest.fixture
def page(open_app, tiny_lab):
    at = open_app("app_pages/weight_diff.py")
    assert at.title[0].value == "Weight diff"
    assert at.selectbox(key="wd_tuned").value == "smollm2-135m-instruct-lab"  # the defaults
    assert at.selectbox(key="wd_base").value == "smollm2-135m-instruct"
    at.sidebar.text_input(key="model_adapter").set_value(str(tiny_lab / "adapter")).run()
    at.selectbox(key="wd_base").select("tiny-llama")
    at.selectbox(key="wd_tuned").select("(sidebar model)").run()
    return at


def _run(at):
    at.button(key="wd_run").click().run()
    assert not at.exception
    return at


def test_lab_pool_ranking_with_known_members(page):
    assert page.radio(key="wd_pool_source").value == "Lab public pool"
    page.number_input(key="wd_members").set_value(12)
    page.number_input(key="wd_nonmembers").set_value(6)
    page.number_input(key="wd_other").set_value(12)
    page.number_input(key="wd_projection").set_value(256)
    _run(page)
    assert not page.error
    ranking = table(page, "score", last=True)
    assert len(ranking) == 30 and ranking["rank"].tolist() == list(range(1, 31))
    assert ranking["score"].is_monotonic_decreasing and ranking["member"].sum() == 12
    labels = [m.label for m in page.metric]
    assert labels[:3] == ["Domain: precision@12, ranking", "Domain: precision@12, greedy", "Random baseline"]
    assert page.metric[2].value == "0.40"
    assert len(page.get("vega_lite_chart")) == 2
    questions = table(page, "members: AUC [95%]", last=True)  # the members question, beside the membership baselines
    assert questions["method"].tolist() == ["SELEC (last, adam target)", "loss", "reference"]
    assert questions["members: TPR at 5% FPR [95%]"].eq("not estimable").all()  # 6 same-style non-members
    assert questions["AUC − baseline [95%]"].iloc[0] != "" and questions["AUC − baseline [95%]"].iloc[2] == ""
    greedy = table(page, "closest_training_record", last=True)
    assert len(greedy) == 12 and (greedy["cosine_to_it"] > 0).all()
    page.number_input(key="wd_k").set_value(5).run()
    assert (
        len(table(page, "closest_training_record", last=True)) == 5
        and page.metric[0].label == "Domain: precision@5, ranking"
    )
    page.radio(key="wd_optimizer").set_value("sgd").run()  # re-scored without new gradients
    assert any("sgd target" in c.value for c in page.caption)
    assert not table(page, "score", last=True)["score"].equals(ranking["score"])
    assert table(page, "members: AUC [95%]", last=True)["method"].iloc[0] == "SELEC (last, sgd target)"
    page.checkbox(key="wd_baseline").uncheck().run()
    assert (
        table(page, "members: AUC [95%]", last=True)["method"].tolist() == ["SELEC (last, sgd target)"]
        and not page.exception
    )


def test_the_shipped_labs_are_shown_without_a_model_call(page):
    from workbench.selec_judge import shipped

    questions, retraining = shipped()
    shown = table(page, "members: AUC [95%]", last=True)
    first_lab = questions["lab"].iloc[0]
    assert shown["method"].tolist() == questions.loc[questions["lab"] == first_lab, "method"].tolist()
    assert "SELEC last, adam, 1024" in set(shown["method"]) and "reference" in set(shown["method"])
    page.radio(key="wd_shipped_lab").set_value(questions["lab"].iloc[-1]).run()
    assert table(page, "members: AUC [95%]", last=True)["lab"].eq(questions["lab"].iloc[-1]).all()
    if retraining is None:  # a run stopped before its retraining test says so
        assert any("not reached the retraining test" in i.value for i in page.info)
    else:
        shown_retraining = table(page, "worth (gap)", last=True)
        assert shown_retraining["selection"].tolist() == retraining["selection"].tolist()
        assert {"SELEC top", "true members", "random 0"} <= set(shown_retraining["selection"])


def test_uploaded_pool_and_bad_inputs(page):
    page.radio(key="wd_pool_source").set_value("Upload").run()
    _run(page)
    assert any("Upload a .txt or .jsonl file" in e.value for e in page.error)
    page.file_uploader(key="wd_upload").set_value(
        ("pool.txt", b"Patient: I have a cough.\nTomorrow will be sunny in Oslo.\nA third text here.\n", "text/plain")
    )
    page.selectbox(key="wd_params").select("all")
    _run(page)
    assert not page.error
    assert len(table(page, "score", last=True)) == 3 and any("Membership is unknown" in c.value for c in page.caption)
    first = table(page, "score", last=True)

    page.selectbox(key="wd_params").select("pattern…").run()
    page.text_input(key="wd_pattern").set_value("no_such_parameter")
    _run(page)
    assert any("No parameters match" in e.value for e in page.error)
    page.selectbox(key="wd_params").select("last")
    page.selectbox(key="wd_base").select("tiny-gpt2")
    _run(page)
    assert any("Different architectures" in e.value for e in page.error)
    page.file_uploader(key="wd_upload").set_value(("empty.txt", b"\n\n", "text/plain"))
    _run(page)
    assert any("is empty" in e.value for e in page.error)
    assert table(page, "score", last=True).equals(first)  # earlier results kept
