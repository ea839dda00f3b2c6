import pandas as pd
import streamlit as st

from workbench import plots
from workbench.corpus import REFERENCE_CORPUS, read_documents
from workbench.lab import SHIPPED_LAB
from workbench.lab_data import LabDataset
from workbench.overlap import DEFAULT_MIN_TOKENS
from workbench.runs import run_key
from workbench.similarity import (
    MAX_UPLOAD_BYTES,
    best_per_text,
    compare,
    parse_texts,
    passages,
    project,
    shared_spans,
    similarity_matrix,
)
from workbench.ui import active_session, last_result
from workbench.ui.params import param_list
from workbench.ui.pii import highlighted, note, with_pii
from workbench.ui.runs import shared_note, submit_run, wait_for_run
from workbench.ui.text import highlight_spans

UPLOAD_MB = MAX_UPLOAD_BYTES // 1_000_000
HEATMAP_LIMIT = 60  # texts per side beyond which the heatmap is unreadable
LAST_RUN, PASTE, UPLOAD = "Last repeated-tokens run", "Paste", "Upload"
REFERENCE, LAB = "Reference corpus (shipped)", "Lab training set"
EMBEDDINGS = "embeddings: all-MiniLM-L6-v2"  # the run board's queue for this page's embedding work

st.title("Compare")
st.caption(
    "Which document did an extracted text come from, and how closely? Exact matching undercounts leaks — a "
    "near-verbatim copy with a few edits shares no long exact run — so every pair also gets edit-distance "
    "ratios and the cosine similarity of MiniLM sentence embeddings. Definitions: docs/reference.md; personal data "
    "in what leaks: docs/results/pii.md."
)
session = active_session()


def _lab_records() -> list[tuple[str, str]]:
    return [(r["id"], r["text"]) for r in LabDataset.load(SHIPPED_LAB / "dataset").records]


def _last_run_texts() -> list[tuple[str, str]]:
    table = st.session_state["rt_result"]["table"]
    escaped = table[(table["outcome"] == "escaped") & (table["escaped_text"].str.strip() != "")]
    return [(f"{r.word}×{r.repeats} T{r.temperature:g} #{r.sample}", r.escaped_text) for r in escaped.itertuples()]


left, right = st.columns(2)
left.subheader("Extracted texts")
sources = ([LAST_RUN] if "rt_result" in st.session_state else []) + [PASTE, UPLOAD]
linked_texts = param_list("texts", [])
extracted_source = left.radio(
    "Source", sources, index=sources.index(PASTE) if linked_texts else 0, horizontal=True, key="cmp_extracted_source"
)
if extracted_source == LAST_RUN:
    left.caption(f"{len(_last_run_texts())} escaped texts from the Repeated tokens page (escaped samples only).")
pasted = left.text_area(
    "One text per line", "\n".join(linked_texts), height=150, key="cmp_paste", disabled=extracted_source != PASTE,
    placeholder="Paste extracted texts here, one per line",
)  # fmt: skip
extracted_file = left.file_uploader(
    ".txt (one text per line) or .jsonl", type=["txt", "jsonl"], key="cmp_extracted_file",
    disabled=extracted_source != UPLOAD, max_upload_size=UPLOAD_MB,
)  # fmt: skip
extracted_field = left.text_input("JSONL field", "text", key="cmp_extracted_field", disabled=extracted_source != UPLOAD)

right.subheader("Candidate documents")
candidate_source = right.radio("Source", [REFERENCE, LAB, UPLOAD], horizontal=True, key="cmp_candidate_source")
candidate_file = right.file_uploader(
    ".txt (one text per line) or .jsonl", type=["txt", "jsonl"], key="cmp_candidate_file",
    disabled=candidate_source != UPLOAD, max_upload_size=UPLOAD_MB,
)  # fmt: skip
candidate_field = right.text_input(
    "JSONL field", "text", key="cmp_candidate_field", disabled=candidate_source != UPLOAD
)
passage_words = right.number_input(
    "Cut candidates into passages of (words; 0 = whole documents)", 0, 10_000, 0, key="cmp_passage_words",
    help="Embeddings see only a text's first ~256 tokens, so a short excerpt scores low against a whole long document.",
)  # fmt: skip

c1, c2, c3 = st.columns(3)
top_k = c1.number_input(
    "Candidates scored per text", 1, 50, 3, key="cmp_top_k",
    help="The best ones by cosine and by edit ratio; every candidate sharing an exact run of the length on the right is scored too.",
)  # fmt: skip
min_run = c3.number_input("Exact run that counts as extracted", 1, 10_000, DEFAULT_MIN_TOKENS, key="cmp_min_run")
token_options = ["model tokens", "words"] if session is not None else ["words"]
unit = c2.radio(
    "Count runs in", token_options, horizontal=True, key="cmp_unit",
    help="Model tokens use the sidebar model's tokenizer (as the 50-token rule of Nasr et al. does).",
)  # fmt: skip


