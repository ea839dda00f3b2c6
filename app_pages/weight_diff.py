import copy
import math

import pandas as pd
import streamlit as st

from workbench import plots_attacks, selec_judge
from workbench.config import DEFAULT_MODEL, ModelSpec
from workbench.lab import lab_dataset_for
from workbench.lab_data import public_pool
from workbench.registry import LAB_MODEL, registry_names
from workbench.runs import run_key
from workbench.selec import (
    OPTIMIZERS,
    WeightDiff,
    default_k,
    evaluate,
    precision_curve,
)
from workbench.selec_shift import PARAM_CHOICES
from workbench.similarity import MAX_UPLOAD_BYTES, best_matches, parse_texts
from workbench.ui import last_result, model_picker, shared_session
from workbench.ui.params import param
from workbench.ui.runs import shared_note, submit_run, wait_for_run

LAB_POOL, UPLOAD = "Lab public pool", "Upload"
PATTERN = "pattern…"
TARGET_TITLES = {"adam": "cos(−g, Δ ⊙ √v̂)", "sgd": "cos(−g, Δ)"}

st.title("Weight diff")
st.caption(
    "With a base model and its fine-tuned version, rank candidate texts by how well the training gradient of each "
    "(under the base model) points the way the weights moved, Δ = θ_tuned − θ_base (SELEC, Morris et al. 2025). Two "
    "questions are asked apart: does the ranking find the fine-tuning data's **domain** (its style above other text), "
    "and does it find the **members** themselves (members above same-style texts never trained on)? The "
    "second is read against a membership baseline on the same texts: the tuned model's loss relative to the base's."
)

st.subheader("The shipped labs (measured, no model call)")
measured = selec_judge.shipped()
if measured is None:
    st.info("No shipped measurement: run `python benchmarks/selec_eval.py --out data/selec`.")
else:
    questions, retraining = measured
    lab_choice = st.radio("Lab", list(dict.fromkeys(questions["lab"])), horizontal=True, key="wd_shipped_lab")
    chosen = questions[questions["lab"] == lab_choice]
    st.dataframe(selec_judge.readable(chosen), key="wd_shipped_questions", hide_index=True)
    st.caption(
        f"Members question: the {chosen['n_members'].iloc[0]} members against the {chosen['n_nonmembers'].iloc[0]} same-style "
        "texts never trained on, nothing else (the pool also holds other-domain texts); 95% bootstrap intervals; AUC − baseline is against the "
        "reference ratio (the lab model's loss over the base model's) on the same resampled texts. Method names: SELEC "
        "parameters, target, projection size."
    )
    st.markdown(
        "**The retraining test** (shipped lab): the base fine-tuned on each selection of 50 texts, as the lab was."
    )
    if retraining is None:
        st.info(
            "The shipped run has not reached the retraining test yet: `python benchmarks/selec_eval.py --out data/selec --resume`."
        )
    else:
        st.dataframe(selec_judge.readable_retraining(retraining), key="wd_shipped_retraining", hide_index=True)
        st.caption(
            "Loss in nats per token on 200 same-style records no pool holds, and members − held-out (the lab's training "
            "dialogues against them; negative: members likelier). Worth: where a selection falls between the random "
            "selections (0) and the true members (1)."
        )
    st.caption("Discussion: docs/results/selec.md.")
names = registry_names()

c1, c2 = st.columns(2)
base_name = c1.selectbox("Base model", names, index=names.index(DEFAULT_MODEL), key="wd_base")
tuned_spec = model_picker(c2, "Fine-tuned model", LAB_MODEL, "wd_tuned", needs_weights=True)
try:
    dataset = lab_dataset_for(tuned_spec)
except ValueError as err:  # a lab folder that is missing or broken: no lab pool, the upload still works
    st.warning(str(err))
    dataset = None

p1, p2 = st.columns([1, 2])
pool_options = ([LAB_POOL] if dataset is not None else []) + [UPLOAD]
pool_source = p1.radio(
    "Candidate pool",
    pool_options,
    key="wd_pool_source",
    help="The lab pool exists when the fine-tuned model is a lab model.",
)
if pool_source == LAB_POOL:
    n1, n2, n3 = p2.columns(3)
    dialogues = len(dataset.dialogues)
    members = n1.number_input(
        "Training dialogues (members)", 0, dialogues, min(param("members", 50, int), dialogues), key="wd_members"
    )
    nonmembers = n2.number_input(
        "Same-style dialogues never trained on",
        0,
        10_000,
        param("nonmembers", 75, int),
        key="wd_nonmembers",
        help="The lab's held-out dialogues, topped up with fresh ones of its generator beyond their number.",
    )
    other = n3.number_input("Other-domain texts", 0, 10_000, param("other", 125, int), key="wd_other")
    upload = None
