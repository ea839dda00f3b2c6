import pandas as pd
import streamlit as st

from workbench import plots, sink_mechanism
from workbench.attention import SINK_THRESHOLD, column_profile, compare_mitigation, sink_comparison, sink_heads
from workbench.config import SamplingConfig
from workbench.divergence import divergence_rate, rate_text
from workbench.prompts import HINT_PREFIXES, repeated_token_prompt
from workbench.runs import run_key
from workbench.ui import active_session, require_session
from workbench.ui.params import param
from workbench.ui.runs import check_limits, shared_note, show_limits, submit_run, wait_for_run

PROSE = (
    "It was a bright cold day in April, and the clocks were striking thirteen. The village lay quiet under the "
    "hills, and the baker opened his shop before dawn, as he had done for forty years."
)


def mechanism_section() -> None:
    """The mechanism behind divergence from the shipped result (no model call), and a re-run."""
    st.subheader("Why repeated tokens break out")
    wait_for_run("as_mechanism", "as_mechanism")
    mechanism = st.session_state.get("as_mechanism") or sink_mechanism.load_result()
    if mechanism is None:
        st.info("No mechanism result is shipped: run `python benchmarks/sink_divergence.py`, or re-run it below.")
    else:
        made = mechanism["manifest"]
        st.caption(
            f"{made['model']}, {made['word']!r} at {', '.join(map(str, made['repeats']))} repeats, against length-matched "
            "prose (the same number of tokens of ordinary text). Without a leading token, position 0 is the first word; "
            "with one, a special token comes first."
        )
        g1, g2 = st.columns(2)
        for column, leading in ((g1, False), (g2, True)):
            rows = mechanism["geometry"][mechanism["geometry"]["leading"] == leading]
            column.altair_chart(
                plots.geometry_by_layer(rows, "with a leading token" if leading else "no leading token"),
                width="stretch",
            )
        st.caption(
            "Cosine between the hidden state at each later position and at position 0, per layer. Where the repeated "
            "prompt's lines sit near 1, its positions look like the first token: a run of one token has become sinks."
        )
        st.table(sink_mechanism.layer_means(mechanism["geometry"]))
        st.markdown("**Top sink heads' attention to position 0**, repeated against prose")
        fractions = (
            mechanism["sink_fractions"]
            .groupby(["leading", "repeats", "prompt"], as_index=False)["sink_fraction"]
            .mean()
        )
        st.table(fractions.pivot_table(index=["leading", "repeats"], columns="prompt", values="sink_fraction"))
        st.markdown(f"**Candidate sink neurons** (|robust z| ≥ {sink_mechanism.OUTLIER_MADS:g} at position 0 of prose)")
        st.table(mechanism["sink_neurons"])
        if mechanism.get("causal") is not None:
            st.markdown(
                "**The causal test**: the divergence rate on the same seeds under each condition, against the baseline"
            )
            st.table(mechanism["causal"])
            st.markdown("\n".join(f"- {line}" for line in sink_mechanism.describe_causal(mechanism["causal"])))
    rerun_model = active_session()
    refusal = None if rerun_model is None else rerun_model.weights_refusal("Re-running the mechanism")
    if (
        rerun_model is not None
        and refusal is None
        and st.button(f"Re-run a–c on {rerun_model.info.name} (10, 50, 200 repeats)", key="as_mechanism_run")
    ):
        try:

            def work(progress, model=rerun_model):
                tables = sink_mechanism.mechanism(model, "poem", [10, 50, 200], progress=progress)
                manifest = {"model": model.info.name, "word": "poem", "repeats": [10, 50, 200]}
                return {**tables, "causal": None, "manifest": manifest}

            key = run_key("sink_mechanism", rerun_model.spec, "poem", [10, 50, 200])
            submit_run(
                "as_mechanism", key, repr(rerun_model.spec), work, f"{rerun_model.info.name}: sink mechanism a–c"
            )
            st.rerun()  # the section's top waits for the run and shows it
        except ValueError as err:
            st.error(str(err))


