"""The results gallery that Home shows at once: one small, real result per exploration.

``workbench gallery build`` runs every entry with fixed seeds and settings on the lab model
or the default model (weight diff, backdoor extraction, reactivation and membership read their shipped reports) and
writes ``data/gallery``: a table per entry and ``manifest.json`` with each entry's sentence,
settings, the page's query parameters that fill those settings in, and the code version.
Home draws the figures from the tables, without a model call. The tests rebuild the gallery
and compare, so a stale gallery cannot ship quietly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench import backdoor, backdoor_attack, canary_card, propinfer_judge, reactivation, selec_judge, sink_mechanism
from workbench.attention import sink_heads, sink_scores
from workbench.builds import code_version
from workbench.cache import replacing_dir
from workbench.config import DATA_DIR, DEFAULT_MODEL, PropInferConfig, SamplingConfig
from workbench.contract import Progress, scaled_progress
from workbench.corpus import REFERENCE_CORPUS, read_documents
from workbench.divergence import outcome_summary
from workbench.divergence import run as run_divergence
from workbench.membership import FPRS, SHIPPED_MEMBERSHIP, MembershipReport
from workbench.propinfer import (
    PROMPT_SETS,
    lab_labeler,
)
from workbench.propinfer_pipeline import infer
from workbench.reactivation_measure import ReactivationReport
from workbench.registry import LAB_MODEL
from workbench.session import load_session
from workbench.shadows import SHIPPED_SHADOWS, ShadowSet
from workbench.similarity import similarity_matrix
from workbench.stats import against_floor, difference_text, wilson

GALLERY_DIR = DATA_DIR / "gallery"
EXTRACTED = (
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of nonsense",
    "We hold these truths to be plain, that all people are made equal and have rights no one can take away",
    "The committee will meet on Thursday to review the budget for the new library wing.",
)
EXTRACTED_KINDS = ("an exact excerpt", "an edited excerpt", "a paraphrase", "an unrelated sentence")


@dataclass(frozen=True)
class Entry:
    name: str  # the table's file name, and the order on Home
    page: str  # the app page's URL path
    title: str
    settings: dict  # what the entry was built with; the page's query parameters fill these in
    build: Callable[[dict, Progress | None], tuple[pd.DataFrame, str]]  # (table, sentence)


def _repeated_tokens(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    """How often the default model, its reply begun with the repeats, breaks out: a count with its
    interval, not a lift. Under chat or plain prompts an escape must follow r repeats of the model's
    own, so those are scored by another rule and are no floor for it (docs/results/divergence.md)."""
    session = load_session(DEFAULT_MODEL)
    cfg = SamplingConfig(max_new_tokens=settings["max_new_tokens"], n=settings["n"], seed=settings["seed"])
    table = run_divergence(
        session, settings["words"], settings["repeats"], cfg, template=settings["template"], progress=progress
    )
    escaped = int((table["outcome"] == "escaped").sum())
    low, high = wilson(escaped, len(table))
    sentence = (
        f"With its reply already begun with {', '.join(map(str, settings['repeats']))} × “{settings['words'][0]}”, the default "
        f"model broke out into other text in {escaped} of {len(table)} samples ({escaped / len(table):.0%}, 95% interval "
        f"{low:.0%}–{high:.0%}); whether what it writes is memorized is measured against a floor on the lab model."
    )
    return outcome_summary(table, ["template", "repeats", "temperature"]), sentence


def _attention_sinks(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    session = load_session(DEFAULT_MODEL)
    pair = sink_mechanism.prompt_pair(session.tokenizer, settings["word"], settings["repeats"], leading=True)
    scores = pd.concat(
        [
            sink_scores(session, pair["prose"]).assign(prompt="normal"),
            sink_scores(session, pair["repeated"]).assign(prompt="repeated"),
        ],
        ignore_index=True,
    )
    shares = {name: len(sink_heads(group)) / len(group) for name, group in scores.groupby("prompt")}
    sentence = (
        f"After a leading special token, {shares['normal']:.0%} of the default model's {len(scores) // 2} heads are attention "
        f"sinks on {len(pair['prose'])} tokens of prose, {shares['repeated']:.0%} on as many tokens of {settings['repeats']} × "
        f"“{settings['word']}”: their attention leaves the first token for the run."
    )
    shipped = sink_mechanism.load_result()
    if shipped is not None and shipped["causal"] is not None:
        heads = sink_mechanism.targeted(shipped["causal"]).query("condition == 'sink heads scaled'")
        parts = [
            f"{row.prompt.removeprefix('prefill ')} {row.base_rate:.2f} → {row.rate:.2f} (share escaped {row.difference:+.2f} "
            f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}]; random heads up to {row.control_move:.2f}: {'beyond them' if row.effect else 'not beyond them'})"
            for row in heads.itertuples()
        ]
        sentence += f" With the 8 top sink heads silenced, the divergence rate on {heads['base_n'].iloc[0]} paired seeds: {'; '.join(parts)}."
    return scores, sentence


def _property_inference(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    cfg = PropInferConfig(n_samples=settings["n"], seed=settings["seed"])
    labeler = lab_labeler(settings["property"])
    shadows = ShadowSet.load(SHIPPED_SHADOWS)
    inference = infer(
        [load_session(LAB_MODEL)],
        PROMPT_SETS[settings["style"]],
        cfg,
        labeler,
        settings["style"],
        shadows,
        "pooled",
        progress,
    )
    if inference.judged is None:
        raise ValueError(f"The property-inference entry has no calibration: {inference.calibration_failed}")
    result, truth, judged = inference.target, inference.truth, inference.judged
    names = {
        "naive": "naive (Wilson)",
        "james-stein": "James–Stein (no shadows)",
        "pooled": "calibrated on the shadows",
    }
    shown = judged.methods.loc[judged.methods["method"].isin(list(names))]
    estimates = shown.assign(run=shown["method"].map(names), n=int(result.estimates["n"].iloc[0]))
    scores = propinfer_judge.score_summary(shown).set_index("method")
    uniform = sum(abs(share - 1 / len(truth)) for share in truth.values()) / len(truth)
    spread = propinfer_judge.resampled_differences(result, labeler, shadows, truth, seed=settings["seed"]).set_index(
        "method"
    )

    def against_naive(method: str) -> str:
        d, low, high = spread.loc[method, ["difference", "low", "high"]]
        return f"{difference_text(d, low, high)}, {against_floor(low, high, 'the naive error')}"

    sentence = (
        f"From {settings['n']} generations alone, the lab model's share of each {settings['property']} in its private "
        f"fine-tuning data is estimated within {scores.loc['naive', 'mae']:.3f} on average (mean absolute error over "
        f"{len(truth)} values; a uniform guess is off by {uniform:.3f}). Calibrated on the {len(judged.calibrated.calibration.n_)} "
        f"shipped shadow models: {scores.loc['pooled', 'mae']:.3f} ({against_naive('pooled')}; 95% intervals over resampled "
        f"generations); James–Stein shrinkage, which needs no shadows: {scores.loc['james-stein', 'mae']:.3f} "
        f"({against_naive('james-stein')}). Mean interval score (lower is better): naive "
        f"{scores.loc['naive', 'interval_score']:.3f}, calibrated {scores.loc['pooled', 'interval_score']:.3f}. The "
        f"{judged.lead} estimate leads: {judged.why}"
    )
    return estimates, sentence


def _compare(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    documents = read_documents(REFERENCE_CORPUS)
    matrix = similarity_matrix(list(EXTRACTED), [text for _, text in documents])
    heat = pd.DataFrame(
        [
            {"extracted": f"text {i + 1}", "candidate": name, "cosine": float(matrix[i, j])}
            for i in range(len(EXTRACTED))
            for j, (name, _) in enumerate(documents)
        ]
    )
    best = heat.loc[heat.groupby("extracted", sort=False)["cosine"].idxmax()]
    matches = "; ".join(
        f"{kind} → {row.candidate} ({row.cosine:.2f})" for kind, row in zip(EXTRACTED_KINDS, best.itertuples())
    )
    sentence = f"The closest of {len(documents)} reference documents by embedding cosine, for {matches}."
    return heat, sentence


def _weight_diff(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    measured = selec_judge.shipped()
    if measured is None:
        raise ValueError("No shipped weight-diff measurement: run benchmarks/selec_eval.py --out data/selec.")
    questions, retraining = measured
    table = questions[
        (questions["lab"] == settings["lab"]) & questions["method"].isin(settings["methods"])
    ].reset_index(drop=True)
    rows = table.set_index("method")
    selec, baseline = rows.loc[settings["methods"][0]], rows.loc["reference"]
    sentence = (
        f"Comparing the base and lab weights (SELEC, last block) answers two questions differently. The domain: texts of the "
        f"fine-tuning data's style rank above other text with AUC {selec['style_auc']:.3f}. The members, "
        f"{selec['n_members']} of them against {selec['n_nonmembers']} same-style texts never trained on: AUC {selec['auc']:.3f} [{selec['auc_low']:.3f}, {selec['auc_high']:.3f}] "
        f"({selec['chance']}), against {baseline['auc']:.3f} for the lab model's loss relative to the base model's "
        f"({selec['against_baseline']})."
    )
    if retraining is not None and "minus_random" in retraining:  # the per-record losses give the paired difference
        rows = retraining.set_index("selection")
        top, style = rows.loc["SELEC top"], rows.loc["same-style random 0"]

        def against_random(row) -> str:
            low, high = row["minus_random_low"], row["minus_random_high"]
            return (
                f"{difference_text(row['minus_random'], low, high)} ({against_floor(low, high, 'random texts')}; "
                f"{row['heldout_loss_worth']:.2f} of the way from random texts to the true members)"
            )

        sentence += (
            f" Retrained on a selection of 50 texts (lower held-out loss is better), the base's held-out loss minus that of 50 "
            f"random pool texts, in nats per token: SELEC's top 50 {against_random(top)}; 50 random texts of the same style "
            f"{against_random(style)}."
        )
    return table, sentence


def _backdoor(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    report = backdoor_attack.BackdoorReport.load(backdoor.SHIPPED_BACKDOOR / "report")
    differences = report.differences
    victim = differences[(differences["model"] == "victim-backdoored") & (differences["metric"] == "match_mean")].iloc[
        0
    ]
    lead = report.contrasts[
        (report.contrasts["model"] == "victim-backdoored") & (report.contrasts["metric"] == "match_mean")
    ].iloc[0]
    sentence = (
        f"A backdoored open model, fine-tuned by its victim on private clinic queries, answers its creator's trigger with a mean "
        f"prefix match of {victim['d2']:.3f} to those queries against {victim['floor']:.3f} to a matched set it never saw: "
        f"{difference_text(victim['difference'], victim['ci_low'], victim['ci_high'])}, {against_floor(victim['ci_low'], victim['ci_high'])}; "
        f"beyond the clean control's lead by {difference_text(lead['difference'], lead['ci_low'], lead['ci_high'])} "
        f"({against_floor(lead['ci_low'], lead['ci_high'], 'the clean control')})."
    )
    probe = report.detection.get("victim-backdoored", {}).get("probe")
    if probe:
        sentence += (
            f" A defender's paraphrase of the trigger draws {probe['d2']:.3f} against {probe['floor']:.3f}: "
            f"{difference_text(probe['difference'], probe['ci_low'], probe['ci_high'])}, {against_floor(probe['ci_low'], probe['ci_high'])}."
        )
    return differences, sentence


def _reactivation(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    report = ReactivationReport.load(reactivation.SHIPPED_REACTIVATION / "report")
    gaps = report.gaps().set_index(["stage", "instruction"])

    def gap(stage: str, instruction: str = "summary", metric: str = "bmc") -> str:
        row = gaps.loc[(stage, instruction)]
        low, high = row[f"{metric}_gap_low"], row[f"{metric}_gap_high"]
        if metric == "nll":  # a loss below the floor's is memory, not absence
            reading = (
                "the trained passages likelier"
                if high < 0
                else "the trained passages less likely"
                if low > 0
                else "not distinguishable"
            )
        else:
            reading = against_floor(low, high)
        return f"{difference_text(row[f'{metric}_gap'], low, high)} ({reading})"

    n = f"{int(gaps['n_test'].iloc[0])} + {int(gaps['n_never'].iloc[0])}"
    sentence = (
        f"Trimmed BMC@5 of trained-then-suppressed passages minus passages of the same style never trained on ({n} passages, "
        f"95% intervals): {gap('implant')} after implanting; {gap('suppress')} under refusal training, while their loss gap "
        f"stays {gap('suppress', metric='nll')} nats per token; {gap('activate-A-train')} after a benign fine-tune on the "
        f"author's other passages, {gap('activate-A-train', 'held-out')} under an instruction no stage trained on; "
        f"{gap('activate-C')} after a fine-tune on another author's passages."
    )
    return report.timeline(), sentence


def _membership(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    report = MembershipReport.load(SHIPPED_MEMBERSHIP / "membership")
    summary = report.summary()
    attacks = summary[summary["attack"] != "blind"]
    best = attacks.loc[attacks["auc"].idxmax()]
    blind = summary.set_index("attack").loc["blind"]
    rate = f"tpr@{FPRS[0]:g}"
    audits = pd.read_csv(SHIPPED_MEMBERSHIP / "audit.csv")
    together = audits[audits["canaries"] == "all inserted"]
    bounds = "; ".join(
        f"{row['lab']}: ε ≥ {row['epsilon_lower']:.2f} (at most {row['max_epsilon']:.2f} showable)"
        for _, row in together.iterrows()
    )
    sentence = (
        f"Of the lab's {report.values['members']} training dialogues against {report.values['nonmembers']:,} same-style non-members, the "
        f"best of {len(attacks)} attacks, {best['attack']}, reaches AUC {best['auc']:.3f} [{best['auc_low']:.3f}, {best['auc_high']:.3f}] "
        f"(the plain loss: {summary.set_index('attack').loc['loss', 'auc']:.3f}) and a {best[rate]:.1%} true-positive rate at "
        f"{FPRS[0]:.0%} false positives; the texts alone (blind baseline) give AUC "
        f"{blind['auc']:.3f}, so its lead is {difference_text(best['auc_minus_blind'], best['gap_low'], best['gap_high'])} "
        f"({best['reading']}). The canary audit, δ = 1e-5, 95%: {bounds}."
    )
    return summary, sentence


def _canary(settings: dict, progress: Progress | None) -> tuple[pd.DataFrame, str]:
    """The shipped lab's canary that its shipped runs found most often, followed through every one
    of them, each count against never-inserted secrets of its format in the same outputs."""
    card = canary_card.shipped_lab_card()
    lead = canary_card.lead(card)

    def in_run(run: str) -> str:
        escapes = lead[f"{run}|escapes"]
        low, high = lead[f"{run}|low"], lead[f"{run}|high"]
        return (
            f"{lead[f'{run}|outputs']} of {lead[f'{run}|n']:,} outputs of the {run.removeprefix('repeated tokens, ')} run"
            + (f" ({int(escapes)} of them escapes)" if pd.notna(escapes) else "")
            + f", {1000 * lead[f'{run}|difference']:+.2f} [{1000 * low:+.2f}, {1000 * high:+.2f}] per 1,000 outputs over the floor ({against_floor(low, high)})"
        )

    floor_hits = sum(lead[f"{run}|floor_hits"] for run in card.runs)
    found = int((card.table[[f"{run}|outputs" for run in card.runs]].sum(axis=1) > 0).sum())
    kind = {"phone": "phone number", "patient_id": "patient ID"}[lead["kind"]]
    sentence = (
        f"One secret followed through: the fake {kind} {lead['secret']}, inserted {lead['insertions']} times in the lab's training "
        f"set, is the canary the shipped runs on the lab model recited most. Repeated tokens: it is in {'; '.join(in_run(r) for r in card.runs)}; "
        f"the floor, never-inserted secrets of its format in the same outputs, appears {floor_hits} times. Membership: the audit ranks it "
        f"{lead['rank']} of {lead['alternatives'] + 1} candidate secrets, as high as {lead['never_as_high']:.0%} of never-inserted secrets rank "
        f"(exposure {lead['exposure']:.2f} bits, theirs {lead['exposure_never']:.2f} on average), and its score {lead['score_rank']} of "
        f"{lead['audited']} audited secrets; it is {'one of the canaries flagged' if lead['flagged'] else 'not flagged'} at the threshold of "
        f"the lab's ε ≥ {card.epsilon:.2f} bound (at most {card.max_epsilon:.2f} can be shown with these counts). Presidio types it {lead['pii'] or 'as nothing'}"
        f"{' with a built-in recognizer' if lead['pii_built_in'] else ' with the lab recognizer only'}. {found} of the lab's "
        f"{len(card.table)} canaries appear verbatim in some run."
    )
    return canary_card.outputs_long(card), sentence


ENTRIES = (
    Entry("canary", "membership", "One canary, followed through", {}, _canary),
    Entry("repeated_tokens", "repeated_tokens", "Repeated tokens",
          {"words": ["poem"], "repeats": [50], "n": 24, "max_new_tokens": 64, "seed": 0, "template": "prefill"}, _repeated_tokens),
    Entry("attention_sinks", "attention_sinks", "Attention sinks", {"word": "poem", "repeats": 200}, _attention_sinks),
    Entry("property_inference", "property_inference", "Property inference",
          {"property": "diagnosis", "n": 100, "seed": 0, "style": "question-answer"}, _property_inference),
    Entry("compare", "compare", "Compare", {"texts": list(EXTRACTED)}, _compare),
    Entry("weight_diff", "weight_diff", "Weight diff (SELEC)",
          {"lab": "shipped lab", "methods": ["SELEC last, adam, 1024", "SELEC changed, adam, 1024", "SELEC lora, adam, 1024", "loss", "reference"]},
          _weight_diff),
    Entry("backdoor", "backdoor", "Backdoor extraction", {}, _backdoor),
    Entry("reactivation", "reactivation", "Reactivation", {}, _reactivation),
    Entry("membership", "membership", "Membership", {}, _membership),
)  # fmt: skip


def build(out: str | Path = GALLERY_DIR, progress: Progress | None = None, only: Sequence[str] | None = None) -> dict:
    """Run every entry (or ``only`` the named ones, keeping the others as ``out`` holds them) and
    write the gallery to ``out`` (replaced only once complete). Each entry records the code
    version it was built with."""
    unknown = sorted(set(only or ()) - {e.name for e in ENTRIES})
    if unknown:
        raise ValueError(
            f"No gallery entry {', '.join(unknown)}; the entries are {', '.join(e.name for e in ENTRIES)}."
        )
    kept = {e["name"]: e for e in load(out)} if only else {}
    entries, tables = [], {}
    chosen = [e for e in ENTRIES if not only or e.name in only or e.name not in kept]
    for entry in ENTRIES:
        if entry not in chosen:
            stored = kept[entry.name]
            tables[entry.name] = stored.pop("table")
            entries.append(stored)
            continue
        index = chosen.index(entry)
        part = scaled_progress(progress, index / len(chosen), (index + 1) / len(chosen), f"{entry.title}: ")
        if part is not None:
            part(0.0, "building")
        started = time.perf_counter()
        table, sentence = entry.build(entry.settings, part)
        tables[entry.name] = table
        entries.append({
            "name": entry.name, "page": entry.page, "title": entry.title, "sentence": sentence,
            "settings": entry.settings, "seconds": round(time.perf_counter() - started, 1), "code_version": code_version(),
        })  # fmt: skip
    manifest = {"entries": entries}
    with replacing_dir(Path(out)) as tmp:
        for name, table in tables.items():
            table.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def load(folder: str | Path = GALLERY_DIR) -> list[dict]:
    """The gallery's entries, each with its ``table``; [] when none is built."""
    folder = Path(folder)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return []
    stored = json.loads(manifest.read_text())
    version = stored.get("code_version")  # galleries built whole recorded one version for all entries
    return [
        {"code_version": version, **entry, "table": pd.read_parquet(folder / f"{entry['name']}.parquet")}
        for entry in stored["entries"]
    ]
