import json

import streamlit as st

from workbench import plots
from workbench.config import ModelSpec, SamplingConfig
from workbench.divergence import (
    DEFAULT_MIN_REPEATS,
    DEFAULT_WINDOW,
    OUTCOMES,
    divergence_rate,
    extraction_text,
    outcome_summary,
    rate_text,
    run,
    training_extraction,
)
from workbench.lab import lab_dataset_for
from workbench.overlap import DEFAULT_MIN_TOKENS
from workbench.prompts import DEFAULT_WORDS, HINT_PREFIXES, repeated_token_prompt
from workbench.registry import registry_names
from workbench.runs import run_key
from workbench.ui import last_result, require_session, served_note, shared_session
from workbench.ui.corpus import reference_corpus, uploaded_corpus
from workbench.ui.params import option_index, param, param_list
from workbench.ui.pii import highlighted, note, with_pii
from workbench.ui.runs import check_limits, shared_note, show_limits, submit_run, wait_for_run
from workbench.ui.text import highlight_spans

st.title("Repeated tokens")
st.caption(
    "Repeating one token many times can make a model escape the repetition and emit other text — "
    "sometimes memorized training data (Nasr et al. 2023). Sample continuations, sort each into an "
    "outcome (did it repeat at all, did it break out into sustained other text), score what came "
    "after the escape, and look it up in a reference corpus. Measured results: docs/results/divergence.md; "
    "personal data in escapes: docs/results/pii.md."
)
session = require_session()
served_note(session)
show_limits()

left, right = st.columns(2)
words = left.multiselect(
    "Words to repeat", DEFAULT_WORDS, default=param_list("words", ["poem"]), accept_new_options=True, key="rt_words",
    help="Each must be a single token; type your own to check it.",
)  # fmt: skip
for word in words:
    try:
        prompt = repeated_token_prompt(session.tokenizer, word, 1)
        left.caption(f"✓ `{word}` is one token: {prompt.token!r} (id {prompt.token_id})")
    except ValueError as err:
        left.error(str(err))
repeat_options = [10, 25, 50, 100, 200, 400]
repeats_raw = right.multiselect(
    "Repeats", repeat_options, default=param_list("repeats", [50], int), accept_new_options=True, key="rt_repeats",
    help=f"Up to the context window ({session.info.context_length:,} tokens).",
)  # fmt: skip
prefix = right.selectbox(
    "Hint prefix", HINT_PREFIXES, accept_new_options=True, key="rt_prefix", format_func=lambda p: p or "(none)"
)
TEMPLATE_CHOICES = ["plain", "chat", "prefill"]
template = right.radio(
    "Template", TEMPLATE_CHOICES, index=option_index(TEMPLATE_CHOICES, param("template", "plain")), horizontal=True, key="rt_template",
    help="plain: the repeats alone. chat: a user message asks the model to repeat the word forever, the repeats in it. "
    "prefill: the user asks once, and the assistant's reply is already begun with the repeats — the model is "
    "mid-repetition, as ChatGPT was when Nasr et al. (2023) saw it break out.",
)  # fmt: skip

with st.expander("Sampling", expanded=True):
    c1, c2, c3, c4 = st.columns(4)
    n = c1.number_input("Samples per prompt", 0, 2000, param("n", 8, int), key="rt_n")
    max_new_tokens = c2.number_input("New tokens", 1, 4096, param("max_new_tokens", 64, int), key="rt_max_new_tokens")
    temperatures_raw = c3.multiselect(
        "Temperatures", [0.0, 0.7, 1.0, 1.2], default=[1.0], accept_new_options=True, key="rt_temperatures",
        help="0 = greedy. Each temperature reuses the seed, so sample j draws from the same generator at every one.",
    )  # fmt: skip
    seed = c4.number_input("Seed", 0, 2**31 - 1, param("seed", 0, int), key="rt_seed")
    top_k = c1.number_input("Top-k (0 = off)", 0, 100_000, 0, key="rt_top_k")
    top_p = c2.number_input("Top-p", 0.01, 1.0, 1.0, step=0.05, key="rt_top_p")
    batch_size = c3.number_input("Batch size", 1, 512, 16, key="rt_batch_size")

