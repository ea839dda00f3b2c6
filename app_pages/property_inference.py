import json

import pandas as pd
import streamlit as st

from workbench import plots_attacks
from workbench.config import DEFAULT_MODEL, INTERVALS, ModelSpec, PropInferConfig
from workbench.propinfer import (
    LAB_PROPERTIES,
    LABELER_KINDS,
    PROMPT_SETS,
    convergence,
    estimates_by_prompt,
    lab_labeler,
    labeler_for,
    mean_absolute_error,
)
from workbench.propinfer_judge import ASSUMPTIONS, score_summary
from workbench.propinfer_judge import shipped as shipped_benchmark
from workbench.propinfer_pipeline import infer
from workbench.registry import LAB_MODEL, registry_names
from workbench.runs import run_key
from workbench.shadow_calibration import SHADOW_METHODS
from workbench.shadows import ShadowSet, shadow_sets, summarize
from workbench.ui import last_result, model_picker, shared_session
from workbench.ui.params import option_index, param
from workbench.ui.runs import check_limits, shared_note, show_limits, submit_run, wait_for_run

KINDS = {
    "keywords": "keyword", "embedding (zero-shot)": "embedding", "value names (zero-shot)": "names", "custom keywords": "custom",
}  # fmt: skip

st.title("Property inference")
st.caption(
    "From sampled generations alone, estimate population properties of a model's fine-tuning data — e.g. the "
    "share of patients with each diagnosis (PropInfer, 2025). Sample hundreds of generations from prompts in "
    "the style of the data, label each, and estimate every value's share with a confidence interval. On a lab "
    "model the truth is known and drawn beside the estimates; the base model shows what is known without the data."
)
show_limits()
c1, c2, c3 = st.columns(3)
target = model_picker(c1, "Model", LAB_MODEL, "pi_model")
prop = c2.selectbox(
    "Property", LAB_PROPERTIES, index=option_index(LAB_PROPERTIES, param("property", "")), key="pi_property"
)
kind = KINDS[c3.radio("Labeler", list(KINDS), key="pi_labeler")]
custom_patterns = None  # the lab's labeler of the chosen kind
if kind == "custom":
    example = json.dumps(lab_labeler(prop).patterns, indent=1)
    custom_patterns = st.text_area(
        "Patterns: JSON object, value → list of regular expressions (case-insensitive)",
        example,
        height=200,
        key="pi_custom",
    )
else:
    with st.expander("What the labeler looks for"):
        labeler_preview = lab_labeler(prop, kind)
        st.caption(LABELER_KINDS[kind][:1].upper() + LABELER_KINDS[kind][1:] + ".")
        st.json(labeler_preview.patterns if kind == "keyword" else labeler_preview.descriptions, expanded=False)

p1, p2 = st.columns([1, 2])
style = p1.radio(
    "Prompt style",
    list(PROMPT_SETS),
    index=option_index(list(PROMPT_SETS), param("style", "")),
    key="pi_style",
    help="Chat prompts are user messages, wrapped in the model's chat template.",
)
prompt_text = p2.text_area(
    "Prompts, one per line", "\n".join(PROMPT_SETS[style]), height=160, key=f"pi_prompts_{style}"
)
r1, r2, r3 = st.columns(3)
n_samples = r1.number_input(
    "Generations",
    0,
    2000,
    param("n", 200, int),
    step=10,
    key="pi_n",
    help="Spread evenly over the prompts; 10 to 2,000 is the useful range.",
)
with_base = r2.checkbox("Also run a base model", True, key="pi_with_base")
base_name = r3.selectbox(
    "Base model", registry_names(), index=registry_names().index(DEFAULT_MODEL), key="pi_base", disabled=not with_base
)

with st.expander("Sampling and intervals"):
    s1, s2, s3, s4 = st.columns(4)
    max_new_tokens = s1.number_input("New tokens", 1, 1024, PropInferConfig.max_new_tokens, key="pi_max_new_tokens")
    temperature = s2.number_input("Temperature", 0.0, 5.0, 1.0, step=0.1, key="pi_temperature", help="0 = greedy")
    top_p = s3.number_input("Top-p", 0.01, 1.0, 1.0, step=0.05, key="pi_top_p")
    seed = s4.number_input("Seed", 0, 2**31 - 1, param("seed", 0, int), key="pi_seed")
    batch_size = s1.number_input("Batch size", 1, 512, PropInferConfig.batch_size, key="pi_batch_size")
    interval = s2.radio("Interval", INTERVALS, key="pi_interval")
    confidence = s3.number_input("Confidence", 0.5, 0.999, 0.95, step=0.01, key="pi_confidence")