st.title("Attention sinks")
st.caption(
    "Many heads pour most of their attention onto the first token — an attention sink; a head is a sink head "
    f"when its mean attention to the first token is at least {SINK_THRESHOLD} (Gu et al. 2025). A long run of "
    "one repeated token starts to look like a first token (Yona et al. 2025), which is how repeated-token "
    "prompts derail models. Compare a normal prompt with a repeated-token prompt, then scale heads down. "
    "Measured results (the mechanism and the causal test): docs/results/divergence.md."
)
session = require_session(needs_weights="Attention-sink analysis")

left, right = st.columns(2)
normal_text = left.text_area("Normal prompt", PROSE, height=140, key="as_prompt")
word = right.text_input("Repeated word", param("word", "poem"), key="as_word")
repeats = right.number_input(
    "Repeats",
    1,
    session.info.context_length,
    min(param("repeats", 200, int), session.info.context_length - 1),
    key="as_repeats",
)
prefix = right.selectbox(
    "Hint prefix", HINT_PREFIXES, accept_new_options=True, key="as_prefix", format_func=lambda p: p or "(none)"
)

if st.button("Compute sink scores", type="primary", key="as_run"):
    try:
        repeated = repeated_token_prompt(
            session.tokenizer, word, int(repeats), prefix, context_length=session.info.context_length
        )

        def work(progress, session=session, normal_text=normal_text, repeated=repeated):
            comparison = sink_comparison(session, normal_text, repeated, progress)
            spec, model = session.spec, session.info.name
            return {"spec": spec, "model": model, **comparison, "repeated": repeated}

        key = run_key("attention_sinks", session.spec, normal_text, repeated)
        submit_run("as", key, repr(session.spec), work, f"{session.info.name}: sink scores, {repeated.count} repeats")
    except ValueError as err:
        st.error(str(err))
wait_for_run("as", "as_result")

result = st.session_state.get("as_result")
if result is not None and result["spec"] != session.spec:
    st.info(f"The last results were for {result['model']}; compute again for {session.info.name}.")
    result = None
if result is None:
    st.info("Set the prompts, then Compute. Results stay here while you change the settings.")
    mechanism_section()
    st.stop()

scores = result["scores"]
shared_note(result)
st.caption(f"Model {result['model']} · repeated prompt: {result['repeated'].count} × {result['repeated'].token!r}")
difference = scores["repeated"].assign(score=scores["repeated"]["score"] - scores["normal"]["score"])
c1, c2, c3 = st.columns(3)
c1.altair_chart(plots.sink_heatmap(scores["normal"], "Normal prompt"), width="stretch")
c2.altair_chart(plots.sink_heatmap(scores["repeated"], "Repeated-token prompt"), width="stretch")
c3.altair_chart(plots.sink_heatmap(difference, "Repeated − normal", difference=True), width="stretch")

threshold = st.slider("Sink-head threshold", 0.0, 1.0, SINK_THRESHOLD, 0.05, key="as_threshold")
t1, t2 = st.columns(2)
for column, name in ((t1, "normal"), (t2, "repeated")):
    heads = sink_heads(scores[name], threshold)
    column.metric(
        f"Sink heads, {name} prompt",
        f"{len(heads) / len(scores[name]):.0%}",
        help=f"{len(heads)} of {len(scores[name])} heads",
    )
    column.dataframe(heads, height=220, key=f"as_heads_{name}")

st.subheader("One head, position by position")
# The heads that sink on ordinary text are the ones to inspect and to scale down.
ranked = sink_heads(scores["normal"], threshold=0.0)  # NaN scores (fp16 overflow) drop out here
top_layer, top_head = (int(ranked.iloc[0]["layer"]), int(ranked.iloc[0]["head"])) if len(ranked) else (0, 0)
h1, h2 = st.columns(2)
layer = h1.number_input("Layer", 0, session.info.n_layers - 1, top_layer, key="as_layer")
head = h2.number_input("Head", 0, session.info.n_heads - 1, top_head, key="as_head")
profiles = pd.concat(
    [column_profile(c, int(layer), int(head)).assign(prompt=name) for name, c in result["columns"].items()],
    ignore_index=True,
)
st.altair_chart(
    plots.attention_by_position(profiles, f"Attention to the first token, layer {layer} head {head}"), width="stretch"
)
st.altair_chart(
    plots.norms_by_layer(result["profile"], "Hidden-state norms: repeated tokens vs the first token"), width="stretch"
)
st.caption(
    "Where the repeated tokens' line lies on the first token's line, repeated tokens carry a first token's "
    "norm — they have become sinks themselves. Ordinary tokens stay far below."
)