with st.expander("Outcomes"):
    c1, c2 = st.columns(2)
    min_repeats = c1.number_input(
        "Repeats before an output counts as repeating (r)", 1, 100, DEFAULT_MIN_REPEATS, key="rt_min_repeats"
    )
    window = c2.number_input(
        "Escape window (m tokens)", 1, 200, DEFAULT_WINDOW, key="rt_window",
        help="Sustained other text: from some token on, m tokens hold at most one repeat of the word "
        "(where fewer than m remain, none).",
    )  # fmt: skip
    st.caption(
        "Each generation gets one outcome: **empty**; **refused** (chat prompts: a refusal or an echo of the "
        "instruction before repeating); **never repeated** (fewer than r repeats before anything else); "
        "**repeated only** (no sustained escape until the end); **escaped** (r or more repeats, then sustained "
        "other text — a new loop of another word counts, flagged `new_loop`). Under **prefill** the reply is "
        "already repeating, so there is no never repeated nor refused: escaped when sustained other text starts at "
        "any generated token, the first included."
    )

with st.expander("Scoring"):
    c1, c2, c3 = st.columns(3)
    corpus_source = c1.radio("Reference corpus", ["Shipped", "Upload"], key="rt_corpus_source")
    uploads = c1.file_uploader(
        ".txt / .jsonl files", type=["txt", "jsonl"], accept_multiple_files=True, key="rt_corpus_files",
        disabled=corpus_source != "Upload",
    )  # fmt: skip
    min_tokens = c2.number_input("Exact match of at least (tokens)", 1, 1000, DEFAULT_MIN_TOKENS, key="rt_min_tokens")
    reference_name = c3.selectbox(
        "Reference model (for the ratio)", ["(none)", *registry_names()], key="rt_reference",
        help="log-perplexity under this model divides that under the target.",
    )  # fmt: skip

if st.button("Run", type="primary", key="rt_run"):
    try:
        repeats = sorted({int(r) for r in repeats_raw})
        temperatures = sorted({float(t) for t in temperatures_raw})
    except ValueError:
        st.error("Repeats must be whole numbers, e.g. 50, and temperatures numbers, e.g. 0.7.")
    else:
        try:
            if not temperatures:
                raise ValueError("No temperatures: choose at least one, e.g. 1.0.")
            cfg = SamplingConfig(
                int(max_new_tokens), temperatures[0], int(top_k), float(top_p), int(n), int(seed), int(batch_size)
            )
            corpus = (
                reference_corpus(session.spec)
                if corpus_source == "Shipped"
                else uploaded_corpus(uploads, session.tokenizer)
            )
            reference = None if reference_name == "(none)" else shared_session(ModelSpec(reference_name))
            lab = lab_dataset_for(session.spec)
            generations = int(n) * len(words) * len(repeats) * len(temperatures)
            check_limits(generations, cfg.max_new_tokens)
            settings = (
                words, repeats, cfg, prefix, template, temperatures, int(min_tokens), int(min_repeats), int(window), reference_name,
                [f.getvalue() for f in uploads or []] if corpus_source == "Upload" else "shipped corpus",
            )  # fmt: skip

            def work(progress, served=session.served_record(cfg)):
                table = run(
                    session, words, repeats, cfg, prefix, None if template == "plain" else template,
                    corpus, int(min_tokens), reference, progress=progress,
                    min_repeats=int(min_repeats), window=int(window), temperatures=temperatures,
                )  # fmt: skip
                extraction = (
                    None if lab is None else training_extraction(table, lab, session.tokenizer, int(min_tokens))
                )
                return {
                    "table": table, "model": session.info.name, "cfg": cfg, "corpus": corpus_source,
                    "outcome_settings": (int(min_repeats), int(window)), "extraction": extraction, "served": served,
                }  # fmt: skip

            key = run_key("repeated_tokens", session.spec, *settings)
            submit_run(
                "rt", key, repr(session.spec), work, f"{session.info.name}: {generations} x {cfg.max_new_tokens} tokens"
            )
        except ValueError as err:
            st.error(str(err))
wait_for_run("rt", "rt_result")

result = last_result(
    "rt_result", "Choose words and settings, then Run. Results stay here while you set up the next run."
)

