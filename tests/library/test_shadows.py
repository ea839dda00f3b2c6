"""workbench.shadows: shares drawn from a prior, calibration maps, shadow builds on the tiny models."""

import json

import numpy as np
import pytest
from safetensors import safe_open

from workbench.config import ModelSpec, PropInferConfig
from workbench.lab_vocabulary import DIAGNOSES
from workbench.propinfer import KeywordLabeler, lab_labeler, run
from workbench.propinfer_judge import compare, leading, resampled_differences, shadow_evidence, shadow_range
from workbench.registry import LAB_MODEL
from workbench.session import load_session
from workbench.shadow_calibration import TRUST_RATIO, Calibration, feature_rows
from workbench.shadows import (
    SHIPPED_SHADOWS,
    ShadowRecipe,
    ShadowSet,
    build_shadows,
    calibrate,
    differences,
    draw_shares,
    summarize,
)

VALUES = list(DIAGNOSES)
# Random-weight tiny models write random tokens; letters label them, under two of the lab's diagnoses.
LETTERS = KeywordLabeler("diagnosis", {"digestive": ["e"], "respiratory": ["a"]})


def test_draw_shares_is_seeded_and_sums_to_one():
    draws = draw_shares(3, 5, alpha=1.0)
    assert draws == draw_shares(3, 5, alpha=1.0) and draws != draw_shares(4, 5)
    assert len(draws) == 5
    for draw in draws:
        assert list(draw["diagnosis"]) == VALUES and list(draw["gender"]) == ["female", "male"]
        assert all(sum(shares.values()) == pytest.approx(1) for shares in draw.values())
    many = np.array([list(d["diagnosis"].values()) for d in draw_shares(0, 2000, alpha=2.0)])
    assert many.mean(axis=0) == pytest.approx(np.full(6, 1 / 6), abs=0.01)  # symmetric prior
    with pytest.raises(ValueError, match="positive alpha"):
        draw_shares(0, 3, alpha=0)


def _synthetic(rng, truth, slope, n=400):
    """Labels whose shares follow observed = uniform + slope × (truth − uniform): a model that
    shrinks the data's shares toward uniform, like a fine-tune that has not fit them fully."""
    observed = 1 / len(VALUES) + slope * (truth - 1 / len(VALUES))
    counts = rng.multinomial(n, observed)
    labels = [v for v, c in zip(VALUES, counts) for _ in range(c)] + [None] * 7
    return feature_rows(labels, VALUES), observed


def _shadow_data(seed, k, slope):
    rng = np.random.default_rng(seed)
    truth = np.array([list(d["diagnosis"].values()) for d in draw_shares(seed, k)])
    rows = [_synthetic(rng, t, slope)[0] for t in truth]
    return rng, truth, rows


def test_linear_calibration_recovers_a_known_map():
    rng, truth, rows = _shadow_data(0, 40, slope=0.5)
    calibration = Calibration("linear").fit(rows, truth, VALUES)
    # the inverse of observed = 1/6 + 0.5 (truth − 1/6) is truth = 2 observed − 1/6
    assert np.diag(calibration.coef_) == pytest.approx(np.full(6, 2.0), abs=0.25)
    assert calibration.intercept_ == pytest.approx(np.full(6, -1 / 6), abs=0.05)
    assert calibration.loo_.sum(axis=1) == pytest.approx(np.ones(40))
    # a target drawn the same way is recovered, far better than naively
    target_truth = np.array([0.02, 0.03, 0.05, 0.1, 0.3, 0.5])
    target_rows, observed = _synthetic(rng, target_truth, 0.5, n=2000)
    table = calibration.predict(target_rows)
    assert table["value"].tolist() == VALUES and table["calibrated"].sum() == pytest.approx(1)
    assert np.abs(table["calibrated"] - target_truth).mean() < 0.4 * np.abs(observed - target_truth).mean()
    assert ((table["cal_low"] <= target_truth) & (target_truth <= table["cal_high"])).all()
    # sampling sd through the map: |b| sqrt(p (1 − p) / n)
    p = target_rows.mean(axis=0)
    expected = np.abs(np.diag(calibration.coef_)) * np.sqrt(p * (1 - p) / len(target_rows))
    assert table["sampling_sd"].to_numpy() == pytest.approx(expected)
    # the naive estimates miss by far more than sampling noise: the check says so
    assert not calibration.naive_trusted and (calibration.trust()["ratio"] > TRUST_RATIO).any()
    assert calibration.verdict().startswith("Do not trust the naive intervals")


