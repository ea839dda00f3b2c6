import json

import pandas as pd
import streamlit as st

from workbench import plots
from workbench.config import DEFAULT_MODEL, INTERVALS, ModelSpec, PropInferConfig
from workbench.lab import lab_dataset_for
from workbench.propinfer import (
    LAB_PROPERTIES,
    PROMPT_SETS,
    KeywordLabeler,
    against_truth,
    convergence,
    estimates_by_prompt,
    lab_labeler,
    mean_absolute_error,
    run,
)
from workbench.session import LAB_MODEL, registry_names, scaled_progress
from workbench.ui import last_result, model_picker, progress_bar, shared_session

KINDS = {"keywords": "keyword", "embedding (zero-shot)": "embedding", "custom keywords": "custom"}

st.title("Property inference")
st.caption(
    "From sampled generations alone, estimate population properties of a model's fine-tuning data — e.g. the "
    "share of patients with each diagnosis (PropInfer, 2025). Sample hundreds of generations from prompts in "
    "the style of the data, label each, and estimate every value's share with a confidence interval. On a lab "
    "model the truth is known and drawn beside the estimates; the base model shows what is known without the data."
)
c1, c2, c3 = st.columns(3)
target = model_picker(c1, "Model", LAB_MODEL, "pi_model")
prop = c2.selectbox("Property", LAB_PROPERTIES, key="pi_property")
kind = KINDS[c3.radio("Labeler", list(KINDS), key="pi_labeler")]
custom_patterns = "{}"
if kind == "custom":
    example = json.dumps(lab_labeler(prop).patterns, indent=1)
    custom_patterns = st.text_area(
        "Patterns: JSON object, value → list of regular expressions (case-insensitive)", example, height=200, key="pi_custom"
    )
else:
    with st.expander("What the labeler looks for"):
        labeler_preview = lab_labeler(prop, kind)
        st.json(labeler_preview.patterns if kind == "keyword" else labeler_preview.descriptions, expanded=False)

p1, p2 = st.columns([1, 2])
style = p1.radio("Prompt style", list(PROMPT_SETS), key="pi_style", help="Chat prompts are user messages, wrapped in the model's chat template.")
prompt_text = p2.text_area("Prompts, one per line", "\n".join(PROMPT_SETS[style]), height=160, key=f"pi_prompts_{style}")
r1, r2, r3 = st.columns(3)
n_samples = r1.number_input("Generations", 0, 2000, 200, step=10, key="pi_n", help="Spread evenly over the prompts; 10 to 2,000 is the useful range.")
with_base = r2.checkbox("Also run a base model", True, key="pi_with_base")
base_name = r3.selectbox("Base model", registry_names(), index=registry_names().index(DEFAULT_MODEL), key="pi_base", disabled=not with_base)

with st.expander("Sampling and intervals"):
    s1, s2, s3, s4 = st.columns(4)
    max_new_tokens = s1.number_input("New tokens", 1, 1024, PropInferConfig.max_new_tokens, key="pi_max_new_tokens")
    temperature = s2.number_input("Temperature", 0.0, 5.0, 1.0, step=0.1, key="pi_temperature", help="0 = greedy")
    top_p = s3.number_input("Top-p", 0.01, 1.0, 1.0, step=0.05, key="pi_top_p")
    seed = s4.number_input("Seed", 0, 2**31 - 1, 0, key="pi_seed")
    batch_size = s1.number_input("Batch size", 1, 512, PropInferConfig.batch_size, key="pi_batch_size")
    interval = s2.radio("Interval", INTERVALS, key="pi_interval")
    confidence = s3.number_input("Confidence", 0.5, 0.999, 0.95, step=0.01, key="pi_confidence")


def _labeler():
    if kind != "custom":
        return lab_labeler(prop, kind)
    try:
        patterns = json.loads(custom_patterns)
    except json.JSONDecodeError as err:
        raise ValueError(f"The patterns are not valid JSON: {err.msg} (line {err.lineno}).") from err
    return KeywordLabeler(prop, patterns)