def _uploaded(file, field: str, what: str) -> list[tuple[str, str]]:
    if file is None:
        # A file whose upload is still under way reaches the app only with the rerun after it.
        raise ValueError(
            f"Upload a .txt or .jsonl file of {what} (one still uploading counts once its upload has finished)."
        )
    return parse_texts(file.name, file.getvalue(), field.strip() or "text")


def _read_inputs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    if extracted_source == LAST_RUN:
        extracted = _last_run_texts()
        if not extracted:
            raise ValueError("The last repeated-tokens run has no escaped samples with text.")
    elif extracted_source == PASTE:
        extracted = [(f"pasted:{i}", line.strip()) for i, line in enumerate(pasted.splitlines(), 1) if line.strip()]
        if not extracted:
            raise ValueError("Paste at least one extracted text (one per line).")
    else:
        extracted = _uploaded(extracted_file, extracted_field, "extracted texts")
    if candidate_source == REFERENCE:
        candidates = read_documents(REFERENCE_CORPUS)
    elif candidate_source == LAB:
        candidates = _lab_records()
    else:
        candidates = _uploaded(candidate_file, candidate_field, "candidate documents")
    return extracted, passages(candidates, int(passage_words)) if passage_words else candidates


if st.button("Compare", type="primary", key="cmp_run"):
    try:
        extracted, candidates = _read_inputs()
        tokenizer = session.tokenizer if unit == "model tokens" else None

        def work(
            progress,
            inputs=(extracted, candidates, tokenizer),
            settings=(unit, int(top_k), int(min_run), candidate_source),
        ):
            extracted, candidates, tokenizer = inputs
            unit, top_k, min_run, candidate_source = settings
            table = compare(
                [t for _, t in extracted], [t for _, t in candidates], top_k, tokenizer, min_run, progress=progress
            )
            table.insert(0, "extracted_id", [extracted[i][0] for i in table["extracted_index"]])
            table.insert(1, "candidate_id", [candidates[j][0] for j in table["candidate_index"]])
            return {
                "table": table, "extracted": extracted, "candidates": candidates, "unit": unit, "min_run": min_run,
                "tokenizer": tokenizer, "candidate_source": candidate_source,
            }  # fmt: skip

        tokens_of = session.spec if tokenizer is not None else "words"  # runs are counted in this model's tokens
        key = run_key("compare", extracted, candidates, int(top_k), tokens_of, int(min_run), candidate_source)
        submit_run("cmp", key, EMBEDDINGS, work, f"Compare: {len(extracted)} texts × {len(candidates)} candidates")
        # the map drew the previous comparison, and one still being drawn would too
        st.session_state.pop("cmp_map", None)
        pending_map = st.session_state.pop("cmp_map_ticket", None)
        if pending_map is not None:
            pending_map.cancel()
    except ValueError as err:
        st.error(str(err))
wait_for_run("cmp", "cmp_result")

result = last_result(
    "cmp_result", "Choose extracted texts and candidates, then Compare. Results stay here while you change the inputs."
)

table, extracted, candidates = result["table"], result["extracted"], result["candidates"]
tokenizer = result["tokenizer"]  # the one the runs were counted with, for the highlights
st.subheader("Best matches")
shared_note(result)
cosine_threshold = st.slider(
    f"Call a text extracted at cosine ≥ … (or at an exact run of ≥ {result['min_run']} {result['unit']})",
    0.0, 1.0, 0.8, 0.01, key="cmp_cosine_threshold",
)  # fmt: skip
best = best_per_text(table, cosine_threshold, result["min_run"])
typed = with_pii(best, "extracted_text")
typed = typed if typed is None else with_pii(typed, "candidate_text", "candidate_")
best = best if typed is None else typed
m1, m2, m3, m4 = st.columns(4)
m1.metric("Extracted texts", len(extracted))
m2.metric("Called extracted", f"{int(best['extracted'].sum())} ({best['extracted'].mean():.0%})")
m3.metric("Longest exact run", int(best["max_longest_run"].max()))
if typed is not None:
    held = best["pii"] != ""
    m4.metric("With personal data", f"{int(held.sum())} of {len(best)}", help=note())
    st.caption(
        f"{note()} The pii columns name the types, pii_spans the text found; a finding is a pattern match, not a leak."
    )
st.dataframe(
    best.drop(columns=["extracted_index", "candidate_index", "exact_run"]),
    key="cmp_best", hide_index=True,
    column_config={"cosine": st.column_config.ProgressColumn("cosine", min_value=0.0, max_value=1.0, format="%.3f")},
)  # fmt: skip

