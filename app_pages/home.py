import streamlit as st

from workbench import gallery, plots
from workbench.ui import active_session
from workbench.ui.params import query

st.title("Memorization Workbench")
st.markdown(
    """
Language models **memorize** parts of their training data, and the right prompts make them
**leak** it: verbatim passages, secrets that appeared a few times, or statistics of a private
fine-tuning set. This workbench lets you measure that on a real model, step by step, with
every result reproducible from the same library call in a notebook or the `workbench` CLI.

**The explorations**
1. **Repeated tokens** — prompts such as *"poem poem poem …"* make a model escape the
   repetition and emit text; find where it diverges, score what came out and look it up in a
   reference corpus.
2. **Attention sinks** — which heads pour their attention onto the first token, how repeated
   tokens imitate it, and whether scaling those heads down stops the leak.
3. **Property inference** — from sampled generations alone, estimate population shares in the
   fine-tuning data (e.g. how many patients had a diagnosis), with confidence intervals.
4. **Compare** — match extracted text to candidate documents with string metrics and
   embedding similarity, and map them with UMAP.
5. **Weight diff** — with base and fine-tuned weights, rank candidate texts by how well their
   gradients explain the weight change, to approximate the fine-tuning data.
6. **Backdoor extraction** — a backdoored open model makes its downstream fine-tune recite
   the private fine-tuning queries to whoever knows the trigger.
7. **Reactivation** — does a model trained to stop reciting memorized passages recite them again
   after a benign fine-tune? Measured stage by stage against passages it never saw.
8. **Membership** — can an attacker tell who was in the fine-tuning set, beyond what the texts
   alone give away, and how much privacy did training lose (an ε lower bound from canaries)?

A **ground-truth lab** builds a synthetic private fine-tuning set with known shares and canary
secrets, so every exploration can be scored against the truth.
"""
)

session = active_session()
if session is None:
    st.info("The sidebar loads the model after this page; the gallery below needs none.")
else:
    refusal = session.weights_refusal("Attention sinks or weight diff")
    st.success(
        f"Working on **{session.summary()}**."
        + (
            " The black-box pages run over it; attention sinks and weight diff need weights and ask for an in-process model."
            if refusal
            else ""
        )
    )
st.caption(
    "Pick another model in the sidebar: a registry name, a Hugging Face id, a local folder, a "
    ".gguf file or a model served over an OpenAI-compatible endpoint (vLLM). Property inference and Weight diff choose their own models (by default the lab model "
    "and its base), so that they can be scored against the lab's truth."
)

entries = gallery.load()
if entries:
    st.header("Gallery")
    st.caption(
        "First one planted secret followed through every shipped run on the lab model, then one real result per exploration, "
        "built by `workbench gallery build` with fixed seeds on the lab model and the default model (backdoor extraction, "
        "reactivation and membership from their shipped runs). Each link opens its page with the same settings filled in, ready to run live."
    )
    for entry in entries:
        with st.container(border=True):
            st.subheader(entry["title"])
            st.markdown(entry["sentence"])
            st.altair_chart(plots.gallery_figure(entry["name"], entry["table"]), width="stretch")
            st.page_link(
                f"app_pages/{entry['page']}.py", label="Open with these settings", icon=":material/open_in_new:",
                query_params=query(entry["settings"]),
            )  # fmt: skip