if st.button("Run", type="primary", key="pi_run"):
    try:
        cfg = PropInferConfig(
            int(n_samples), int(max_new_tokens), float(temperature), 0, float(top_p), int(seed), int(batch_size), interval, float(confidence)
        )
        labeler = _labeler()
        dataset = lab_dataset_for(target)  # before sampling: a broken lab folder must not cost the run
        truth = dataset.truth["realized"].get(prop) if dataset is not None else None
        specs = [target, ModelSpec(base_name)] if with_base else [target]
        runs = {}
        with progress_bar() as progress:
            for k, spec in enumerate(specs):
                with st.spinner(f"Loading {spec.name}…"):
                    session = shared_session(spec)
                label = session.info.name if k == 0 else f"base: {session.info.name}"
                part = scaled_progress(progress, k / len(specs), (k + 1) / len(specs), f"{label}: ")
                runs[label] = run(session, prompt_text.splitlines(), cfg, labeler, part, style)
        st.session_state["pi_result"] = {"runs": runs, "truth": truth, "property": prop, "cfg": cfg}
    except ValueError as err:
        st.error(str(err))

result = last_result(
    "pi_result", "Choose a model, property and prompts, then Run. Results stay here while you set up the next run."
)

runs, truth, cfg = result["runs"], result["truth"], result["cfg"]
main_label = next(iter(runs))
st.subheader(f"Estimated shares: {result['property']}")
st.caption(
    f"{cfg.n_samples} generations per model · seed {cfg.seed} · temperature {cfg.temperature}, top-p {cfg.top_p}, "
    f"{cfg.max_new_tokens} new tokens · {cfg.interval} intervals at {cfg.confidence:.0%}. The same seed repeats this run exactly. "
    + ("True shares: the lab dataset's realized shares." if truth else "True shares are hidden: this is not a lab model.")
)
columns = st.columns(len(runs))
for column, (label, outcome) in zip(columns, runs.items()):
    unlabeled = int(outcome.estimates["unlabeled"].iloc[0])
    column.metric(f"Labeled generations ({label})", f"{len(outcome.generations) - unlabeled} of {len(outcome.generations)}")
    if truth:
        column.metric(f"MAE vs truth ({label})", f"{mean_absolute_error(outcome.estimates, truth):.3f}")
for label, outcome in runs.items():
    if outcome.estimates["n"].iloc[0] == 0:
        st.warning(f"{label}: no generation matched any value, so no share can be estimated. Check the labeler or sample more.")
estimates = pd.concat(
    [(against_truth(o.estimates, truth) if truth else o.estimates).assign(run=label) for label, o in runs.items()], ignore_index=True
)
st.altair_chart(plots.share_estimates(estimates, "Estimate (interval) vs truth (black tick)" if truth else "Estimates"), width="stretch")
st.dataframe(estimates, key="pi_estimates", hide_index=True)

shown = st.selectbox("Details for", list(runs), key="pi_shown")
outcome = runs[shown]
truth_frame = pd.DataFrame({"value": list(truth), "true_share": list(truth.values())}) if truth else None
c1, c2 = st.columns(2)
curve = convergence(outcome.generations, outcome.values, interval=cfg.interval, confidence=cfg.confidence, seed=cfg.seed)
c1.altair_chart(plots.convergence_curve(curve, truth_frame), width="stretch")
per_prompt = estimates_by_prompt(outcome.generations, outcome.values, cfg.interval, cfg.confidence, cfg.seed)
c2.altair_chart(plots.estimates_per_prompt(per_prompt), width="stretch")
st.dataframe(outcome.generations, key="pi_generations", hide_index=True, height=300)

d1, d2, d3 = st.columns(3)
d1.download_button("Estimates (CSV)", estimates.to_csv(index=False), "propinfer_estimates.csv", "text/csv", key="pi_dl_estimates")
generations = pd.concat([o.generations.assign(run=label) for label, o in runs.items()], ignore_index=True)
d2.download_button(
    "Generations (JSONL)", generations.to_json(orient="records", lines=True), "propinfer_generations.jsonl", "application/jsonl", key="pi_dl_generations"
)
d3.download_button("Convergence (CSV)", curve.to_csv(index=False), "propinfer_convergence.csv", "text/csv", key="pi_dl_convergence")
