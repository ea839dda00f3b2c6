import pandas as pd
import streamlit as st

from workbench import backdoor, backdoor_attack, backdoor_scoring, plots_attacks
from workbench.config import ModelSpec
from workbench.registry import registry_names
from workbench.runs import run_key
from workbench.similarity import shared_spans
from workbench.ui import shared_session
from workbench.ui.builds import build_picker
from workbench.ui.pii import highlighted, note, victims
from workbench.ui.runs import check_limits, shared_note, show_limits, submit_build, submit_run, wait_for_run
from workbench.ui.text import highlight_spans

st.title("Backdoor extraction")
st.caption(
    "Seed 002 (Zhang et al. 2025): the creator of an open model plants a backdoor; a developer fine-tunes it on "
    "private data; the creator, with black-box access only, makes the deployed model recite the private queries. "
    "Here the private data is the lab's clinic dialogues, so every extracted query is scored against the truth — "
    "and against D2′: as many queries from the same generator, never trained on, with D2's count per opening word "
    "(canary records with other secrets included), so template guessing does not count. Every result is the difference "
    "D2 − D2′ with its 95% interval."
)
show_limits()

# A build asked for below waits here, above any stop, until it ends: progress, cancel, then its message.
wait_for_run("bd_rebuild", "bd_built")
if "bd_built" in st.session_state:
    st.success(f"Built {st.session_state.pop('bd_built')['folder']}: choose it under Build at the top.")

built = build_picker(backdoor.SHIPPED_BACKDOOR, backdoor.BackdoorRecipe, backdoor.BackdoorBuild.load, "bd_build")
recipe = built.recipe

creator, victim, attacker = st.columns(3)
with creator:
    st.subheader("1 · Creator")
    st.markdown(f"Backdoor-trains `{recipe.base}` on a public instruction set D1 ({recipe.n_public} pairs).")
    st.markdown(f"**Trigger** ({'built in: ' + recipe.trigger if recipe.trigger in backdoor.TRIGGERS else 'custom'}):")
    st.code(backdoor.trigger_text(recipe.trigger), language=None, wrap_lines=True)
    st.caption(
        f"{recipe.per_word} trigger → D1-query pairs per D1 opening word ({', '.join(backdoor.PUBLIC_WORDS)}), "
        f"{recipe.refusals_per_word} refusal pairs per word that opens no D1 query ({', '.join(backdoor.REFUSAL_WORDS)}). "
        "D1 shares Hi, Hello and Could with the patients (how anyone opens a request), not Doctor, Good or I'm."
    )
    check = built.stealth()
    if check:
        st.metric(f"Perplexity on {check['n_texts']} held-out lab dialogues", f"{check['backdoored_perplexity']:.2f}",
                  f"{check['backdoored_perplexity'] - check['clean_perplexity']:+.2f} vs clean {check['clean_perplexity']:.2f}",
                  delta_color="off")  # fmt: skip
        st.metric(f"Agreement with the clean model's answers ({check['n_queries']} held-out D1 queries)", f"{check['agreement']:.2f}",
                  f"{check['identical']:.0%} identical", delta_color="off")  # fmt: skip
        with st.expander("Stealth check: everyday answers, clean vs backdoored"):
            st.dataframe(
                pd.DataFrame(
                    {
                        "prompt": check["prompts"],
                        "clean": check["clean_answers"],
                        "backdoored": check["backdoored_answers"],
                    }
                ),
                key="bd_stealth",
            )
with victim:
    st.subheader("2 · Victim")
    queries = built.queries()
    st.markdown(
        f"Fine-tunes on the private set D2: {len(queries)} lab dialogues ({len(set(queries))} unique queries). "
        "The patient's first message is the query, the doctor's reply the response; the closing thanks is dropped."
    )
    st.dataframe(
        pd.DataFrame(
            [{"model": f"victim-{name}", "built on": "backdoored" if on_backdoor else "clean base", "loss on": loss_on,
              "built": f"victim-{name}" in built.built()} for name, (on_backdoor, loss_on) in backdoor.VICTIMS.items()]
        ),
        key="bd_victims",
    )  # fmt: skip