def test_pooled_calibration_recovers_a_common_map_from_few_shadows():
    rng, truth, rows = _shadow_data(3, 8, slope=0.5)
    pooled = Calibration("pooled").fit(rows, truth, VALUES)
    assert np.diag(pooled.coef_) == pytest.approx(np.full(6, 2.0), abs=0.2)
    assert np.allclose(pooled.coef_, np.diag(np.diag(pooled.coef_))) and np.ptp(pooled.intercept_) == 0
    # two parameters from 48 points: a better map than six lines from 8 points each
    linear = Calibration("linear").fit(rows, truth, VALUES)
    assert pooled.residual_sd_.mean() < linear.residual_sd_.mean()


def test_an_unbiased_model_keeps_its_naive_estimate_and_is_trusted():
    rng, truth, rows = _shadow_data(1, 30, slope=1.0)
    calibration = Calibration("linear").fit(rows, truth, VALUES)
    assert calibration.naive_trusted and "can be used" in calibration.verdict()
    assert np.diag(calibration.coef_) == pytest.approx(np.ones(6), abs=0.15)
    trust = calibration.trust()
    assert (trust["ratio"] < TRUST_RATIO).all() and (trust["calibrated_rmse"] < 0.05).all()


def test_calibrated_intervals_cover_the_truth_at_about_their_level():
    rng, truth, rows = _shadow_data(2, 8, slope=0.5)
    calibration = Calibration("linear").fit(rows, truth, VALUES)
    targets = np.array([list(d["diagnosis"].values()) for d in draw_shares(99, 60)])
    covered = []
    for t in targets:
        table = calibration.predict(_synthetic(rng, t, 0.5)[0])
        covered += ((table["cal_low"] <= t) & (t <= table["cal_high"])).tolist()
    assert np.mean(covered) >= 0.85  # 95% intervals; clipping at 0 and eight shadows allow some slack


def test_ridge_calibration_uses_word_frequencies():
    """The words carry the truth better than the labels: ridge on both beats the labels alone."""
    rng = np.random.default_rng(5)
    truth = np.array([list(d["diagnosis"].values()) for d in draw_shares(5, 30)])
    words = [f"w{v}" for v in range(6)]

    def rows_of(t, n=300):
        labels = [VALUES[i] for i in rng.choice(6, size=n)]  # the labels carry nothing
        texts = [" ".join(words[j] for j in range(6) if rng.random() < t[j]) for _ in range(n)]
        return feature_rows(labels, VALUES, texts, [rf"\b{w}\b" for w in words])

    rows = [rows_of(t) for t in truth]
    ridge = Calibration("ridge").fit(rows, truth, VALUES)
    linear = Calibration("linear").fit([r[:, :6] for r in rows], truth, VALUES)
    assert ridge.coef_.shape == (6, 12)
    assert ridge.residual_sd_.mean() < 0.5 * linear.residual_sd_.mean()


def test_feature_rows_and_bad_input():
    rows = feature_rows(["a", None, "b", "a"], ["a", "b"], ["x cat", "dog", "cat", "none"], ["cat"])
    assert rows.tolist() == [[1, 0, 1], [0, 1, 1], [1, 0, 0]]
    assert feature_rows([None], ["a"]).shape == (0, 1)
    with pytest.raises(ValueError, match="text"):
        feature_rows(["a"], ["a"], None, ["cat"])
    with pytest.raises(ValueError, match="Unknown calibration method"):
        Calibration("spline")
    truth = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="at least 3 shadows"):
        Calibration().fit([np.eye(2)] * 2, truth[:2], ["a", "b"])
    with pytest.raises(ValueError, match="no labeled generation"):
        Calibration().fit([np.eye(2), np.eye(2), np.zeros((0, 2))], truth, ["a", "b"])
    with pytest.raises(ValueError, match="one row of true shares"):
        Calibration().fit([np.eye(2)] * 3, truth, ["a"])
    fitted = Calibration().fit([np.eye(2)] * 3, truth, ["a", "b"])
    with pytest.raises(ValueError, match="No labeled generation"):
        fitted.predict(np.zeros((0, 2)))


def test_recipe_checks_and_differences():
    with pytest.raises(ValueError, match="at least 4 shadows"):
        ShadowRecipe(k=3)
    with pytest.raises(ValueError, match="style"):
        ShadowRecipe(style="poem")
    with pytest.raises(ValueError, match="temperature"):
        ShadowRecipe(temperature=-1)
    recipe = ShadowRecipe(prompts=("Patient:", "  "))
    assert (
        recipe.prompts == ("Patient:",) and ShadowRecipe.from_dict(json.loads(json.dumps(recipe.as_dict()))) == recipe
    )
    assert ShadowRecipe().prompt_list()[0] == "Patient:"


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def tiny_set(request, tmp_path_factory):
    recipe = ShadowRecipe(base=request.param, k=4, n_records=20, epochs=1, rank=2, n_samples=12, max_new_tokens=8)
    folder = tmp_path_factory.mktemp("shadows") / "set"
    messages = []
    shadows = build_shadows(folder, recipe, lambda f, m: messages.append((f, m)), command="test")
    return folder, recipe, shadows, messages