else:
    upload = p2.file_uploader(
        ".txt (one text per line) or .jsonl with a text field", type=["txt", "jsonl"], key="wd_upload",
        max_upload_size=MAX_UPLOAD_BYTES // 1_000_000,
    )  # fmt: skip

s1, s2, s3, s4, s5 = st.columns(5)
params_choice = s1.selectbox(
    "Parameters", [*PARAM_CHOICES, PATTERN], key="wd_params",
    help="last: the last transformer block (fast); changed: every parameter the fine-tune moved; all; or a regular expression on names.",
)  # fmt: skip
pattern = s1.text_input("Parameter name pattern", r"\.mlp\.", key="wd_pattern", disabled=params_choice != PATTERN)
projection_dim = s2.number_input(
    "Projection size (0 = none)", 0, 16_384, param("projection_dim", 1024, int), step=256, key="wd_projection"
)
seed = s3.number_input("Seed", 0, 2**31 - 1, param("seed", 0, int), key="wd_seed")
max_length = s4.number_input("Tokens per text", 2, 4096, 128, key="wd_max_length")
optimizer = s5.radio(
    "Fine-tune optimizer", OPTIMIZERS, key="wd_optimizer",
    help="Adam divides each step by √v, so gradients are compared with Δ ⊙ √v̂ (v̂: mean squared gradient over the pool); "
    "SGD with Δ itself. Switching re-scores the last run without recomputing gradients.",
)  # fmt: skip


def _pool() -> pd.DataFrame:
    if pool_source == LAB_POOL:
        return public_pool(dataset, int(members), int(nonmembers), int(other), seed=int(seed))
    if upload is None:
        raise ValueError(
            "Upload a .txt or .jsonl file of candidate texts (one still uploading counts once its upload has finished)."
        )
    return pd.DataFrame({"text": [text for _, text in parse_texts(upload.name, upload.getvalue())]})


if st.button("Run", type="primary", key="wd_run"):
    try:
        pool = _pool()
        params = pattern if params_choice == PATTERN else params_choice
        fitter = WeightDiff(params, int(projection_dim), int(seed), int(max_length))
        base_spec = ModelSpec(base_name)
        with st.spinner("Loading both models…"):
            base, tuned = shared_session(base_spec), shared_session(tuned_spec)
        training = [r["text"] for r in dataset.dialogues] if dataset is not None else None

        def work(progress):
            fitter.fit(base, tuned, pool, progress)
            return {
                "fitter": fitter, "base": base.info.name, "tuned": tuned.info.name, "training": training,
                "specs": (base_spec, tuned_spec),
            }  # fmt: skip

        # the lab pool is drawn, seeded, from the tuned model's lab; an uploaded one is its file
        pool_inputs = (
            (int(members), int(nonmembers), int(other))
            if pool_source == LAB_POOL
            else (upload.name, upload.getvalue())  # .txt and .jsonl read the same bytes differently
        )
        settings = (params, int(projection_dim), int(seed), int(max_length))
        key = run_key("weight_diff", base_spec, tuned_spec, pool_source, pool_inputs, *settings)
        submit_run("wd", key, repr(tuned_spec), work, f"{tuned.info.name}: SELEC on {len(pool)} texts")
    except ValueError as err:
        st.error(str(err))
wait_for_run("wd", "wd_result")

result = last_result(
    "wd_result", "Choose the two models and a pool, then Run. Results stay here while you set up the next run."
)

