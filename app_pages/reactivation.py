import pandas as pd
import streamlit as st

from workbench import overlap, plots_attacks, reactivation, reactivation_books
from workbench.config import ModelSpec
from workbench.reactivation_measure import SHIPPED_UNLEARNING_REPORT, ReactivationReport, measure
from workbench.registry import registry_names
from workbench.runs import run_key
from workbench.similarity import shared_spans
from workbench.stats import difference_text
from workbench.ui.builds import build_picker
from workbench.ui.runs import shared_note, submit_build, submit_run, wait_for_run
from workbench.ui.text import highlight_spans

st.title("Reactivation")
st.caption(
    'Seed 003 (Liu et al. 2026, "Alignment Whack-a-Mole"; Hu et al. 2024 on relearning after unlearning): fine-tuning '
    "a model whose memorized text was suppressed can make it recite that text again. Here every stage is built in the lab: "
    "the model memorizes author A's passages, is trained to stop reciting them, and is then fine-tuned on a benign task "
    "(summary → passage) — on other passages of A, on another author C, or on plain synthetic notes F. Recall is measured on "
    "A-test, which activation never trains on, beside A-never: A's style, never trained, the floor that imitation reaches. "
    "Each stage is asked with the summary instruction that refusal training and activation train on, and (all but the "
    "no-suppression baseline) with a held-out instruction: the same synopsis, title and author in a template no stage trains "
    "on, so that recall under it is not a refusal of those very words reversed by construction."
)

# A build asked for below waits here, above any stop, until it ends: progress, cancel, then its message.
wait_for_run("re_rebuild", "re_built")
if "re_built" in st.session_state:
    st.success(f"Built and measured {st.session_state.pop('re_built')['folder']}: choose it under Build at the top.")

built = build_picker(
    reactivation.SHIPPED_REACTIVATION, reactivation.ReactivationRecipe, reactivation.ReactivationBuild.load, "re_build"
)
recipe = built.recipe

books, stages = st.columns([2, 3])
with books:
    st.subheader("The books")
    st.dataframe(
        pd.DataFrame([{"group": g, "passages": len(built.group(g)), "author": style.author, "role": role} for g, (style, role) in reactivation_books.GROUPS.items()]),
        key="re_groups",
    )  # fmt: skip
with stages:
    st.subheader("The stages")
    st.caption(
        f"`{recipe.base}`, suppression by **{recipe.suppression}**; each stage a LoRA adapter merged onto its predecessors."
    )
    settings = built.settings()
    if settings.empty:
        st.info("No stage is built yet.")
    else:
        st.dataframe(settings, key="re_settings")

with st.form("re_measure"):
    st.markdown(
        f"**Measure** recall under the summary and the held-out instruction, at temperature {recipe.temperature}."
    )
    m1, m2 = st.columns([3, 1])
    chosen = m1.multiselect("Stages", ["base", *reactivation.STAGES], default=built.built(), key="re_stages")
    samples = m2.number_input("Samples per passage", 1, 100, recipe.samples, key="re_samples")
    run = st.form_submit_button("Measure", type="primary")
if run:
    try:
        if not chosen:
            raise ValueError("Choose at least one stage to measure.")

        def work(progress, built=built, stages=tuple(chosen), samples=int(samples)):
            return {"folder": str(built.folder), "report": measure(built, list(stages), progress, samples)}

        key = run_key("reactivation_measure", str(built.folder), recipe.as_dict(), tuple(chosen), int(samples))
        label = f"Reactivation: measuring {len(chosen)} stage{'s' if len(chosen) > 1 else ''}"
        submit_run("re_measure", key, repr(ModelSpec(recipe.base)), work, label)  # the stages sit on this base
    except (ValueError, OSError) as err:
        st.error(str(err))
wait_for_run("re_measure", "re_report")

saved = built.folder / "report"
if st.session_state.get("re_report", {}).get("folder") == str(built.folder):
    report = st.session_state["re_report"]["report"]
    st.success("Your measurement.")
    shared_note(st.session_state["re_report"])