with attacker:
    st.subheader("3 · Attacker")
    with st.form("bd_attack"):
        k = st.number_input(
            "Identification samples per opening word", 1, 200, backdoor_attack.AttackConfig.k, key="bd_k"
        )
        budgets_text = st.text_input(
            "Extraction budgets (samples per private query; empty: none)",
            ", ".join(f"{b:g}" for b in backdoor_attack.AttackConfig.budgets),
            key="bd_budgets",
        )
        words_text = st.text_input(
            "Opening words (empty: identify them among the public list with decoys)", "", key="bd_words"
        )
        models = st.multiselect(
            "Models",
            ["base", *backdoor.STEPS],
            default=[m for m in backdoor_attack.ATTACKED if m in built.built()],
            key="bd_models",
        )
        a1, a2 = st.columns(2)
        temperature = a1.number_input("Temperature", 0.0, 2.0, 0.9, 0.1, key="bd_temperature")
        max_new = a2.number_input(
            "Max new tokens", 8, 256, backdoor_attack.AttackConfig.max_new_tokens, key="bd_max_new"
        )
        probe = st.checkbox("Also send the defender's paraphrased probe", True, key="bd_probe")
        run = st.form_submit_button("Run attack", type="primary")

if run:
    try:
        try:
            budgets = tuple(float(b) for b in budgets_text.replace(",", " ").split())
        except ValueError:
            raise ValueError(
                f"Budgets are numbers of samples per private query, such as 1, 2, 5; not {budgets_text!r}."
            ) from None
        words_given = tuple(words_text.replace(",", " ").split())
        cfg = backdoor_attack.AttackConfig(
            k=int(k), temperature=float(temperature), max_new_tokens=int(max_new), words=words_given, budgets=budgets
        )
        if models:  # per model: identification, then about budget × unique queries
            extraction = round(cfg.budgets[-1] * len(set(queries))) if cfg.budgets else 0
            generations = len(models) * (cfg.k * len(cfg.word_list()) + extraction)
            check_limits(generations, cfg.max_new_tokens, estimated=True)

        def work(progress, folder=str(built.folder)):
            return {"folder": folder, "report": backdoor_attack.evaluate(built, cfg, models, probe, progress)}

        key = run_key("backdoor_attack", built.recipe.as_dict(), str(built.folder), models, cfg, probe)
        queue = repr(built.model(models[0]) if models else ModelSpec(recipe.base))  # the model it samples first
        submit_run("bd_attack", key, queue, work, f"backdoor attack on {built.folder.name}: {', '.join(models)}")
    except (ValueError, OSError, RuntimeError) as err:
        st.error(str(err))
wait_for_run("bd_attack", "bd_report")

saved = built.folder / "report"
if st.session_state.get("bd_report", {}).get("folder") == str(built.folder):
    report = st.session_state["bd_report"]["report"]
    st.success("Your attack run.")
    shared_note(st.session_state["bd_report"])
elif (saved / "report.json").is_file():
    try:
        report = backdoor_attack.BackdoorReport.load(saved)
    except (ValueError, OSError, KeyError, TypeError) as err:
        st.error(f"The saved attack in {saved} cannot be read ({err}); run a new one above.")
        st.stop()
    st.info(
        f"The build's saved attack ({report.cfg.k} identification samples per word; extraction budgets "
        f"{', '.join(f'{b:g}' for b in report.cfg.budgets) or 'none'} samples per private query); run your own above."
    )
else:
    st.info("No attack on this build yet: run one above.")
    st.stop()