st.subheader("Mitigate")
st.caption(
    "Scale the chosen heads' outputs (default: the top sink heads on the normal prompt) and re-run "
    "repeated-token sampling on the same seeds, with and without."
)
show_limits()
all_heads = [f"L{r.layer}H{r.head}" for r in scores["repeated"].itertuples()]
top = [f"L{r.layer}H{r.head}" for r in ranked.head(3).itertuples()]
m1, m2, m3, m4 = st.columns(4)
chosen = m1.multiselect("Heads", all_heads, default=top, key="as_mitigate_heads")
scale = m2.slider("Scale", 0.0, 1.0, 0.25, 0.05, key="as_scale", help="0 removes the head's output; 1 leaves it")
n = m3.number_input("Samples", 1, 500, 8, key="as_n")
new_tokens = m4.number_input("New tokens", 1, 1024, 32, key="as_new_tokens")
seed = m1.number_input("Seed", 0, 2**31 - 1, 0, key="as_seed")
if st.button("Run with and without", key="as_mitigate"):
    try:
        scales = {(int(h[1 : h.index("H")]), int(h[h.index("H") + 1 :])): scale for h in chosen}
        repeated = result["repeated"]
        cfg = SamplingConfig(int(new_tokens), n=int(n), seed=int(seed))
        generations = 2 * cfg.n  # without and with the scaled heads
        check_limits(generations, cfg.max_new_tokens)

        def work(
            progress, session=session, scales=scales, repeated=repeated, cfg=cfg, heads=tuple(chosen), scale=scale
        ):
            comparison = compare_mitigation(
                session, scales, [repeated.word], [repeated.repeats], cfg, repeated.prefix, progress=progress
            )
            return {"table": comparison, "heads": list(heads), "scale": scale}

        key = run_key("attention_sinks_mitigation", session.spec, repeated, list(chosen), float(scale), cfg)
        submit_run(
            "as_mitigation", key, repr(session.spec), work,
            f"{session.info.name}: {generations} x {cfg.max_new_tokens} tokens, {len(chosen)} heads scaled",
        )  # fmt: skip
    except ValueError as err:
        st.error(str(err))
wait_for_run("as_mitigation", "as_mitigation")

mitigation = st.session_state.get("as_mitigation")
if mitigation is not None:
    table = mitigation["table"]
    before, after = (divergence_rate(table[f"outcome_{c}"].tolist()) for c in ("baseline", "mitigated"))
    r1, r2 = st.columns(2)
    r1.metric("Divergence rate without mitigation", rate_text(before))
    r2.metric(
        f"Divergence rate with {len(mitigation['heads'])} heads × {mitigation['scale']}",
        rate_text(after),
        delta=None if before["n"] == 0 or after["n"] == 0 else f"{after['rate'] - before['rate']:+.0%}",
        delta_color="inverse",
    )
    st.caption(
        "Divergence rate = escaped ÷ (escaped + repeated only): of the samples that kept repeating, the share that broke out."
    )
    st.dataframe(table, key="as_mitigation_table")

st.subheader("Export")
scores_long = pd.concat([s.assign(prompt=name) for name, s in scores.items()], ignore_index=True)
e1, e2, e3 = st.columns(3)
e1.download_button(
    "Sink scores (CSV)", scores_long.to_csv(index=False), "sink_scores.csv", "text/csv", key="as_csv_scores"
)
e2.download_button(
    "Hidden norms (CSV)", result["norms"].to_csv(index=False), "hidden_norms.csv", "text/csv", key="as_csv_norms"
)
if mitigation is not None:
    e3.download_button(
        "Mitigation (CSV)",
        mitigation["table"].to_csv(index=False),
        "mitigation.csv",
        "text/csv",
        key="as_csv_mitigation",
    )

if st.toggle("Show why repeated tokens break out (the mechanism)", key="as_show_mechanism"):
    mechanism_section()