st.subheader("Side by side")
row = st.selectbox(
    "Extracted text", range(len(best)), key="cmp_row",
    format_func=lambda i: f"{best['extracted_id'].iloc[i]} → {best['candidate_id'].iloc[i]} (cosine {best['cosine'].iloc[i]:.2f})",
)  # fmt: skip
pairs = table[table["extracted_index"] == best["extracted_index"].iloc[row]].reset_index(drop=True)
pair = st.selectbox(
    "Candidate", range(len(pairs)), key="cmp_pair",
    format_func=lambda j: f"{pairs['candidate_id'].iloc[j]} (cosine {pairs['cosine'].iloc[j]:.2f}, run {pairs['longest_run'].iloc[j]})",
)  # fmt: skip
min_highlight = st.number_input("Highlight shared runs of at least (tokens)", 1, 1000, 3, key="cmp_min_highlight")
chosen = pairs.iloc[pair]
spans = shared_spans(chosen["extracted_text"], chosen["candidate_text"], tokenizer, int(min_highlight))
s1, s2 = st.columns(2)
s1.markdown(f"**Extracted** `{chosen['extracted_id']}`")
s1.html(
    f"<pre style='white-space: pre-wrap'>{highlight_spans(chosen['extracted_text'], [(a, b) for a, b, _, _ in spans])}</pre>"
)
s2.markdown(f"**Candidate** `{chosen['candidate_id']}`")
s2.html(
    f"<pre style='white-space: pre-wrap'>{highlight_spans(chosen['candidate_text'], [(c, d) for _, _, c, d in spans])}</pre>"
)
with st.expander("Personal data in this pair (Presidio)"):
    p1, p2 = st.columns(2)
    highlighted(chosen["extracted_text"], p1)
    highlighted(chosen["candidate_text"], p2)
st.caption(
    f"levenshtein ratio {chosen['levenshtein_ratio']:.2f} · partial ratio {chosen['partial_ratio']:.2f} · "
    f"longest run {chosen['longest_run']} · token Jaccard {chosen['token_jaccard']:.2f} · {len(spans)} shared runs highlighted"
)

if len(extracted) <= HEATMAP_LIMIT and len(candidates) <= HEATMAP_LIMIT:
    matrix = similarity_matrix([t for _, t in extracted], [t for _, t in candidates])
    heat = pd.DataFrame(
        [
            {"extracted": e, "candidate": c, "cosine": float(matrix[i, j])}
            for i, (e, _) in enumerate(extracted)
            for j, (c, _) in enumerate(candidates)
        ]
    )
    st.altair_chart(plots.similarity_heatmap(heat), width="stretch")
else:
    st.caption(f"The heatmap is drawn for up to {HEATMAP_LIMIT} texts per side.")

st.subheader("Map")
include_lab = st.checkbox(
    "Add the lab training set", key="cmp_map_lab", value=False,
    help="Places the lab's private training records on the same map (skipped when they are already the candidates).",
)  # fmt: skip
if st.button("Draw UMAP map", key="cmp_map_run"):
    texts = [(t, "extracted") for _, t in extracted] + [(t, "candidate") for _, t in candidates]
    try:
        if include_lab and result["candidate_source"] != LAB:
            texts += [(t, "lab training") for _, t in _lab_records()]

        def work(progress, texts=texts):
            progress(0.0, f"Embedding and projecting {len(texts)} texts (the first map also compiles UMAP, ~20 s)…")
            return {"map": project([t for t, _ in texts], [g for _, g in texts], seed=0)}

        submit_run("cmp_map", run_key("compare_map", texts, 0), EMBEDDINGS, work, f"Compare: map of {len(texts)} texts")
    except ValueError as err:
        st.error(str(err))
wait_for_run("cmp_map", "cmp_map")
if "cmp_map" in st.session_state:
    st.altair_chart(
        plots.text_map(st.session_state["cmp_map"]["map"], "Extracted vs candidate texts (UMAP, seed 0)"),
        width="stretch",
    )

d1, d2, d3 = st.columns(3)
d1.download_button("Best matches (CSV)", best.to_csv(index=False), "compare_best.csv", "text/csv", key="cmp_dl_best")
d2.download_button(
    "All scored pairs (CSV)", table.to_csv(index=False), "compare_pairs.csv", "text/csv", key="cmp_dl_csv"
)
d3.download_button(
    "All scored pairs (JSONL)",
    table.to_json(orient="records", lines=True),
    "compare_pairs.jsonl",
    "application/jsonl",
    key="cmp_dl_jsonl",
)