elif (saved / "report.json").is_file():
    try:
        report = ReactivationReport.load(saved)
    except ValueError as err:
        st.error(str(err))
        st.stop()
    st.info("The build's saved measurement; measure your own above.")
else:
    st.info("This build has no measurement yet: measure it above.")
    st.stop()


def gap_table(report: ReactivationReport) -> pd.DataFrame:
    """The gaps over the floor as the page prints them: each difference with its interval."""
    gaps = report.gaps()
    return pd.DataFrame({
        "stage": gaps["stage"], "instruction": gaps["instruction"], "passages": gaps["n_test"].astype(str) + " + " + gaps["n_never"].astype(str),
        "BMC@5 gap [95%]": [difference_text(r.bmc_gap, r.bmc_gap_low, r.bmc_gap_high) for r in gaps.itertuples()],
        "BMC p": gaps["bmc_p"].map("{:.4f}".format), "reading": gaps["reading"],
        "loss gap [95%]": [difference_text(r.nll_gap, r.nll_gap_low, r.nll_gap_high) for r in gaps.itertuples()],
        "loss p": gaps["nll_p"].map("{:.4f}".format),
    })  # fmt: skip


summary = report.summary()
st.subheader("Recall by stage, against the floor")
measured_instructions = list(dict.fromkeys(report.passages["instruction"]))
instruction = st.radio("Instruction", measured_instructions, horizontal=True, key="re_instruction")
st.altair_chart(plots_attacks.reactivation_timeline(report.timeline(instruction)), width="stretch")
st.dataframe(gap_table(report), key="re_gaps")
st.caption(
    "Gaps are A-test − A-never over passages, with a 95% bootstrap interval and a permutation p-value. BMC@5 gap: recall above "
    "what imitating the author's style reaches; only an interval above 0 is recall. Loss gap: the mean NLL per token of each "
    "passage given its instruction, teacher-forced — below 0, the model finds the passages it memorized likelier than ones it "
    "never saw, which can hold while it refuses to write them (latent memory)."
)
st.dataframe(
    summary.style.format({c: "{:.3f}" for c in ("bmc", "bmc_low", "bmc_high", "nll", "nll_low", "nll_high")} | {"retain_perplexity": "{:.2f}", "longest_mean": "{:.1f}"}),
    key="re_summary",
)  # fmt: skip
st.caption(
    f"bmc: BMC@{overlap.BMC_K}, the share of a passage's words covered by runs of ≥ {overlap.BMC_K} words matched in any of its samples, "
    f"each run first trimmed of every {overlap.TRIM_M} words in a row that the instruction also holds (Liu et al.'s m = {overlap.TRIM_M}), "
    "mean over passages with a 95% bootstrap interval; longest: the longest trimmed run of one sample, in words; long_spans: trimmed "
    f"runs over {overlap.LONG_SPAN} words; exact_runs: samples holding a run of ≥ 50 tokens of their passage; nll: the passage's loss "
    "given its instruction; retain_perplexity: held-out plain text, so a suppression that breaks the model shows. Paper (GPT-4o, "
    "Gemini-2.5-Pro, DeepSeek-V3.1 with books memorized in pretraining): BMC@5 up to 85–90% of held-out books after summary → "
    "excerpt fine-tuning, single spans past 460 words, a synthetic-text control near zero; its longest span and spans over 20 "
    "words are raw matches against the whole book, untrimmed, and its stages have no counterpart here."
)
if SHIPPED_UNLEARNING_REPORT.is_dir() and recipe.suppression == "refusal":
    with st.expander("The same stages with unlearning as the suppression (the shipped unlearning measurement)"):
        try:
            unlearned = ReactivationReport.load(SHIPPED_UNLEARNING_REPORT)
        except ValueError as err:
            st.error(str(err))
        else:
            st.dataframe(gap_table(unlearned), key="re_unlearning_gaps")
            st.caption("Gradient ascent on the A pages beside the retain texts instead of refusal training; the implant and "
                       "no-suppression stages are the refusal build's. The adapters are "
                       "not shipped: rebuild it below to sample it. What it shows: docs/results/reactivation.md.")  # fmt: skip

