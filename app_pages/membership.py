import pandas as pd
import streamlit as st

from workbench import audit, canary_card, membership, plots_attacks
from workbench.config import DEFAULT_MODEL, ModelSpec
from workbench.lab import lab_dataset_for
from workbench.registry import registry_names
from workbench.runs import run_key
from workbench.similarity import MAX_UPLOAD_BYTES, parse_texts
from workbench.ui import active_session
from workbench.ui.model import shared_session
from workbench.ui.pii import shipped_backdoor_card, shipped_lab_card, show_card
from workbench.ui.runs import shared_note, submit_run, wait_for_run

NO_REFERENCE = "(none)"
SHIPPED = membership.SHIPPED_MEMBERSHIP

st.title("Membership")
st.caption(
    "Can an attacker tell which texts a model was fine-tuned on, and how much privacy did the training lose? Each text "
    "gets the standard scores — loss, zlib ratio, Min-K%, Min-K%++ (in-process models only), the ratio to a reference "
    "model — read as ROC curves, AUC and the true-positive rate at 1% and 0.1% false positives. The floor is a blind "
    "baseline that sees only the texts (a cross-validated character n-gram classifier): an attack is worth what it adds "
    "over what the texts alone give away. The audit turns the lab's canaries into a lower bound on ε."
)


def show_report(report: membership.MembershipReport, key: str) -> None:
    curves = pd.concat([report.roc(attack) for attack in report.attacks])
    summary = report.summary()
    values = report.values
    left, right = st.columns([3, 2])
    left.altair_chart(
        plots_attacks.roc_curves(
            curves, f"{values['target']}: {values['members']} members, {values['nonmembers']} non-members"
        ),
        width="stretch",
    )
    right.dataframe(membership.readable(summary), key=f"{key}_summary", hide_index=True)
    right.caption(
        "Intervals: 95% bootstrap (members and non-members resampled apart). TPR at an FPR is not estimable where one "
        "non-member is more than that share. AUC − blind is on the same resampled texts; only an interval above 0 is an "
        f"attack that beats the texts alone. Reference model: {values['reference'] or 'none'}."
    )


def show_audit(table: pd.DataFrame, key: str) -> None:
    shown = table.assign(**{
        "ε lower bound": table["epsilon_lower"].map("{:.2f}".format), "largest showable": table["max_epsilon"].map("{:.2f}".format),
        "exposure (bits)": table["exposure"].map("{:.2f}".format), "never-inserted exposure": table["exposure_never"].map("{:.2f}".format),
    })  # fmt: skip
    columns = [
        c
        for c in (
            "lab",
            "canaries",
            "n_inserted",
            "n_never",
            "exposure (bits)",
            "never-inserted exposure",
            "ε lower bound",
            "largest showable",
            "tp",
            "fp",
        )
        if c in shown
    ]
    st.dataframe(shown[columns], key=key, hide_index=True)
    st.caption(
        f"ε lower bound at δ = {audit.DELTA:g}, 95% confidence, from Clopper–Pearson bounds on the rate at which canaries "
        "are flagged above a threshold, six thresholds fixed in advance with a Bonferroni correction. It assumes the "
        "secrets are independent draws of one generator; a canary inserted r times bounds the ε of a group of r records. "
        "0 means nothing could be shown; 'largest showable' is the bound at perfect separation for those counts."
    )


st.subheader("The shipped lab (measured, no model call)")
if (SHIPPED / "membership" / "report.json").is_file():
    try:
        show_report(membership.MembershipReport.load(SHIPPED / "membership"), "mi_shipped")
        show_audit(pd.read_csv(SHIPPED / "audit.csv"), "mi_shipped_audit")
    except (ValueError, OSError) as err:
        st.error(str(err))
    st.caption(
        "From `benchmarks/membership_eval.py` (data/membership/manifest.json: command, code version, seeds, times); discussion in docs/results/membership.md."
    )
    st.markdown("**One card per canary**: each planted secret followed through every shipped run on the lab")
    try:
        show_card(shipped_lab_card(), "mi_shipped_card")
        with st.expander("The backdoor build's canaries, followed through its victims"):
            show_card(shipped_backdoor_card(), "mi_backdoor_card")
    except (ValueError, OSError) as err:
        st.error(str(err))
else:
    st.info("No shipped measurement: run `python benchmarks/membership_eval.py --out data/membership`.")

st.subheader("Run the attacks")
session = active_session()
if session is None:
    st.warning("No model is loaded: pick one in the sidebar.")
    st.stop()