fitter = copy.copy(result["fitter"])  # shared by identical runs: the optimizer is set on this user's copy
fitter.optimizer = optimizer  # re-scoring needs no new gradients
ranking = fitter.rank()
known = "member" in ranking
st.subheader("Ranking")
shared_note(result)
st.caption(
    f"{result['base']} → {result['tuned']} · {len(ranking)} pool texts · {len(fitter.names_)} parameter tensors "
    f"({fitter.n_parameters_:,} numbers) · projection {fitter.projection_dim or 'none'} · seed {fitter.seed} · "
    f"{fitter.optimizer} target."
)
k = st.number_input("k (texts to select)", 1, len(ranking), default_k(fitter.pool_), key="wd_k")
greedy = fitter.greedy_select(int(k))
if known and ranking["member"].any():
    members = fitter.pool_["member"].tolist()
    ranked, chosen = evaluate(ranking, members, int(k)), evaluate(greedy, members, int(k))
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(
        f"Domain: precision@{k}, ranking",
        f"{ranked['precision_at_k']:.2f}",
        f"{ranked['lift']:.1f}× random",
        delta_color="off",
        delta_arrow="off",
    )
    m2.metric(
        f"Domain: precision@{k}, greedy",
        f"{chosen['precision_at_k']:.2f}",
        f"{chosen['lift']:.1f}× random",
        delta_color="off",
        delta_arrow="off",
    )
    m3.metric("Random baseline", f"{ranked['random']:.2f}")
    m4.metric("Domain: ROC AUC, ranking", "n/a (all members)" if math.isnan(ranked["auc"]) else f"{ranked['auc']:.3f}")
    curves = pd.concat(
        [
            precision_curve(ranking, members).assign(method="ranking"),
            precision_curve(greedy, members).assign(method="greedy"),
        ],
        ignore_index=True,
    )
    c1, c2 = st.columns(2)
    c1.altair_chart(plots_attacks.precision_at_k(curves, int(ranking["member"].sum())), width="stretch")
    c2.altair_chart(plots_attacks.score_distribution(ranking, TARGET_TITLES[fitter.optimizer]), width="stretch")
    if "source" in fitter.pool_:
        st.markdown("**Finds the domain, or the members?**")
        try:
            selec_judge.check_pool(fitter.pool_)
            if st.checkbox(
                "Beside the membership baselines (scores the pool with both models)", True, key="wd_baseline"
            ):
                if "baselines" not in result and result.get("specs"):  # scored once per run, whatever the target
                    base_spec, run_spec = result["specs"]
                    texts = fitter.pool_["text"].tolist()
                    baselines_key = run_key("weight_diff_baselines", base_spec, run_spec, texts)
                    if st.session_state.get("wd_baselines_for") != baselines_key:  # not asked yet for this run
                        base, tuned = shared_session(base_spec), shared_session(run_spec)

                        def baselines_work(progress):
                            return {"baselines": selec_judge.baseline_scores(base, tuned, texts, progress)}

                        label = f"{tuned.info.name}: membership baselines on {len(texts)} texts"
                        submit_run("wd_baselines", baselines_key, repr(run_spec), baselines_work, label)
                        st.session_state["wd_baselines_for"] = baselines_key
                    wait_for_run("wd_baselines", "wd_baselines_result")
                    st.session_state.pop("wd_baselines_for", None)  # settled: scored, failed or cancelled
                    result["baselines"] = st.session_state.pop("wd_baselines_result", {}).get("baselines")
                baselines = result.get("baselines")
            else:
                baselines = None
            cached = result.setdefault("questions", {})
            key = (fitter.optimizer, baselines is not None)
            if key not in cached:
                cached[key] = selec_judge.judge(fitter, baselines)
            st.dataframe(selec_judge.readable(cached[key]), key="wd_questions", hide_index=True)
        except ValueError as err:
            st.error(str(err))
elif known:
    st.caption("This pool holds no members: precision is undefined.")
else:
    st.caption("Membership is unknown for this pool: no precision is computed.")
st.dataframe(ranking, key="wd_ranking", hide_index=True, height=300)

st.subheader(f"Greedy selection of {k} and the closest training records")
shown = greedy.copy()
if result["training"]:
    try:
        closest = best_matches(shown["text"].tolist(), result["training"], top_k=1)
        shown["closest_training_record"] = [result["training"][j] for j in closest["candidate_index"]]
        shown["cosine_to_it"] = closest["cosine"].to_numpy()
    except ValueError as err:  # e.g. the embedding model is not installed
        st.warning(f"Closest training records unavailable: {err}")
st.dataframe(shown, key="wd_greedy", hide_index=True, height=300)

d1, d2 = st.columns(2)
d1.download_button(
    "Ranking (CSV)", ranking.to_csv(index=False), "weight_diff_ranking.csv", "text/csv", key="wd_dl_ranking"
)
d2.download_button(
    "Greedy selection (CSV)", shown.to_csv(index=False), "weight_diff_greedy.csv", "text/csv", key="wd_dl_greedy"
)