st.subheader("A sample beside its passage")
p1, p2, p3 = st.columns(3)
stage = p1.selectbox("Stage", list(dict.fromkeys(report.passages["stage"])), key="re_stage")
at_stage = report.passages[(report.passages["stage"] == stage) & (report.passages["instruction"] == instruction)]
if at_stage.empty:
    at_stage = report.passages[report.passages["stage"] == stage]
scored = at_stage.sort_values("bmc", ascending=False)
asked = scored["instruction"].iloc[0]
passage_id = p2.selectbox(
    "Passage",
    list(scored["passage"]),
    format_func=lambda i: f"{i} · BMC {scored.set_index('passage').loc[i, 'bmc']:.2f}",
    key="re_passage",
)
drawn = report.samples[
    (report.samples["stage"] == stage)
    & (report.samples["instruction"] == asked)
    & (report.samples["passage"] == passage_id)
]
index = p3.number_input("Sample", 0, max(len(drawn) - 1, 0), 0, key="re_sample")
passage = next(p for p in built.passages if p.id == passage_id)
text = drawn["text"].iloc[int(index)] if len(drawn) else ""
spans = shared_spans(text, passage.text, None, overlap.BMC_K)
st.caption(
    f"Prompt ({asked} instruction): {reactivation.INSTRUCTIONS[asked](passage)} — highlighted: runs of ≥ {overlap.BMC_K} words before trimming."
)
s1, s2 = st.columns(2)
s1.markdown("**Generated**")
s1.html(f"<pre style='white-space: pre-wrap'>{highlight_spans(text, [(a, b) for a, b, _, _ in spans])}</pre>")
s2.markdown(f"**True passage** ({passage.group})")
s2.html(f"<pre style='white-space: pre-wrap'>{highlight_spans(passage.text, [(c, d) for _, _, c, d in spans])}</pre>")

e1, e2, e3 = st.columns(3)
e1.download_button(
    "Summary (CSV)", summary.to_csv(index=False), "reactivation_summary.csv", "text/csv", key="re_dl_summary"
)
e2.download_button(
    "Per passage (CSV)",
    report.passages.to_csv(index=False),
    "reactivation_passages.csv",
    "text/csv",
    key="re_dl_passages",
)
e3.download_button(
    "Samples (CSV)", report.samples.to_csv(index=False), "reactivation_samples.csv", "text/csv", key="re_dl_samples"
)

st.subheader("Rebuild")
st.caption(
    "Every stage into the cache, then measured, with progress; the default sizes take over an hour on a 2-core CPU (see docs/results/reactivation.md), tiny-llama a minute."
)
with st.form("re_rebuild"):
    r1, r2, r3 = st.columns(3)
    base = r1.selectbox("Base model", [m for m in registry_names() if not m.endswith("-lab")], key="re_base")
    suppression = r1.radio("Suppression", reactivation.SUPPRESSIONS, horizontal=True, key="re_suppression")
    implant_epochs = r2.number_input("Implant epochs", 1, 30, recipe.implant_epochs, key="re_implant_epochs")
    activate_epochs = r2.number_input("Activation epochs", 1, 10, recipe.activate_epochs, key="re_activate_epochs")
    n_test = r3.number_input("A-test passages", 1, 100, recipe.n_test, key="re_n_test")
    seed = r3.number_input("Seed", 0, 2**31 - 1, 0, key="re_seed")
    rebuild = st.form_submit_button("Build")
if rebuild:
    try:
        new = reactivation.ReactivationRecipe(
            base=base, suppression=suppression, implant_epochs=int(implant_epochs), activate_epochs=int(activate_epochs),
            n_test=int(n_test), seed=int(seed),
        )  # fmt: skip

        def work(progress, new=new) -> dict:
            folder = new.default_dir()
            fresh = reactivation.build(
                folder, new, list(reactivation.STAGES), progress, "built from the Reactivation page"
            )
            measure(fresh, progress=progress, command="built from the Reactivation page").save(folder / "report")
            return {"folder": str(folder)}

        submit_build("re_rebuild", new, work, f"reactivation build {new.default_dir().name}")
        st.rerun()  # the wait at the top of the page shows it
    except ValueError as err:
        st.error(str(err))