def test_a_shadow_set_builds_end_to_end(tiny_set):
    folder, recipe, shadows, messages = tiny_set
    assert messages[-1][0] == pytest.approx(1.0) and any("Shadow 4/4: training" in m for _, m in messages)
    assert [s.name for s in shadows.shadows] == ["shadow-00", "shadow-01", "shadow-02", "shadow-03"]
    assert json.loads((folder / "shadows.json").read_text())["command"] == "test"
    for i, (shadow, drawn) in enumerate(zip(shadows.shadows, draw_shares(recipe.seed, recipe.k, recipe.alpha))):
        # each shadow keeps its truth in the lab's dataset format: realized shares close to the draw
        realized = shadow.truth["diagnosis"]
        assert sum(realized.values()) == pytest.approx(1)
        assert all(abs(realized.get(v, 0) - drawn["diagnosis"][v]) <= 1 / 20 + 1e-9 for v in VALUES)
        assert len(shadow.generations) == 12 and "label" not in shadow.generations
        adapter = folder / f"shadow-{i:02d}" / "adapter"
        assert json.loads((adapter / "recipe.json").read_text())["save_dtype"] == "float16"
        with safe_open(adapter / "adapter_model.safetensors", "pt") as weights:
            assert {str(weights.get_tensor(name).dtype) for name in weights.keys()} == {"torch.float16"}
    assert ShadowSet.load(folder).recipe == recipe


def test_an_interrupted_build_resumes_and_another_recipe_is_refused(tiny_set, tmp_path):
    import shutil

    folder, recipe, shadows, _ = tiny_set
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / "shadow-02")
    with pytest.raises(ValueError, match="holds 3 of its 4 shadows"):
        ShadowSet.load(copy)
    messages = []
    rebuilt = build_shadows(copy, recipe, lambda f, m: messages.append(m))
    assert sum("already built" in m for m in messages) == 3
    # the same data and truth again (training and sampling agree up to floating-point noise between runs)
    assert (
        rebuilt.shadows[2].truth == shadows.shadows[2].truth and len(rebuilt.shadows[2].generations) == recipe.n_samples
    )
    records = [(d / "shadow-02" / "dataset" / "records.jsonl").read_text() for d in (folder, copy)]
    assert records[0] == records[1]
    with pytest.raises(ValueError, match="another recipe"):
        build_shadows(
            copy, ShadowRecipe(base=recipe.base, k=5, n_records=20, epochs=1, rank=2, n_samples=12, max_new_tokens=8)
        )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="not a shadow set"):
        build_shadows(tmp_path / "other", recipe)


def test_sweep_and_calibrating_a_run(tiny_set):
    folder, recipe, shadows, _ = tiny_set
    sweep = shadows.sweep(LETTERS)
    assert len(sweep) == 4 * 2 * 2 and set(sweep["estimate"]) == {"naive", "calibrated"}
    assert set(summarize(sweep)["intervals"]) == {8}
    session = load_session(recipe.base)
    cfg = PropInferConfig(n_samples=12, max_new_tokens=8)
    result = run(session, recipe.prompt_list(), cfg, LETTERS)
    calibrated = calibrate(
        result, shadows, LETTERS, truth={"digestive": 0.5, "respiratory": 0.5}, target=ModelSpec(recipe.base)
    )
    table = calibrated.table
    assert table["value"].tolist() == ["digestive", "respiratory"] and table["calibrated"].sum() == pytest.approx(1)
    assert {"share", "ci_low", "calibrated", "cal_low", "cal_high", "cal_covered", "covered", "true_share"} <= set(
        table.columns
    )
    assert calibrated.warnings == []
    ridge = calibrate(result, shadows, LETTERS, method="ridge")
    assert ridge.calibration.coef_.shape[1] > 2  # labels + the lab's diagnosis words
    with pytest.raises(ValueError, match="labeler the run used"):
        calibrate(result, shadows, lab_labeler("gender"))