sets = shadow_sets()
with st.expander("Shadow-model calibration", expanded=True):
    st.caption(
        "A fine-tuned model's generations carry its base model's habits, so the naive estimate inherits their bias, "
        "and its interval does not see it. Shadow models — fine-tunes of the same base on data with known shares, "
        "sampled the way the target is — learn how the shares in generations map to the true shares (PropInfer's "
        "shadow-model attack). The map applies to the first model; sample it as the shadows were sampled."
    )
    k1, k2, k3 = st.columns([1, 2, 2])
    calibrate_on = k1.checkbox("Calibrate", bool(sets), key="pi_calibrate", disabled=not sets)
    set_label = k2.selectbox(
        "Shadow set", list(sets) or ["(none built: `workbench shadows build`)"], key="pi_shadow_set", disabled=not sets
    )
    method = k3.radio("Map", list(SHADOW_METHODS), format_func=SHADOW_METHODS.get, key="pi_method")


@st.cache_data(show_spinner="Labeling the shadows' generations…", max_entries=16)
def _sweep(folder: str, prop: str, kind: str, custom_patterns: str | None, method: str):
    """Shadow sweep, its summary and the trust verdict; no model calls (the shadows carry their generations)."""
    shadows, labeler = ShadowSet.load(folder), labeler_for(prop, kind, custom_patterns)
    sweep = shadows.sweep(labeler, method)
    calibration = shadows.fit(labeler, method)
    return shadows.recipe, sweep, summarize(sweep), calibration.verdict(), calibration.naive_trusted


if st.button("Run", type="primary", key="pi_run"):
    try:
        cfg = PropInferConfig(
            int(n_samples),
            int(max_new_tokens),
            float(temperature),
            0,
            float(top_p),
            int(seed),
            int(batch_size),
            interval,
            float(confidence),
        )
        labeler = labeler_for(prop, kind, custom_patterns)
        shadows = ShadowSet.load(sets[set_label]) if calibrate_on and sets else None  # a broken set: before sampling
        specs = [target, ModelSpec(base_name)] if with_base else [target]
        n_generations = cfg.n_samples * len(specs)
        check_limits(n_generations, cfg.max_new_tokens)
        sessions = []
        for spec in specs:
            with st.spinner(f"Loading {spec.name}…"):
                sessions.append(shared_session(spec))

        def work(progress, prompts=prompt_text.splitlines()):
            inference = infer(sessions, prompts, cfg, labeler, style, shadows, method, progress)
            return {"inference": inference, "cfg": cfg, "shadow_set": set_label}

        settings = (
            prompt_text,
            style,
            cfg,
            prop,
            kind,
            custom_patterns,
            str(sets[set_label]) if shadows else None,
            method,
        )
        key = run_key("property_inference", *specs, *settings)
        submit_run("pi", key, repr(target), work, f"{sessions[0].info.name}: {n_generations} generations")
    except ValueError as err:
        st.error(str(err))
wait_for_run("pi", "pi_result")

