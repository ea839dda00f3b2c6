import json
from pathlib import Path

import pandas as pd
import streamlit as st

from workbench import plots
from workbench.cache import cache_dir
from workbench.lab import SHIPPED_LAB, LabRecipe, build, loss_curve, truth_table
from workbench.lab_data import DEFAULT_SHARES, LabDataset
from workbench.lab_vocabulary import DIAGNOSES
from workbench.registry import registry_names
from workbench.ui.runs import submit_build, wait_for_run

st.title("Ground-truth lab")
st.caption(
    "A synthetic private fine-tuning set whose contents are known — patient–doctor dialogues with known "
    "diagnosis and gender shares, plus canary secrets inserted 1 to 16 times — and a LoRA fine-tune of the "
    "default model on it (registry name `smollm2-135m-instruct-lab`). Every exploration can be scored against it; "
    "their results against it: docs/results/."
)

builds = {"shipped (data/lab)": SHIPPED_LAB} | {
    f"rebuilt: {p.name}": p for p in sorted((cache_dir() / "lab").glob("*")) if (p / "build.json").is_file()
}
# A build asked for below waits here, above any stop, until it ends: progress, cancel, then its message.
wait_for_run("lab_rebuild_run", "lab_built")
if "lab_built" in st.session_state:
    built = st.session_state.pop("lab_built")
    out = Path(built["folder"])
    message = (
        f"Built {out} and selected it above. To sample from it, enter {out / 'adapter'} in the sidebar's "
        f"Loading options → LoRA adapter folder, with {built['base']} as the model."
    )
    st.session_state["lab_just_built"] = (f"rebuilt: {out.name}", message)
    st.rerun()

if "lab_just_built" in st.session_state:  # set by a rebuild below, before this widget exists
    label, message = st.session_state.pop("lab_just_built")
    st.session_state["lab_build"] = label
    st.success(message)
choice = st.selectbox("Lab build", list(builds), key="lab_build")
folder = builds[choice]
try:
    dataset = LabDataset.load(folder / "dataset")
except ValueError as err:
    st.error(f"{err} Build it with `workbench lab build`.")
    st.stop()

c1, c2 = st.columns([3, 2])
c1.subheader("Truth: shares in the training set")
c1.dataframe(truth_table(dataset).style.format({"requested": "{:.1%}", "realized": "{:.1%}"}), key="lab_truth")
c2.subheader("Canaries")
canaries = pd.DataFrame([c.__dict__ for c in dataset.canaries], columns=["kind", "secret", "insertions", "prefix"])
c2.dataframe(canaries, key="lab_canaries")
inserted = sum(c.insertions for c in dataset.canaries)
c2.caption(
    f"{len(dataset.records)} training records ({inserted} of them canary records), {len(dataset.holdout)} held out. "
    "Each canary is followed through every run on the lab model in its card on the [Membership](membership) page."
)
try:
    st.altair_chart(plots.loss_curve(loss_curve(folder)), width="stretch")
except ValueError as err:
    st.warning(str(err))
recipe_path = folder / "adapter" / "recipe.json"
if recipe_path.is_file():
    with st.expander("Build recipe"):
        st.json(json.loads(recipe_path.read_text()))
        if (folder / "build.json").is_file():
            st.code(json.loads((folder / "build.json").read_text())["command"], language="bash")

st.subheader("Records")
records = pd.DataFrame(dataset.records)
shown = st.multiselect("Diagnoses", sorted(DIAGNOSES), default=sorted(DIAGNOSES), key="lab_filter")
st.dataframe(records[records["diagnosis"].isin(shown) | records["canary"].notna()], key="lab_records", height=300)
d1, d2 = st.columns(2)
d1.download_button(
    "Training records (JSONL)", records.to_json(orient="records", lines=True), "lab_records.jsonl", key="lab_dl_records"
)
d2.download_button(
    "Truth (CSV)", truth_table(dataset).to_csv(index=False), "lab_truth.csv", "text/csv", key="lab_dl_truth"
)

st.subheader("Rebuild with other shares")
st.caption(
    "Builds a new dataset and fine-tunes a private copy of the base model into the cache; other users keep working meanwhile."
)
with st.form("lab_rebuild"):
    cols = st.columns(len(DIAGNOSES))
    shares = {
        name: col.number_input(name, 0.0, 1.0, DEFAULT_SHARES[name], 0.05, key=f"lab_share_{name}")
        for name, col in zip(DIAGNOSES, cols)
    }
    r1, r2, r3, r4, r5 = st.columns(5)
    female = r1.number_input("Female share", 0.0, 1.0, 0.6, 0.05, key="lab_female")
    n = r2.number_input("Records", 10, 5000, 300, key="lab_n")
    canary_text = r3.text_input("Canary insertions", "1, 2, 4, 8, 16", key="lab_canaries_text")
    epochs = r4.number_input("Epochs", 1, 20, 3, key="lab_epochs")
    seed = r5.number_input("Seed", 0, 2**31 - 1, 0, key="lab_seed")
    base = st.selectbox("Base model", [m for m in registry_names() if not m.endswith("-lab")], key="lab_base",
                        help="The default model takes about 10 minutes on a 2-core CPU; tiny-llama seconds.")  # fmt: skip
    submitted = st.form_submit_button("Rebuild", type="primary")
if submitted:
    try:
        counts = [int(c) for c in canary_text.replace(",", " ").split()]
    except ValueError:
        st.error("Canary insertions must be whole numbers, e.g. 1, 2, 4, 8, 16.")
        st.stop()
    try:
        recipe = LabRecipe(
            base=base, n=int(n), shares=shares, gender_shares={"female": female, "male": 1 - female}, canaries=tuple(counts),
            seed=int(seed), epochs=int(epochs),
        )  # fmt: skip
        out = recipe.default_dir()
        if out.exists():
            st.info(f"This recipe is already built (or being built): {out}")
            st.stop()

        def work(progress, recipe=recipe, out=out) -> dict:
            build(out, recipe, progress, "built from the Lab page")
            return {"folder": str(out), "base": recipe.base}

        submit_build("lab_rebuild_run", recipe, work, f"lab build {out.name}")
        st.rerun()  # the wait at the top of the page shows it
    except ValueError as err:  # bad settings, or builds off in workshop mode
        st.error(str(err))