def test_the_target_check_and_every_method_on_a_run(tiny_set):
    _, recipe, shadows, _ = tiny_set
    observed = np.array(
        [
            [np.mean([label == v for label in labels if label]) for v in LETTERS.values]
            for labels in shadows.labels(LETTERS)
        ]
    )
    middle = dict(zip(LETTERS.values, (observed.min(axis=0) + observed.max(axis=0)) / 2))
    inside = shadow_range(shadows, LETTERS, middle)
    assert inside["inside"].all() and inside["shadow_low"].tolist() == pytest.approx(observed.min(axis=0).tolist())
    assert leading(inside)[0] == "calibrated"
    beyond = shadow_range(
        shadows, LETTERS, {"digestive": observed[:, 0].max() + 0.01, "respiratory": observed[:, 1].min() - 0.01}
    )
    assert not beyond["inside"].any() and leading(beyond)[0] == "naive"

    result = run(
        load_session(recipe.base), recipe.prompt_list(), PropInferConfig(n_samples=12, max_new_tokens=8), LETTERS
    )
    truth = {"digestive": 0.5, "respiratory": 0.5}
    table = compare(result, LETTERS, shadows, truth=truth, base_shares=[0.5, 0.5])
    assert table["method"].unique().tolist() == ["naive", "james-stein", "pooled", "linear", "ridge", "base"]
    assert {"abs_error", "width", "interval_score", "covered"} <= set(table.columns)
    naive = table.loc[table["method"] == "naive", "share"].to_numpy()
    assert naive == pytest.approx(result.estimates["share"].to_numpy())
    assert "base" not in compare(result, LETTERS, shadows)["method"].tolist()  # no base model sampled: no base method
    assert compare(result, LETTERS, methods=("naive", "james-stein"))["method"].nunique() == 2  # no shadows needed
    with pytest.raises(ValueError, match="need a shadow set"):
        compare(result, LETTERS, methods=("pooled",))
    # the map against naive on the shadows, and one run's differences over its own generations
    evidence = shadow_evidence(shadows, LETTERS)
    assert evidence["low"] <= evidence["difference"] <= evidence["high"] and evidence["clusters"] == 4
    spread = resampled_differences(result, LETTERS, shadows, truth, draws=30).set_index("method")
    assert list(spread.index) == ["james-stein", "pooled"] and (spread["low"] <= spread["high"]).all()
    maes = table.groupby("method")["abs_error"].mean()
    assert spread.loc["pooled", "difference"] == pytest.approx(maes["pooled"] - maes["naive"])


def test_differences_name_each_setting():
    recipe = ShadowRecipe()

    class Result:  # the fields differences() reads
        style, prompts, cfg = "question-answer", ShadowRecipe().prompt_list(), PropInferConfig(n_samples=400, seed=7)

    assert differences(recipe, Result, ModelSpec(LAB_MODEL)) == []
    Result.cfg = PropInferConfig(temperature=0.7, max_new_tokens=64)
    Result.style, Result.prompts = "chat", ["Write a dialogue."]
    found = " | ".join(differences(recipe, Result, ModelSpec("tiny-llama")))
    for part in (
        "style is chat",
        "prompts differ",
        "temperature is 0.7",
        "max_new_tokens is 64",
        "fine-tuned from smollm2-135m-instruct",
    ):
        assert part in found


def test_the_shipped_shadow_set():
    shadows = ShadowSet.load(SHIPPED_SHADOWS)
    recipe = shadows.recipe
    assert recipe.k >= 6 and recipe.base == "smollm2-135m-instruct"
    size = sum(p.stat().st_size for p in SHIPPED_SHADOWS.rglob("*") if p.is_file())
    assert size <= 40e6
    # trained about as many optimizer steps as a standard lab (114), so its map carries over
    assert -(-recipe.n_records // recipe.batch_size) * recipe.epochs >= 100
    # sampled the way the page and the CLI sample by default, so their runs calibrate without warnings
    defaults = PropInferConfig()
    assert (recipe.max_new_tokens, recipe.temperature, recipe.top_k, recipe.top_p) == (
        defaults.max_new_tokens, defaults.temperature, defaults.top_k, defaults.top_p,
    )  # fmt: skip
    sweep = shadows.sweep(lab_labeler("diagnosis"))
    assert sweep["true_share"].between(0, 1).all() and len(sweep) == recipe.k * 6 * 2


def test_labelers_the_shadows_have_no_truth_for_are_refused(tiny_set):
    shadows = tiny_set[2]
    with pytest.raises(ValueError, match="not of 'letter'"):
        shadows.fit(KeywordLabeler("letter", {"has e": ["e"]}))
    with pytest.raises(ValueError, match="not all among them"):
        shadows.sweep(KeywordLabeler("gender", {"female": ["e"], "other": ["a"]}))