tab_estimates, tab_sweep = st.tabs(["Estimates", "Shadow sweep"])
with tab_sweep:
    if not sets:
        st.info("No shadow set is built. Build one with `workbench shadows build`; it appears here when finished.")
    else:
        try:
            recipe, sweep, summary, verdict, trusted = _sweep(str(sets[set_label]), prop, kind, custom_patterns, method)
        except ValueError as err:
            st.warning(f"No sweep for this labeler: {err}")
        else:
            st.caption(
                f"{set_label}: {recipe.k} shadow models of {recipe.base}, each fine-tuned on {recipe.n_records} dialogues "
                f"({recipe.epochs} epochs, LoRA rank {recipe.rank}) with shares drawn from a Dirichlet({recipe.alpha:g}) prior, "
                f"then sampled {recipe.n_samples} times ({recipe.style} prompts, temperature {recipe.temperature}, top-p "
                f"{recipe.top_p}, {recipe.max_new_tokens} new tokens). Each shadow's calibrated estimate comes from a map "
                "fitted on the other shadows. The interval score is the width plus 40 times any miss (95%): lower is better, "
                "and a wide interval cannot buy it. No model is called here."
            )
            (st.success if trusted else st.warning)(verdict)
            columns = st.columns(len(summary))
            for column, row in zip(columns, summary.itertuples()):
                column.metric(f"{row.estimate}: MAE", f"{row.mae:.3f}")
                column.metric(f"{row.estimate}: intervals covering the truth", f"{row.covered} of {row.intervals}")
                column.metric(
                    f"{row.estimate}: mean width · interval score", f"{row.width:.3f} · {row.interval_score:.3f}"
                )
            st.altair_chart(plots_attacks.calibration_sweep(sweep), width="content")
            st.dataframe(sweep, key="pi_sweep", hide_index=True, height=250)
            st.download_button(
                "Sweep (CSV)", sweep.to_csv(index=False), "propinfer_shadow_sweep.csv", "text/csv", key="pi_dl_sweep"
            )
    benchmark = shipped_benchmark()
    if benchmark is not None:
        summary_table, difference_table = benchmark
        st.markdown(
            "**Where the calibration holds: six labs of the standard recipe** (shipped benchmark, no model call)"
        )
        st.caption(
            "Four labs with hand-chosen shares (one ≥ 0.4, one ≤ 0.02, one near uniform, one with a skewed gender split) and two "
            "drawn from the shadows' prior, 400 generations each, both labelers. Every method minus naive, paired over labs then "
            "values (95%): negative is better. In short: for diagnosis the maps lower the interval score well below naive's and "
            "the pooled map lowers the error a little, while they pull the most extreme shares toward the middle. For gender "
            "no map lowers the error, and with the names labeler none lowers the interval score either. Discussion: "
            "docs/results/propinfer.md."
        )
        st.dataframe(difference_table, key="pi_benchmark_differences", hide_index=True, height=250)
        st.dataframe(summary_table, key="pi_benchmark_summary", hide_index=True, height=250)