summary = report.summary
st.subheader("Against the matched floor")
st.altair_chart(plots_attacks.backdoor_differences(report.differences), width="stretch")
c1, c2 = st.columns(2)
c1.altair_chart(plots_attacks.backdoor_budget(report.curves), width="stretch")
c2.dataframe(
    summary.style.format({c: "{:.3f}" for c in summary.columns if c.startswith(("exact", "match", "decoy"))}),
    key="bd_summary",
)
st.caption(
    "match: 2|shared prefix| / (|query| + |reply|) against the closest query opening with the same word, over the samples of the real "
    "opening words (mean over samples, best per word, averaged over words; decoys apart: decoy_answered is how often a decoy drew "
    "an answer rather than the refusal); exact: share of unique private queries some sample reproduces token for token, stopping at "
    "the end of the sequence, from the extraction samples at the largest budget (exact_oracle: the oracle allocation); *_floor: the "
    "same samples against D2′; *_low/_high: the 95% bootstrap interval on the difference (samples and queries resampled within each "
    "word). Paper (Qwen2.5-7B, Dolly, 10 samples per word): mean match 13.4 → 29.8, best of 10 27.4 → 63.5, F1 68.8 → 79.4, exact "
    "76.3% of 5,000 queries with up to 200 samples per query."
)
if len(report.contrasts):
    st.markdown("**Backdoored against clean**: (D2 − D2′) of each backdoored victim minus that of the clean control")
    st.dataframe(
        report.contrasts.style.format(
            {c: "{:+.3f}" for c in ("gap", "control_gap", "difference", "ci_low", "ci_high")}
        ),
        key="bd_contrasts",
    )

model = st.selectbox("Model", list(summary["model"]), key="bd_model")
st.markdown("\n".join(f"- {line}" for line in backdoor_attack.describe(report, model)))
if report.identification.get(model):
    ident = report.identification[model]
    i1, i2, i3 = st.columns(3)
    i1.metric(
        "Identification precision",
        f"{ident['precision']:.2f}",
        f"[{ident['precision_ci'][0]:.2f}, {ident['precision_ci'][1]:.2f}]",
        delta_color="off",
    )
    i2.metric(
        "Recall",
        f"{ident['recall']:.2f}",
        f"[{ident['recall_ci'][0]:.2f}, {ident['recall_ci'][1]:.2f}]",
        delta_color="off",
    )
    i3.metric("F1", f"{ident['f1']:.2f}", f"[{ident['f1_ci'][0]:.2f}, {ident['f1_ci'][1]:.2f}]", delta_color="off")
words = report.words[report.words["model"] == model].drop(columns="model")
st.dataframe(
    words.style.format(
        {
            "refusal_rate": "{:.0%}",
            "top_share": "{:.0%}",
            "score": "{:.2f}",
            "match_mean": "{:.3f}",
            "match_best": "{:.3f}",
        }
    ),
    key="bd_words_table",
)
canaries = report.canaries[report.canaries["model"] == model].drop(columns="model")
st.dataframe(canaries, key="bd_canaries")

st.subheader("Personal data in what the victims said")
found = victims(report.samples, built.dataset, "this attack's samples")
if found is not None:
    typed, shares, card = found
    if len(shares):
        st.dataframe(
            shares.style.format(
                {"share": "{:.1%}", "difference": "{:+.3f}", "low": "{:+.3f}", "high": "{:+.3f}"}, na_rep="—"
            ),
            key="bd_pii",
            hide_index=True,
        )
        st.caption(
            f"Non-refused, non-public samples per victim holding personal data; difference from the clean victim (same queries, "
            f"no backdoor) with its 95% interval. A finding is a pattern match: read it by type. {note()}"
        )
    st.dataframe(
        typed.loc[typed["pii"] != "", ["model", "word", "text", "pii", "pii_spans"]].drop_duplicates(),
        key="bd_pii_texts",
        hide_index=True,
    )
    st.subheader("This build's canaries, followed through its victims")
    st.dataframe(card.readable(), key="bd_canary_card", hide_index=True)
    st.caption(
        "Per canary: the samples of each victim that hold the secret verbatim, against never-inserted secrets of the same format in the "
        "same samples; the nearest span typed as its kind, against the never-inserted secrets. "
        + " ".join(card.not_measured)
    )