dataset = lab_dataset_for(session.spec)
LAB_SETS, UPLOAD = "The lab's members and same-style non-members", "Upload members and non-members"
sources = ([LAB_SETS] if dataset is not None else []) + [UPLOAD]
with st.form("mi_form"):
    source = st.radio("Texts", sources, horizontal=True, key="mi_source")
    c1, c2 = st.columns(2)
    member_file = c1.file_uploader(
        "Members (.txt, one per line, or .jsonl)",
        type=["txt", "jsonl"],
        key="mi_members",
        max_upload_size=MAX_UPLOAD_BYTES // 1_000_000,
    )
    nonmember_file = c2.file_uploader(
        "Non-members", type=["txt", "jsonl"], key="mi_nonmembers", max_upload_size=MAX_UPLOAD_BYTES // 1_000_000
    )
    d1, d2, d3 = st.columns(3)
    n_nonmembers = d1.number_input("Lab non-members", 100, 10_000, membership.MIN_NONMEMBERS, key="mi_n_nonmembers")
    options = [NO_REFERENCE, *registry_names()]
    reference_name = d2.selectbox(
        "Reference model", options, index=options.index(DEFAULT_MODEL) if dataset is not None else 0, key="mi_reference"
    )
    k = d3.slider("Min-K% share", 0.05, 1.0, 0.2, 0.05, key="mi_k")
    run = st.form_submit_button("Score", type="primary")
if run:
    try:
        if source == LAB_SETS:
            members, nonmembers = membership.lab_sets(dataset, int(n_nonmembers))
        else:
            if member_file is None or nonmember_file is None:
                raise ValueError("Upload both a members file and a non-members file.")
            members, nonmembers = (
                [t for _, t in parse_texts(f.name, f.getvalue())] for f in (member_file, nonmember_file)
            )
        reference = None if reference_name == NO_REFERENCE else shared_session(ModelSpec(reference_name))

        def work(progress):
            return {"report": membership.run_membership(session, members, nonmembers, reference, k, progress=progress)}

        reference_spec = None if reference is None else reference.spec
        key = run_key("membership", session.spec, reference_spec, members, nonmembers, k)
        label = f"{session.info.name}: membership attacks on {len(members) + len(nonmembers)} texts"
        submit_run("mi", key, repr(session.spec), work, label)  # a reference model is scored in the target's turn
    except (ValueError, OSError, RuntimeError) as err:
        st.error(str(err))
wait_for_run("mi", "mi_report")
if "mi_report" in st.session_state:
    show_report(st.session_state["mi_report"]["report"], "mi_yours")
    shared_note(st.session_state["mi_report"])

st.subheader("Audit the canaries")
if dataset is None:
    st.info("The audit needs a lab model (its inserted canaries are known): pick one in the sidebar.")
    st.stop()
with st.form("mi_audit_form"):
    a1, a2, a3 = st.columns(3)
    n_never = a1.number_input("Never-inserted canaries", 10, 2000, 100, key="mi_n_never")
    alternatives = a2.number_input("Alternative secrets per canary", 2, 1000, 20, key="mi_alternatives")
    null = a3.checkbox("Null lab: label half the canaries 'inserted' at random", key="mi_null")
    audit_run = st.form_submit_button("Audit")
if audit_run:
    try:

        def audit_work(progress):
            scores = audit.run_audit(session, dataset, int(n_never), int(alternatives), progress=progress)
            return {"scores": audit.null_labels(scores) if null else scores}

        key = run_key("membership_audit", session.spec, int(n_never), int(alternatives), null)
        submit_run("mi_audit", key, repr(session.spec), audit_work, f"{session.info.name}: canary audit")
    except (ValueError, OSError, RuntimeError) as err:
        st.error(str(err))
wait_for_run("mi_audit", "mi_audit")
if "mi_audit" in st.session_state:
    scores = st.session_state["mi_audit"]["scores"]
    shared_note(st.session_state["mi_audit"])
    show_audit(audit.audit_table(scores), "mi_audit_table")
    st.dataframe(scores, key="mi_audit_scores", hide_index=True)
    st.markdown(
        "**This lab's canary cards**: the audit above, and this session's Repeated tokens run when it was on this model"
    )
    last = st.session_state.get("rt_result")
    runs = (
        [canary_card.Run("repeated tokens (this session)", last["table"], "the Repeated tokens page")]
        if last and last["model"] == session.info.name
        else []
    )
    try:
        show_card(canary_card.card(dataset, runs, scores), "mi_audit_card")
    except ValueError as err:
        st.info(f"No card for this audit: {err}")