with tab_estimates:
    result = last_result(
        "pi_result", "Choose a model, property and prompts, then Run. Results stay here while you set up the next run."
    )

    inference, cfg = result["inference"], result["cfg"]
    runs, truth = inference.runs, inference.truth
    main_label = next(iter(runs))
    shared_note(result)
    st.subheader(f"Estimated shares: {inference.property}")
    st.caption(
        f"{cfg.n_samples} generations per model · seed {cfg.seed} · temperature {cfg.temperature}, top-p {cfg.top_p}, "
        f"{cfg.max_new_tokens} new tokens · {cfg.interval} intervals at {cfg.confidence:.0%}. "
        + (
            "The same seed repeats this run exactly. "
            if not inference.served
            else f"{', '.join(inference.served)} served by an endpoint: whether the same seed repeats it is the server's promise. "
        )
        + (
            "True shares: the lab dataset's realized shares."
            if truth
            else "True shares are hidden: this is not a lab model."
        )
    )
    columns = st.columns(len(runs))
    for column, (label, outcome) in zip(columns, runs.items()):
        unlabeled = int(outcome.estimates["unlabeled"].iloc[0])
        column.metric(
            f"Labeled generations ({label})", f"{len(outcome.generations) - unlabeled} of {len(outcome.generations)}"
        )
        if truth:
            column.metric(f"MAE vs truth ({label})", f"{mean_absolute_error(outcome.estimates, truth):.3f}")
    for label, outcome in runs.items():
        if outcome.estimates["n"].iloc[0] == 0:
            st.warning(
                f"{label}: no generation matched any value, so no share can be estimated. Check the labeler or sample more."
            )
    estimates = inference.estimates()
    st.altair_chart(
        plots_attacks.share_estimates(estimates, "Estimate (interval) vs truth (black tick)" if truth else "Estimates"),
        width="stretch",
    )
    st.dataframe(estimates, key="pi_estimates", hide_index=True)

    judged = inference.judged
    if judged is not None:
        calibrated = judged.calibrated
        st.subheader(f"Calibrated with shadow models: {main_label}")
        (st.success if calibrated.calibration.naive_trusted else st.warning)(calibrated.calibration.verdict())
        for warning in calibrated.warnings:
            st.warning(f"This run differs from how the shadows were sampled: {warning}. The map may not apply.")
        (st.info if judged.lead == "calibrated" else st.warning)(f"Leading estimate: {judged.lead}. {judged.why}")
        for note in judged.notes:
            st.caption(note)
        table = calibrated.table
        st.caption(
            f"Shadow set {result['shadow_set']}. Calibrated interval: ± z × sd, sd² = the run's sampling variance through the "
            "map + the map's mean squared leave-one-shadow-out error; the calibrated shares are clipped at 0 and scaled to sum to 1. "
            "Both estimates are shown, whichever leads. The calibration holds for targets like the shadows (fine-tunes of the same "
            "base, sampled the same way, their labeled shares inside the shadows' range) and only where it beats the naive "
            "estimate on the shadows themselves (interval score, leaving each shadow out); elsewhere the naive estimate leads."
        )
        if truth:
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Naive: MAE vs truth", f"{table['error'].abs().mean():.3f}")
            m2.metric("Naive: intervals covering the truth", f"{int(table['covered'].sum())} of {len(table)}")
            m3.metric("Calibrated: MAE vs truth", f"{table['cal_error'].abs().mean():.3f}")
            m4.metric("Calibrated: intervals covering the truth", f"{int(table['cal_covered'].sum())} of {len(table)}")
        pair = pd.concat(
            [
                table.assign(run=f"{main_label}: naive"),
                table.assign(
                    run=f"{main_label}: calibrated",
                    share=table["calibrated"],
                    ci_low=table["cal_low"],
                    ci_high=table["cal_high"],
                ),
            ],
            ignore_index=True,
        )
        st.altair_chart(
            plots_attacks.share_estimates(
                pair, "Naive and calibrated estimates" + (" vs truth (black tick)" if truth else "")
            ),
            width="stretch",
        )
        st.dataframe(table, key="pi_calibrated", hide_index=True)
        st.download_button(
            "Calibrated estimates (CSV)",
            table.to_csv(index=False),
            "propinfer_calibrated.csv",
            "text/csv",
            key="pi_dl_calibrated",
        )
        st.markdown("**Every method beside the baselines**")
        st.caption(
            "Naive and James–Stein need no shadows; the base correction needs the base model run beside the target (the shadows' "
            "base). " + " ".join(f"{m}: {ASSUMPTIONS[m]}." for m in judged.methods["method"].unique())
        )
        if truth:
            st.caption(
                "Scored against the truth: MAE, mean interval width, mean interval score (the width plus 40 times any miss at 95%: "
                "lower is better, and wide intervals cannot buy it) and the share of intervals that cover the truth."
            )
            st.dataframe(score_summary(judged.methods), key="pi_methods_summary", hide_index=True)
        st.dataframe(judged.where, key="pi_shadow_range", hide_index=True)
        st.dataframe(judged.methods, key="pi_methods", hide_index=True, height=250)
        st.download_button(
            "Every method (CSV)",
            judged.methods.to_csv(index=False),
            "propinfer_methods.csv",
            "text/csv",
            key="pi_dl_methods",
        )
    elif inference.calibration_failed:
        st.warning(f"No calibration for this run: {inference.calibration_failed}")

    shown = st.selectbox("Details for", list(runs), key="pi_shown")
    outcome = runs[shown]
    truth_frame = pd.DataFrame({"value": list(truth), "true_share": list(truth.values())}) if truth else None
    c1, c2 = st.columns(2)
    curve = convergence(
        outcome.generations, outcome.values, interval=cfg.interval, confidence=cfg.confidence, seed=cfg.seed
    )
    c1.altair_chart(plots_attacks.convergence_curve(curve, truth_frame), width="stretch")
    per_prompt = estimates_by_prompt(outcome.generations, outcome.values, cfg.interval, cfg.confidence, cfg.seed)
    c2.altair_chart(plots_attacks.estimates_per_prompt(per_prompt), width="stretch")
    st.dataframe(outcome.generations, key="pi_generations", hide_index=True, height=300)

    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Estimates (CSV)", estimates.to_csv(index=False), "propinfer_estimates.csv", "text/csv", key="pi_dl_estimates"
    )
    generations = pd.concat([o.generations.assign(run=label) for label, o in runs.items()], ignore_index=True)
    d2.download_button(
        "Generations (JSONL)",
        generations.to_json(orient="records", lines=True),
        "propinfer_generations.jsonl",
        "application/jsonl",
        key="pi_dl_generations",
    )
    d3.download_button(
        "Convergence (CSV)", curve.to_csv(index=False), "propinfer_convergence.csv", "text/csv", key="pi_dl_convergence"
    )
    if inference.served:
        d1.download_button(
            "Request settings (JSON)",
            json.dumps(inference.served, indent=2),
            "propinfer.endpoint.json",
            "application/json",
            key="pi_dl_endpoint",
        )