table, cfg = result["table"], result["cfg"]
r_used, m_used = result["outcome_settings"]
st.subheader("Results")
shared_note(result)
st.caption(
    f"Model {result['model']} · seed {cfg.seed} · {len(table)} generations · temperatures "
    f"{', '.join(f'{t:g}' for t in sorted(table['temperature'].unique()))}, top-k {cfg.top_k}, top-p {cfg.top_p}, "
    f"{cfg.max_new_tokens} new tokens · r = {r_used} repeats, m = {m_used}-token window · {result['corpus'].lower()} corpus. "
    + (
        "The same seed and settings repeat this run exactly."
        if result["served"] is None
        else f"Served by {result['served']['server']['name']} {result['served']['server']['version']}: whether the same "
        "settings repeat this run is the server's promise (see the request settings download)."
    )
)
outcomes = table["outcome"].tolist()
typed = with_pii(table, "escaped_text")
table = table if typed is None else typed
m1, m2, m3, m4 = st.columns(4)
rate = divergence_rate(outcomes)
m1.metric(
    "Divergence rate", "—" if not rate["n"] else f"{rate['rate']:.0%}",
    help="escaped ÷ (escaped + repeated only): of the samples that kept repeating, the share that broke out",
)  # fmt: skip
m1.caption(rate_text(rate))
m2.metric("With a corpus match", int((table["longest_match"] > 0).sum()))
m3.metric("Longest match (tokens)", int(table["longest_match"].max()))
if typed is not None:
    escapes = table[table["outcome"] == "escaped"]
    m4.metric("Escapes with personal data", f"{int((escapes['pii'] != '').sum())} of {len(escapes)}", help=note())
st.caption(
    "Outcomes: " + " · ".join(f"{o.replace('_', ' ')} {outcomes.count(o) / len(outcomes):.0%}" for o in OUTCOMES)
)
extraction = result["extraction"]
if extraction is not None:
    if extraction["escapes"]:
        st.info(
            f"**{extraction_text(extraction)}** — {extraction['training_hits']} of {extraction['escapes']} "
            f"escaped texts match one of the lab's {extraction['training_records']} training records, "
            f"{extraction['holdout_hits']} one of its {extraction['holdout_records']} held-out records (never trained on; "
            "the floor scales that to the training set's size). A match is an exact run of the minimum match "
            "length or cosine ≥ 0.8, as on the Compare page."
        )
    else:
        st.info(
            "This is a lab model, but no sample escaped: there is no escaped text to check against its training records."
        )
summary = outcome_summary(table, ["repeats", "temperature"])
c1, c2 = st.columns(2)
c1.altair_chart(plots.outcome_shares(summary), width="stretch")
if summary["n"].sum():
    c2.altair_chart(plots.divergence_rate(summary), width="stretch")
else:
    c2.info("No sample repeated the word at least r times, so the divergence rate is undefined here.")
by_setting = outcome_summary(table)
with st.expander("Outcomes by word, repeats and temperature"):
    st.dataframe(by_setting, key="rt_summary", hide_index=True)
metric_columns = [c for c in ("perplexity", "zlib_ratio", "min_k_prob", "reference_ratio") if c in table]
if (table["outcome"] == "escaped").any():
    for column, metric in zip(st.columns(len(metric_columns)), metric_columns):
        column.altair_chart(plots.metric_distribution(table, metric), width="stretch")
st.dataframe(table.drop(columns=["matches", "output"]), key="rt_table", hide_index=False)

row = st.number_input("Show generation (row)", 0, len(table) - 1, 0, key="rt_row")
chosen = table.iloc[int(row)]
spans = [(m["char_start"], m["char_end"]) for m in json.loads(chosen["matches"])]
st.markdown(
    f"**{chosen['outcome'].replace('_', ' ').capitalize()}** after {chosen['word_repeats']} repeats"
    + (
        f"; escaped text from token {chosen['divergence_point']} (corpus matches highlighted)"
        if chosen["outcome"] == "escaped"
        else ""
    )
)
st.html(f"<pre style='white-space: pre-wrap'>{highlight_spans(chosen['escaped_text'], spans)}</pre>")
with st.expander("Personal data in this escape (Presidio)"):
    highlighted(chosen["escaped_text"])
    st.caption(note())
with st.expander("Whole output"):
    st.text(chosen["output"])

d1, d2, d3 = st.columns(3)
d1.download_button("Download CSV", table.to_csv(index=False), "repeated_tokens.csv", "text/csv", key="rt_csv")
d3.download_button(
    "Outcome summary (CSV)",
    by_setting.to_csv(index=False),
    "repeated_tokens_outcomes.csv",
    "text/csv",
    key="rt_csv_outcomes",
)
d2.download_button(
    "Download JSONL",
    table.to_json(orient="records", lines=True),
    "repeated_tokens.jsonl",
    "application/jsonl",
    key="rt_jsonl",
)
if result["served"] is not None:
    d3.download_button(
        "Request settings (JSON)",
        json.dumps(result["served"], indent=2),
        "repeated_tokens.endpoint.json",
        "application/json",
        key="rt_endpoint",
    )