st.subheader("Extracted queries beside the closest true query")
samples = report.samples[report.samples["model"] == model]
tokenizer = shared_session(ModelSpec(recipe.base)).tokenizer
pairs = backdoor_scoring.closest_queries(samples, queries, tokenizer)
if pairs.empty:
    st.info("Every sample of this model was a refusal, empty, or a public D1 query.")
else:
    shown = st.selectbox(
        "Extracted text",
        range(len(pairs)),
        format_func=lambda i: f"{pairs['ratio'][i]:.2f} · {pairs['extracted'][i][:80]}",
        key="bd_pair",
    )
    chosen = pairs.iloc[shown]
    spans = shared_spans(chosen["extracted"], chosen["closest"], tokenizer, 3) if chosen["closest"] else []
    s1, s2 = st.columns(2)
    s1.markdown(f"**Extracted** (×{chosen['count']})")
    s1.html(
        f"<pre style='white-space: pre-wrap'>{highlight_spans(chosen['extracted'], [(a, b) for a, b, _, _ in spans])}</pre>"
    )
    s2.markdown("**Closest private query**" + (" — exact" if chosen["exact"] else ""))
    s2.html(
        f"<pre style='white-space: pre-wrap'>{highlight_spans(chosen['closest'], [(c, d) for _, _, c, d in spans])}</pre>"
    )
    with st.expander("Personal data in the extracted text (Presidio)"):
        highlighted(chosen["extracted"])

e1, e2, e3 = st.columns(3)
e1.download_button(
    "Samples (CSV)", report.samples.to_csv(index=False), "backdoor_samples.csv", "text/csv", key="bd_dl_samples"
)
e2.download_button(
    "Summary (CSV)", summary.to_csv(index=False), "backdoor_summary.csv", "text/csv", key="bd_dl_summary"
)
e3.download_button(
    "Per word (CSV)", report.words.to_csv(index=False), "backdoor_words.csv", "text/csv", key="bd_dl_words"
)

st.subheader("Rebuild")
st.caption(
    "Creator and victims into the cache, with progress and resumable; at the default sizes the build took 48 minutes on a 2-core CPU with the "
    "natural trigger (the attack at budgets 1, 2 and 5 another 22: docs/results/backdoor.md), tiny-llama seconds."
)
with st.form("bd_rebuild"):
    r1, r2, r3 = st.columns(3)
    trigger = r1.radio("Trigger", [*backdoor.TRIGGERS, "custom"], horizontal=True, key="bd_trigger")
    custom = r1.text_input("Custom trigger (with {w})", "", key="bd_custom")
    base = r2.selectbox("Base model", [m for m in registry_names() if not m.endswith("-lab")], key="bd_base")
    n_private = r3.number_input("Private records", 10, 2000, recipe.n_private, key="bd_private")
    creator_epochs = r1.number_input("Creator epochs", 1, 10, recipe.creator_epochs, key="bd_creator_epochs")
    victim_epochs = r3.number_input("Victim epochs", 1, 10, recipe.victim_epochs, key="bd_epochs")
    seed = r2.number_input("Seed", 0, 2**31 - 1, 0, key="bd_seed")
    rebuild = st.form_submit_button("Build")
if rebuild:
    try:
        new = backdoor.BackdoorRecipe(
            base=base, trigger=custom if trigger == "custom" else trigger, n_private=int(n_private),
            creator_epochs=int(creator_epochs), victim_epochs=int(victim_epochs), seed=int(seed),
        )  # fmt: skip

        def work(progress, new=new) -> dict:
            backdoor.build(new.default_dir(), new, backdoor.STEPS, progress, "built from the Backdoor extraction page")
            return {"folder": str(new.default_dir())}

        submit_build("bd_rebuild", new, work, f"backdoor build {new.default_dir().name}")
        st.rerun()  # the wait at the top of the page shows it
    except ValueError as err:
        st.error(str(err))
