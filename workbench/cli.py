"""Batch command line over the workbench library.

    workbench info [--model NAME] [--json]
    workbench diverge --word poem --repeats 50 --n 100 --out results.parquet
    workbench sinks --prompt "Some text" --out scores.parquet
    workbench propinfer --model smollm2-135m-instruct-lab --property diagnosis --n 500 --out estimates.csv
    workbench compare --extracted a.jsonl --candidates b.jsonl --out pairs.parquet
    workbench selec --base smollm2-135m-instruct --tuned smollm2-135m-instruct-lab --out ranking.parquet
    workbench lab build [--out DIR] [--share "mental health=0.1" ...] | workbench lab show [--dir DIR]
    workbench shadows build [--out DIR] | workbench shadows show [--dir DIR]
    workbench backdoor build [--out DIR] | workbench backdoor attack [--dir DIR] | workbench backdoor show [--dir DIR]
    workbench reactivate build [--out DIR] | workbench reactivate measure [--dir DIR] | workbench reactivate show [--dir DIR]
    workbench membership [--members FILE --nonmembers FILE] [--reference NAME] --out scores.parquet
    workbench audit [--model NAME] [--n-never 100] [--null] --out canaries.parquet

Errors end with a one-line message on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from workbench import (
    audit,
    backdoor,
    backdoor_attack,
    canary_card,
    gallery,
    membership,
    pii,
    reactivation,
    reactivation_measure,
    sink_mechanism,
    stats,
    vllm_server,
)
from workbench.attention import SINK_THRESHOLD, sink_heads, sink_scores
from workbench.builds import command_line
from workbench.config import (
    DTYPES,
    INTERVALS,
    ModelSpec,
    PropInferConfig,
    SamplingConfig,
    startup_model,
)
from workbench.contract import Progress
from workbench.corpus import REFERENCE_CORPUS, CorpusIndex, read_documents
from workbench.divergence import (
    DEFAULT_MIN_REPEATS,
    DEFAULT_WINDOW,
    divergence_rate,
    extraction_text,
    outcome_summary,
    rate_text,
    training_extraction,
)
from workbench.divergence import run as run_divergence
from workbench.endpoint import API_KEY_VARIABLES
from workbench.lab import SHIPPED_LAB, LabRecipe, lab_dataset_for
from workbench.lab import build as build_lab
from workbench.lab_data import DEFAULT_CANARY_COUNTS, LabDataset, public_pool
from workbench.overlap import DEFAULT_MIN_TOKENS
from workbench.prompts import HINT_PREFIXES, TEMPLATES, repeated_token_prompt
from workbench.propinfer import (
    LAB_PROPERTIES,
    LABELER_KINDS,
    PROMPT_SETS,
    KeywordLabeler,
    against_truth,
    lab_labeler,
    mean_absolute_error,
)
from workbench.propinfer import run as run_propinfer
from workbench.propinfer_judge import judge as judge_propinfer
from workbench.propinfer_judge import score_summary
from workbench.registry import LAB_MODEL, registry_names
from workbench.selec import OPTIMIZERS, PARAM_CHOICES, WeightDiff, default_k, evaluate
from workbench.selec_judge import baseline_scores, check_pool, judge, readable
from workbench.session import load_session
from workbench.shadows import (
    SHADOW_METHODS,
    SHIPPED_SHADOWS,
    ShadowRecipe,
    ShadowSet,
    build_shadows,
    summarize,
)
from workbench.similarity import best_per_text, compare, passages, read_texts

OUTPUT_FORMATS = (".parquet", ".jsonl", ".csv")


def _spec_from_args(args: argparse.Namespace) -> ModelSpec:
    if args.endpoint:
        return _served_spec(args, args.model)
    return ModelSpec(
        name=args.model,
        device=args.device,
        dtype=args.dtype,
        adapter=args.adapter,
        trust_remote_code=args.trust_remote_code,
    )


def _served_spec(args: argparse.Namespace, default_tokenizer: str) -> ModelSpec:
    if not args.served_model:
        raise ValueError("--endpoint needs --served-model NAME: the model's name on the server.")
    return ModelSpec(
        args.served_model,
        endpoint=args.endpoint,
        tokenizer=args.tokenizer or default_tokenizer,
        lab_build=args.lab_build,
        concurrency=args.concurrency,
        send_seed=args.send_seed,
    )


def _add_endpoint_options(parser: argparse.ArgumentParser, tokenizer_default: str) -> None:
    served = parser.add_argument_group(
        "served model", f"an OpenAI-compatible server such as vLLM; the API key comes from ${API_KEY_VARIABLES[0]}"
    )
    served.add_argument("--endpoint", help="the server's URL, e.g. http://127.0.0.1:8000/v1")
    served.add_argument("--served-model", help="the model's name on the server")
    served.add_argument(
        "--tokenizer",
        help=f"local tokenizer of the served model: registry name, folder or Hugging Face id (default: {tokenizer_default})",
    )
    served.add_argument(
        "--lab-build", help="the lab build (DIR with dataset/) the served model was fine-tuned on, for its truth"
    )
    served.add_argument("--concurrency", type=int, default=ModelSpec.concurrency, help="requests in flight at once")
    served.add_argument(
        "--send-seed", action="store_true", help="send each sample's seed (vLLM's CPU engine crashes on seeds)"
    )


def _save_endpoint_record(session, cfg: SamplingConfig, out: Path) -> None:
    """Beside a table made over an endpoint: the server, its version and what was sent."""
    served = session.served_record(cfg)
    if served is not None:
        record = out.with_name(out.stem + ".endpoint.json")
        record.write_text(json.dumps(served, indent=2))
        print(f"served by {served['server']['name']} {served['server']['version']}; request settings -> {record}")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=startup_model(),
        help=f"registry name ({', '.join(registry_names())}), Hugging Face id, folder or .gguf "
        "(default: $WORKBENCH_MODEL or the embedded default)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda if present, else cpu)")
    parser.add_argument("--dtype", choices=DTYPES, help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--adapter", help="folder of a peft (LoRA) adapter to apply")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="let a Hub model run its own code (off by default)"
    )
    _add_endpoint_options(parser, "--model")


def _add_sampling_options(
    parser: argparse.ArgumentParser,
    defaults: type[SamplingConfig] | type[PropInferConfig],
    several_temperatures: bool = False,
) -> None:
    """The sampling settings both configs share, with that config's defaults."""
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    if several_temperatures:
        parser.add_argument(
            "--temperature",
            type=float,
            action="append",
            help=f"0 = greedy; repeatable (default {defaults.temperature})",
        )
    else:
        parser.add_argument("--temperature", type=float, default=defaults.temperature, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=defaults.top_k, help="0 = off")
    parser.add_argument("--top-p", type=float, default=defaults.top_p)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr)


@contextmanager
def _progress_bar() -> Iterator[Progress]:
    """A tqdm bar driven by the library's progress(fraction, message) callbacks."""
    with tqdm(total=1.0, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}") as bar:

        def progress(fraction: float, message: str) -> None:
            bar.update(fraction - bar.n)
            bar.set_postfix_str(message)

        yield progress


def cmd_info(args: argparse.Namespace) -> None:
    session = load_session(_spec_from_args(args), progress=_progress)
    card = session.card()
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        width = max(map(len, card))
        for key, value in card.items():
            print(f"{key:<{width}}  {value}")


def _output_path(value: str) -> Path:
    """Checked before a long run, so a bad name cannot lose its results."""
    out = Path(value)
    if out.suffix not in OUTPUT_FORMATS:
        raise ValueError(f"--out must end in {', '.join(OUTPUT_FORMATS)}, not {out.name!r}.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"Cannot create the folder of --out {out}: {err.strerror}.") from err
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"Cannot write to the folder of --out {out}.")
    return out


def _write_table(table, out: Path) -> None:
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    elif out.suffix == ".jsonl":
        table.to_json(out, orient="records", lines=True)
    else:
        table.to_csv(out, index=False)


def _with_pii(table: pd.DataFrame, column: str, prefix: str = "") -> pd.DataFrame:
    """``table`` with its PII columns; without them, and a warning, where Presidio is missing or a text
    cannot be analyzed (the run's results are written all the same)."""
    try:
        return pii.annotate(table, column, prefix=prefix)
    except ValueError as err:
        print(f"workbench: warning: personal data not typed: {err}", file=sys.stderr)
        return table


def cmd_diverge(args: argparse.Namespace) -> None:
    out = _output_path(args.out)
    if args.min_tokens < 1:
        raise ValueError("--min-tokens must be at least 1.")
    temperatures = args.temperature or [SamplingConfig.temperature]
    cfg = SamplingConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=temperatures[0],
        top_k=args.top_k,
        top_p=args.top_p,
        n=args.n,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    session = load_session(_spec_from_args(args), progress=_progress)
    corpus = CorpusIndex.from_path(args.corpus, session.tokenizer)
    reference = load_session(args.reference, progress=_progress) if args.reference else None
    with _progress_bar() as progress:
        table = run_divergence(
            session, args.word, args.repeats, cfg, args.prefix, args.template, corpus, args.min_tokens, reference, progress,
            min_repeats=args.min_repeats, window=args.window, temperatures=temperatures,
        )  # fmt: skip
    table = _with_pii(table, "escaped_text")
    _write_table(table, out)
    _save_endpoint_record(session, cfg, out)
    summary = outcome_summary(table)
    if args.summary:
        _write_table(summary, _output_path(args.summary))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    rate = divergence_rate(table["outcome"].tolist())
    print(
        f"{len(table)} generations; divergence rate {rate_text(rate)}; "
        f"{int((table['longest_match'] > 0).sum())} with a corpus match of >= {args.min_tokens} tokens -> {out}"
    )
    if "pii" in table:
        print(f"escapes: {pii.summary(table[table['outcome'] == 'escaped'])}")
    lab = lab_dataset_for(session.spec)
    if lab is not None:
        found = training_extraction(table, lab, session.tokenizer, args.min_tokens)
        if not found["escapes"]:
            print("lab model: no sample escaped, so no escaped text to check against its training records")
        else:
            print(
                f"lab model: {found['training_hits']} of {found['escapes']} escaped texts reproduce a training record, "
                f"{found['holdout_hits']} a held-out one; {extraction_text(found)}"
            )


def cmd_sinks(args: argparse.Namespace) -> None:
    out = _output_path(args.out)
    session = load_session(_spec_from_args(args), progress=_progress)
    if args.word:
        prompt = repeated_token_prompt(
            session.tokenizer, args.word, args.repeats, args.prefix, context_length=session.info.context_length
        ).token_ids
    else:
        prompt = args.prompt
    scores = sink_scores(session, prompt, args.sink_index)
    _write_table(scores, out)
    heads = sink_heads(scores, args.threshold)
    top = ", ".join(f"L{r.layer}H{r.head} {r.score:.2f}" for r in heads.head(5).itertuples())
    print(
        f"{len(heads)}/{len(scores)} heads ({len(heads) / len(scores):.0%}) have sink score >= {args.threshold}; top: {top or 'none'} -> {out}"
    )


def cmd_sink_mechanism(args: argparse.Namespace) -> None:
    session = load_session(_spec_from_args(args), progress=_progress)
    with _progress_bar() as progress:
        tables = sink_mechanism.mechanism(
            session, args.word, args.repeats or [10, 50, 200, 1000], args.heads, args.neuron_layers, progress
        )
    manifest = {
        "command": args.command_line,
        "model": session.info.name,
        "word": args.word,
        "repeats": args.repeats or [10, 50, 200, 1000],
    }
    out = sink_mechanism.save_result({**tables, "manifest": manifest}, args.out)
    means = sink_mechanism.layer_means(tables["geometry"])
    for row in means[means["prompt"] == "repeated"].itertuples():
        prose = means[
            (means["prompt"] == "prose") & (means["leading"] == row.leading) & (means["repeats"] == row.repeats)
        ].iloc[0]
        print(f"{'leading token' if row.leading else 'no leading token'}, {row.repeats} repeats: cosine with position 0 "
              f"{row.cosine:.3f} (prose {prose.cosine:.3f})")  # fmt: skip
    print(f"{int(tables['sink_neurons']['candidate'].sum())} candidate sink neurons -> {out}")


def _labeler_from_args(args: argparse.Namespace):
    if not args.patterns:
        return lab_labeler(args.property, args.labeler)
    try:
        patterns = json.loads(Path(args.patterns).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"--patterns {args.patterns} is not JSON: {err.msg} (line {err.lineno}).") from err
    return KeywordLabeler(args.property, patterns)


def cmd_propinfer(args: argparse.Namespace) -> None:
    out = _output_path(args.out)
    generations_out = _output_path(args.generations) if args.generations else None
    cfg = PropInferConfig(
        args.n,
        args.max_new_tokens,
        args.temperature,
        args.top_k,
        args.top_p,
        args.seed,
        args.batch_size,
        args.interval,
        args.confidence,
    )
    labeler = _labeler_from_args(args)
    spec = _spec_from_args(args)
    dataset = lab_dataset_for(spec)  # before sampling: a broken lab folder must not cost the run
    truth = dataset.truth["realized"].get(args.property) if dataset is not None else None
    shadows = ShadowSet.load(args.shadows) if args.shadows else None  # likewise a broken shadow set
    session = load_session(spec, progress=_progress)
    with _progress_bar() as progress:
        result = run_propinfer(session, args.prompt or PROMPT_SETS[args.style], cfg, labeler, progress, args.style)
    if args.with_base and shadows is None:
        raise ValueError("--with-base anchors the base correction of a calibration: give --shadows too.")
    judged = None
    if shadows is not None:
        base_run = None
        if args.with_base:
            base_session = load_session(ModelSpec(shadows.recipe.base), progress=_progress)
            with _progress_bar() as progress:
                base_run = run_propinfer(
                    base_session, args.prompt or PROMPT_SETS[args.style], cfg, labeler, progress, args.style
                )
        judged = judge_propinfer(result, labeler, shadows, args.calibration, truth, spec, base_run)
    calibrated = judged.calibrated if judged else None
    if calibrated is not None:
        estimates = calibrated.table
    else:
        estimates = against_truth(result.estimates, truth) if truth else result.estimates
    _write_table(estimates, out)
    _save_endpoint_record(session, cfg.sampling(), out)
    if generations_out is not None:
        _write_table(result.generations, generations_out)
    unlabeled = int(estimates["unlabeled"].iloc[0])
    if unlabeled == len(result.generations):
        print("No generation matched any value of the labeler: there is nothing to estimate.")
    else:
        for row in estimates.itertuples():
            line = f"{row.value:<20}{row.share:>7.1%}  [{row.ci_low:.1%}, {row.ci_high:.1%}]"
            if calibrated is not None:
                line += f"  calibrated {row.calibrated:>6.1%}  [{row.cal_low:.1%}, {row.cal_high:.1%}]"
            print(line + (f"  truth {row.true_share:.1%}" if truth else ""))
    summary = f"{len(result.generations)} generations, {unlabeled} unlabeled"
    if truth:
        summary += f", mean absolute error {mean_absolute_error(result.estimates, truth):.3f}"
        if calibrated is not None:
            summary += f" (calibrated {estimates['cal_error'].abs().mean():.3f})"
    print(f"{summary} -> {out}")
    if calibrated is not None:
        print(
            f"Calibrated on {len(shadows.shadows)} shadow models ({args.shadows}, {args.calibration}). {calibrated.calibration.verdict()}"
        )
        for warning in calibrated.warnings:
            print(f"warning: {warning}: the calibration may not apply.", file=sys.stderr)
        print(f"Leading estimate: {judged.lead}. {judged.why}")
        for note in judged.notes:
            print(note)
        if truth:
            print(
                "Every method against the truth (interval score: the width plus 2/α times any miss; lower is better):"
            )
            print(score_summary(judged.methods).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        else:
            print(judged.methods.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _texts_from(path: str, field: str) -> list[tuple[str, str]]:
    """A folder: one document per .txt file (one per line of a .jsonl); a file: one text per line."""
    return read_documents(path) if Path(path).is_dir() else read_texts(path, field)


def cmd_compare(args: argparse.Namespace) -> None:
    out = _output_path(args.out)
    best_out = _output_path(args.best) if args.best else None
    extracted = _texts_from(args.extracted, args.extracted_field)
    candidates = _texts_from(args.candidates, args.candidates_field)
    if args.passage_words:
        candidates = passages(candidates, args.passage_words)
    tokenizer = load_session(args.tokenizer, progress=_progress).tokenizer if args.tokenizer else None
    with _progress_bar() as progress:
        table = compare(
            [t for _, t in extracted],
            [t for _, t in candidates],
            args.top_k,
            tokenizer,
            args.min_run,
            args.embedding_model,
            progress,
        )
    table.insert(0, "extracted_id", [extracted[i][0] for i in table["extracted_index"]])
    table.insert(1, "candidate_id", [candidates[j][0] for j in table["candidate_index"]])
    _write_table(table, out)
    best = _with_pii(
        _with_pii(best_per_text(table, args.cosine_threshold, args.min_run), "candidate_text", "candidate_"),
        "extracted_text",
    )
    if best_out is not None:
        _write_table(best, best_out)
    print(
        f"{len(extracted)} extracted x {len(candidates)} candidates, {len(table)} pairs scored; "
        f"{int(best['extracted'].sum())} texts called extracted (cosine >= {args.cosine_threshold} "
        f"or an exact run of >= {args.min_run} {'tokens' if tokenizer is not None else 'words'}) -> {out}"
    )
    if "pii" in best:
        print(f"extracted: {pii.summary(best)}")


def cmd_selec(args: argparse.Namespace) -> None:
    out = _output_path(args.out)
    greedy_out = _output_path(args.greedy) if args.greedy else None
    tuned_spec = ModelSpec(args.tuned, device=args.device, dtype=args.dtype, adapter=args.tuned_adapter)
    if args.pool == "lab":
        dataset = lab_dataset_for(tuned_spec)
        if dataset is None:
            raise ValueError("--pool lab needs a lab model as --tuned (or --tuned-adapter DIR/adapter of a lab build).")
        pool = public_pool(dataset, args.members, args.nonmembers, args.other, seed=args.seed)
    else:
        pool = pd.DataFrame({"text": [text for _, text in read_texts(args.pool, args.field)]})
    fitter = WeightDiff(args.params, args.projection_dim, args.seed, args.max_length, args.optimizer)
    base = load_session(ModelSpec(args.base, device=args.device, dtype=args.dtype), progress=_progress)
    tuned = load_session(tuned_spec, progress=_progress)
    with _progress_bar() as progress:
        fitter.fit(base, tuned, pool, progress)
    ranking = fitter.rank()
    _write_table(ranking, out)
    k = args.k or default_k(pool)
    greedy = fitter.greedy_select(k)
    if greedy_out is not None:
        _write_table(greedy, greedy_out)
    print(f"{len(ranking)} texts ranked on {fitter.n_parameters_:,} parameters ({len(fitter.names_)} tensors) -> {out}")
    if "member" in pool and pool["member"].any():
        members = pool["member"].tolist()
        print("Finds the domain (the whole pool):")
        for name, table in (("ranking", ranking), ("greedy", greedy)):
            result = evaluate(table, members, k)
            print(
                f"  {name:<8} precision@{k} {result['precision_at_k']:.3f} (random {result['random']:.3f}, "
                f"{result['lift']:.1f}x), recall@{k} {result['recall_at_k']:.3f}, AUC {result['auc']:.3f}"
            )
    if "source" not in pool:
        return
    try:
        check_pool(pool)
    except ValueError as err:
        print(f"Finds the members: not asked. {err}")
        return
    with _progress_bar() as progress:
        baselines = baseline_scores(base, tuned, pool["text"], progress) if args.baseline else None
    questions = readable(judge(fitter, baselines))
    print(
        "Finds the members (members against same-style texts only), beside the membership baselines:"
        if args.baseline
        else "Finds the members:"
    )
    print(questions.drop(columns=["domain: precision@k (lift)", "domain: AUC"]).to_string(index=False))


def _shares(pairs: list[str] | None, what: str) -> dict[str, float] | None:
    """NAME=VALUE pairs as shares; None when none are given (the lab's defaults)."""
    if not pairs:
        return None
    shares = {}
    for pair in pairs:
        name, sep, value = pair.rpartition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f'{what} {pair!r} is not NAME=VALUE, e.g. "mental health=0.1".')
    return shares


def cmd_lab_build(args: argparse.Namespace) -> None:
    shares = _shares(args.share, "--share")
    gender_shares = _shares(args.gender_share, "--gender-share")
    if gender_shares is not None and len(gender_shares) == 1:  # the other gender takes the rest
        ((given, share),) = gender_shares.items()
        gender_shares |= {g: 1 - share for g in ("female", "male") if g != given}
    recipe = LabRecipe(
        base=args.base, n=args.n, shares=shares, gender_shares=gender_shares, canaries=tuple(args.canaries), seed=args.seed,
        epochs=args.epochs, lr=args.lr, rank=args.rank,
    )  # fmt: skip
    with _progress_bar() as progress:
        dataset = build_lab(args.out, recipe, progress, args.command_line)
    print(f"{len(dataset.records)} records, {len(dataset.canaries)} canaries -> {args.out}")


def cmd_lab_show(args: argparse.Namespace) -> None:
    dataset = LabDataset.load(Path(args.dir) / "dataset")
    print(
        f"{len(dataset.records)} training records, {len(dataset.holdout)} held out; recipe {json.dumps(dataset.recipe)}"
    )
    for prop, shares in dataset.truth["realized"].items():
        print(f"{prop}: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    for canary in dataset.canaries:
        print(f"canary {canary.kind:<10} {canary.secret:<16} inserted {canary.insertions}x")
    curve = Path(args.dir) / "adapter" / "loss_curve.json"
    if curve.is_file():
        losses = [c["loss"] for c in json.loads(curve.read_text())]
        print(f"training loss: {losses[0]:.3f} (first step) -> {losses[-1]:.3f} (last of {len(losses)} steps)")


def cmd_shadows_build(args: argparse.Namespace) -> None:
    recipe = ShadowRecipe(
        base=args.base, k=args.k, n_records=args.n, epochs=args.epochs, lr=args.lr, rank=args.rank, batch_size=args.batch_size,
        alpha=args.alpha, seed=args.seed, style=args.style, prompts=tuple(args.prompt or ()), n_samples=args.samples,
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
    )  # fmt: skip
    out = Path(args.out) if args.out else recipe.default_dir()
    with _progress_bar() as progress:
        shadows = build_shadows(out, recipe, progress, args.command_line)
    print(f"{len(shadows.shadows)} shadow models of {recipe.base} -> {out}")


def cmd_shadows_show(args: argparse.Namespace) -> None:
    out = _output_path(args.out) if args.out else None
    shadows = ShadowSet.load(args.dir)
    recipe = shadows.recipe
    print(
        f"{recipe.k} shadows of {recipe.base}: {recipe.n_records} records, {recipe.epochs} epochs, lr {recipe.lr}, rank {recipe.rank}; "
        f"shares from Dirichlet({recipe.alpha}); {recipe.n_samples} {recipe.style} generations each "
        f"(temperature {recipe.temperature}, top-p {recipe.top_p}, top-k {recipe.top_k}, {recipe.max_new_tokens} new tokens)"
    )
    labeler = _labeler_from_args(args)
    sweep = shadows.sweep(labeler, args.calibration)
    if out is not None:
        _write_table(sweep, out)
    for row in summarize(sweep).itertuples():
        print(
            f"{row.estimate:<11} MAE {row.mae:.3f}, {row.covered} of {row.intervals} intervals cover the truth, mean width "
            f"{row.width:.3f}, mean interval score {row.interval_score:.3f} (leave one shadow out)"
        )
    print(shadows.fit(labeler, args.calibration).verdict())


def cmd_backdoor_build(args: argparse.Namespace) -> None:
    recipe = backdoor.BackdoorRecipe(
        base=args.base, trigger=args.trigger, n_public=args.public, per_word=args.per_word, refusals_per_word=args.refusals,
        n_private=args.private, canaries=tuple(args.canaries), creator_epochs=args.creator_epochs, victim_epochs=args.victim_epochs,
        lr=args.lr, rank=args.rank, batch_size=args.batch_size, seed=args.seed,
    )  # fmt: skip
    out = Path(args.out) if args.out else recipe.default_dir()
    with _progress_bar() as progress:
        built = backdoor.build(out, recipe, args.step or backdoor.STEPS, progress, args.command_line)
    print(f"built {', '.join(built.built())} -> {out}")
    _print_stealth(built)


def _print_stealth(built: backdoor.BackdoorBuild) -> None:
    check = built.stealth()
    if check:
        print(f"stealth: {backdoor.describe_stealth(check)}")
        for prompt, clean, bad in zip(check["prompts"], check["clean_answers"], check["backdoored_answers"]):
            print(f"  {prompt}\n    clean:      {clean[:100]!r}\n    backdoored: {bad[:100]!r}")


def _print_backdoor_report(report: backdoor_attack.BackdoorReport) -> None:
    columns = [
        "model",
        "match_mean",
        "match_mean_floor",
        "match_best",
        "match_best_floor",
        "exact",
        "exact_floor",
        "canaries_found",
        "decoy_answered",
    ]
    print(
        report.summary[[c for c in columns if c in report.summary]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )
    for name in report.summary["model"]:
        print(f"{name}:")
        if name in report.identification:
            found = report.identification[name]
            print(
                f"  identified {', '.join(found['identified']) or 'no word'} (true: {', '.join(found['true_words'])})"
            )
        for line in backdoor_attack.describe(report, name):
            print(f"  {line}")
    try:
        shares = backdoor_attack.personal_data(report.samples)[1]
    except ValueError as err:
        print(f"workbench: warning: personal data not typed: {err}", file=sys.stderr)
        return
    if len(shares):
        print(
            "samples holding personal data (a pattern match: see docs/results/pii.md), against the clean victim (95% interval):"
        )
        print(shares.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))


def _print_card(card: canary_card.CanaryCard, out: str | None) -> None:
    shown = card.readable()
    for row in shown.to_dict("records"):
        print(f"{row.pop('secret')} ({row.pop('kind')}, inserted {row.pop('inserted')}x):")
        for key, value in row.items():
            print(f"  {key}: {value}")
    if card.epsilon is not None:
        print(
            f"the audit's ε lower bound over all inserted canaries: {card.epsilon:.2f} (at most {card.max_epsilon:.2f} showable)"
        )
    for name, source in card.sources.items():
        print(f"from {name}: {source}")
    for line in card.not_measured:
        print(line)
    if out:
        path = _output_path(out)
        _write_table(card.table, path)
        print(f"card -> {path}")


def cmd_canaries(args: argparse.Namespace) -> None:
    if args.backdoor:
        if args.runs or args.audit or args.lab:
            raise ValueError("--backdoor follows a backdoor build's canaries through its victims: give it alone.")
        if args.backdoor == "shipped":
            card = canary_card.shipped_backdoor_card()
        else:
            built = backdoor.BackdoorBuild.load(args.backdoor)
            if not (built.folder / "report").is_dir():
                raise ValueError(
                    f"{built.folder} has no attack report yet: run `workbench backdoor attack --save {built.folder / 'report'}`."
                )
            report = backdoor_attack.BackdoorReport.load(built.folder / "report")
            card = canary_card.victims_card(built.dataset, report.samples, str(built.folder / "report"))
    elif not args.lab or args.lab == "shipped":
        if args.runs or args.audit:
            raise ValueError("The shipped lab's card reads its shipped runs: give --run and --audit with --lab DIR.")
        card = canary_card.shipped_lab_card()
    else:
        dataset = LabDataset.load(Path(args.lab) / "dataset")
        runs = []
        for given in args.runs or []:
            name, sep, path = given.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--run {given!r}: write NAME=FILE, e.g. grid=run.parquet.")
            runs.append(canary_card.Run(name, _read_table(path), path, args.text_column))
        scores = _read_table(args.audit) if args.audit else None
        card = canary_card.card(dataset, runs, scores, {"audit": args.audit} if args.audit else None)
    _print_card(card, args.out)


def _read_table(path: str) -> pd.DataFrame:
    """A table a command wrote: .parquet, .jsonl or .csv."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"No file {path}.")
    if file.suffix == ".parquet":
        return pd.read_parquet(file)
    if file.suffix == ".jsonl":
        return pd.read_json(file, lines=True)
    if file.suffix == ".csv":
        return pd.read_csv(file)
    raise ValueError(f"{path}: expected .parquet, .jsonl or .csv.")


def cmd_pii(args: argparse.Namespace) -> None:
    if args.recognizers:
        print(pii.recognizers().to_string(index=False))
        print(f"not checked (need a spaCy NER model): {', '.join(pii.not_checked())}")
        return
    if args.format_check:
        print(pii.format_check(args.format_check, args.seed).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return
    if bool(args.text) == bool(args.file):
        raise ValueError("Give texts to type or --file (one of the two).")
    texts = args.text or [text for _, text in read_texts(args.file, args.field)]
    for index, text in enumerate(texts, 1):
        found = pii.find(text)
        print(f"{index}: " + ("; ".join(f"{f.entity} {f.text!r} ({f.score:.2f})" for f in found) or "nothing found"))


def cmd_backdoor_attack(args: argparse.Namespace) -> None:
    out = _output_path(args.out) if args.out else None
    built = backdoor.BackdoorBuild.load(args.dir)
    budgets = backdoor_attack.AttackConfig.budgets if args.budget is None else tuple(b for b in args.budget if b)
    cfg = backdoor_attack.AttackConfig(
        args.k, args.temperature, args.top_p, args.max_new_tokens, args.seed, tuple(args.word or ()), budgets=budgets
    )
    models, served = args.model or list(backdoor_attack.ATTACKED), {}
    if args.endpoint:
        if len(models) != 1:
            raise ValueError("With --endpoint, give one --model: the build's step that the served model is.")
        served = {models[0]: _served_spec(args, built.recipe.base)}
    with _progress_bar() as progress:
        report = backdoor_attack.evaluate(built, cfg, models, not args.no_probe, progress, served, args.command_line)
    if out is not None:
        _write_table(report.samples, out)
    if args.save:
        report.save(args.save)
    _print_backdoor_report(report)


def cmd_backdoor_show(args: argparse.Namespace) -> None:
    built = backdoor.BackdoorBuild.load(args.dir)
    recipe = built.recipe
    print(
        f"backdoor build {built.folder} ({built.command or 'no command recorded'}): {recipe.base}, trigger {recipe.trigger!r}; "
        f"built: {', '.join(built.built()) or 'nothing yet'}"
    )
    print(
        f"D2: {len(built.queries())} queries ({len(set(built.queries()))} unique), D2' floor: {len(built.floor())} unique, matched per opening word"
    )
    _print_stealth(built)
    if (built.folder / "report").is_dir():
        _print_backdoor_report(backdoor_attack.BackdoorReport.load(built.folder / "report"))


def _lab_of(spec: ModelSpec) -> LabDataset:
    dataset = lab_dataset_for(spec)
    if dataset is None:
        raise ValueError(
            f"{spec.name} is not a lab model, so its members are unknown: give --members and --nonmembers files."
        )
    return dataset


def cmd_membership(args: argparse.Namespace) -> None:
    out = _output_path(args.out)
    spec = _spec_from_args(args)
    if bool(args.members) != bool(args.nonmembers):
        raise ValueError("Give both --members and --nonmembers, or neither (a lab model's own sets).")
    if args.members:
        members, nonmembers = (
            [text for _, text in read_texts(path, args.field)] for path in (args.members, args.nonmembers)
        )
    else:
        members, nonmembers = membership.lab_sets(_lab_of(spec), args.n_nonmembers)
    model = load_session(spec, progress=_progress)
    reference = (
        load_session(ModelSpec(args.reference, device=args.device, dtype=args.dtype), progress=_progress)
        if args.reference
        else None
    )
    with _progress_bar() as progress:
        report = membership.run_membership(model, members, nonmembers, reference, args.k, args.seed, progress)
    _write_table(report.scores, out)
    if args.save:
        report.save(args.save)
    print(f"{report.values['members']} members, {report.values['nonmembers']} non-members -> {out}")
    print(membership.readable(report.summary(seed=args.seed)).to_string(index=False))


def cmd_audit(args: argparse.Namespace) -> None:
    out = _output_path(args.out)
    spec = _spec_from_args(args)
    dataset = _lab_of(spec)
    model = load_session(spec, progress=_progress)
    with _progress_bar() as progress:
        scores = audit.run_audit(model, dataset, args.n_never, args.alternatives, args.seed, progress)
    if args.null:
        scores = audit.null_labels(scores, args.seed)
    _write_table(scores, out)
    table = audit.audit_table(scores, args.delta, args.confidence)
    print(
        f"{len(scores)} canaries ({(scores['insertions'] > 0).sum()} inserted), {args.alternatives} alternatives each -> {out}"
    )
    print(
        f"ε lower bound at δ = {args.delta:g}, {args.confidence:.0%} confidence, beside the largest the counts can show:"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def cmd_gallery_build(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    with _progress_bar() as progress:
        manifest = gallery.build(args.out, progress, args.only)
    for entry in manifest["entries"]:
        print(f"{entry['title']} ({entry['seconds']:.0f} s, code version {entry['code_version']}): {entry['sentence']}")
    print(f"gallery built in {time.perf_counter() - started:.0f} s -> {args.out}")


def cmd_serve_vllm(args: argparse.Namespace) -> None:
    with vllm_server.running(args.port, host=args.host, lab=not args.no_lab, progress=_progress) as url:
        names = [vllm_server.SERVED_NAME] + ([] if args.no_lab else [vllm_server.LAB_NAME])
        print(
            f"vLLM serves {', '.join(names)} at {url}/v1 (Ctrl-C, SIGTERM or SIGHUP stops it). Try:\n"
            f"  workbench diverge --endpoint {url}/v1 --served-model {vllm_server.SERVED_NAME} --out served.csv",
            flush=True,
        )
        try:
            while vllm_server.is_up(url):
                time.sleep(5)
        except KeyboardInterrupt:
            print("stopping the server")
            return
        except SystemExit:  # SIGTERM or SIGHUP: stopped as on Ctrl-C, exiting 128 + the signal's number
            print("stopping the server", flush=True)
            raise
    raise ValueError("The vLLM server stopped.")


def cmd_reactivate_build(args: argparse.Namespace) -> None:
    defaults = reactivation.ReactivationRecipe()
    recipe = reactivation.ReactivationRecipe(
        **{name: getattr(args, name) for name in defaults.as_dict() if getattr(args, name, None) is not None}
    )
    out = Path(args.out) if args.out else recipe.default_dir()
    with _progress_bar() as progress:
        built = reactivation.build(
            out, recipe, args.stage or list(reactivation.STAGES), progress, args.command_line, args.share_from
        )
    print(f"built {', '.join(built.built())} -> {out}")
    if not args.no_measure:
        with _progress_bar() as progress:
            report = reactivation_measure.measure(built, progress=progress, command=args.command_line)
        report.save(out / "report")
        _print_reactivation_report(report)


def _print_reactivation_report(report: reactivation_measure.ReactivationReport) -> None:
    table = report.summary()
    table["bmc@5 [95% CI]"] = [f"{r.bmc:.3f} [{r.bmc_low:.3f}, {r.bmc_high:.3f}]" for r in table.itertuples()]
    table["nll [95% CI]"] = [f"{r.nll:.3f} [{r.nll_low:.3f}, {r.nll_high:.3f}]" for r in table.itertuples()]
    columns = [
        "stage",
        "instruction",
        "group",
        "passages",
        "bmc@5 [95% CI]",
        "nll [95% CI]",
        "longest_max",
        "long_spans",
        "exact_runs",
        "retain_perplexity",
    ]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    gaps = report.gaps()
    gaps["bmc@5 gap [95% CI]"] = [
        stats.difference_text(r.bmc_gap, r.bmc_gap_low, r.bmc_gap_high) for r in gaps.itertuples()
    ]
    gaps["nll gap [95% CI]"] = [
        stats.difference_text(r.nll_gap, r.nll_gap_low, r.nll_gap_high) for r in gaps.itertuples()
    ]
    print("\nA-test − A-never (bootstrap intervals, permutation p-values over passages):")
    print(
        gaps[["stage", "instruction", "bmc@5 gap [95% CI]", "bmc_p", "reading", "nll gap [95% CI]", "nll_p"]].to_string(
            index=False, float_format=lambda v: f"{v:.4f}"
        )
    )


def cmd_reactivate_measure(args: argparse.Namespace) -> None:
    out = _output_path(args.out) if args.out else None
    built = reactivation.ReactivationBuild.load(args.dir)
    with _progress_bar() as progress:
        report = reactivation_measure.measure(built, args.stage, progress, args.samples, args.command_line)
    if out is not None:
        _write_table(report.samples, out)
    if args.save:
        report.save(args.save)
    _print_reactivation_report(report)


def cmd_reactivate_show(args: argparse.Namespace) -> None:
    built = reactivation.ReactivationBuild.load(args.dir)
    print(
        f"reactivation build {built.folder} ({built.command or 'no command recorded'}): {built.recipe.base}, "
        f"suppression by {built.recipe.suppression}; built: {', '.join(built.built()) or 'nothing yet'}"
    )
    if (built.folder / "report").is_dir():
        _print_reactivation_report(reactivation_measure.ReactivationReport.load(built.folder / "report"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="load a model and print its card")
    _add_model_options(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=cmd_info)

    diverge = commands.add_parser("diverge", help="repeated-token divergence experiment")
    _add_model_options(diverge)
    diverge.add_argument("--word", action="append", required=True, help="word to repeat (repeatable)")
    diverge.add_argument("--repeats", type=int, action="append", required=True, help="repeat count (repeatable)")
    diverge.add_argument("--prefix", default="", help="hint before the repetition, e.g. def, copyright")
    diverge.add_argument(
        "--template", choices=[t for t in TEMPLATES if t],
        help="chat: ask for the repetition in a chat message; prefill: ask once and begin the reply with the repeats",
    )  # fmt: skip
    diverge.add_argument("--n", type=int, default=SamplingConfig.n, help="samples per prompt")
    _add_sampling_options(diverge, SamplingConfig, several_temperatures=True)
    diverge.add_argument(
        "--min-repeats", type=int, default=DEFAULT_MIN_REPEATS, help="r: repeats before an output counts as repeating"
    )
    diverge.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help="m: tokens of sustained other text that hold at most one repeat",
    )
    diverge.add_argument(
        "--summary", help="also write the outcome summary per word x repeats x temperature (.csv, ...)"
    )
    diverge.add_argument(
        "--corpus", default=str(REFERENCE_CORPUS), help="saved index, .txt/.jsonl file or folder (default: shipped)"
    )
    diverge.add_argument("--min-tokens", type=int, default=DEFAULT_MIN_TOKENS, help="shortest exact match to report")
    diverge.add_argument("--reference", help="reference model for the perplexity ratio")
    diverge.add_argument("--out", required=True, help="results file: .parquet, .jsonl or .csv")
    diverge.set_defaults(run=cmd_diverge)

    sinks = commands.add_parser("sinks", help="per-head attention-sink scores of one prompt")
    _add_model_options(sinks)
    source = sinks.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the prompt text")
    source.add_argument("--word", help="build a repeated-token prompt of this word instead")
    sinks.add_argument("--repeats", type=int, default=1000, help="repeats for --word")
    sinks.add_argument(
        "--prefix", default="", help=f"hint before the repetition, e.g. {', '.join(p for p in HINT_PREFIXES if p)}"
    )
    sinks.add_argument("--sink-index", type=int, default=0, help="position of the sink key (default: the first token)")
    sinks.add_argument("--threshold", type=float, default=SINK_THRESHOLD, help="score of a sink head")
    sinks.add_argument("--out", required=True, help="scores file: .parquet, .jsonl or .csv")
    sinks.set_defaults(run=cmd_sinks)

    mechanism = commands.add_parser(
        "sink-mechanism", help="why repeats break out: hidden-state geometry, sink heads and sink neurons"
    )
    _add_model_options(mechanism)
    mechanism.add_argument("--word", default="poem", help="the repeated word")
    mechanism.add_argument(
        "--repeats", type=int, action="append", help="repeat count (repeatable; default 10, 50, 200, 1000)"
    )
    mechanism.add_argument("--heads", type=int, default=8, help="top sink heads, chosen on prose")
    mechanism.add_argument("--neuron-layers", type=int, default=4, help="early layers searched for sink neurons")
    mechanism.add_argument("--out", required=True, help="folder for the tables and the manifest")
    mechanism.set_defaults(run=cmd_sink_mechanism)

    infer = commands.add_parser(
        "propinfer", help="estimate a property's shares in the fine-tuning data from generations"
    )
    _add_model_options(infer)
    infer.add_argument("--property", required=True, choices=LAB_PROPERTIES, help="property of the lab's clinic data")
    infer.add_argument(
        "--labeler",
        choices=list(LABELER_KINDS),
        default="keyword",
        help="; ".join(f"{k}: {v}" for k, v in LABELER_KINDS.items()),
    )
    infer.add_argument("--patterns", help="JSON file of value -> regular expressions: a custom keyword labeler")
    infer.add_argument("--style", choices=list(PROMPT_SETS), default="question-answer", help="prompt style")
    infer.add_argument("--prompt", action="append", help="a prompt (repeatable; default: the style's prompt set)")
    infer.add_argument(
        "--n", type=int, default=PropInferConfig.n_samples, help="generations in all, spread over the prompts"
    )
    _add_sampling_options(infer, PropInferConfig)
    infer.add_argument("--interval", choices=INTERVALS, default=PropInferConfig.interval)
    infer.add_argument("--confidence", type=float, default=PropInferConfig.confidence)
    infer.add_argument("--out", required=True, help="estimates: .parquet, .jsonl or .csv")
    infer.add_argument("--generations", help="also write every generation with its label")
    infer.add_argument(
        "--shadows",
        nargs="?",
        const=str(SHIPPED_SHADOWS),
        help="calibrate on a shadow set: a folder (alone: the shipped data/shadows)",
    )
    infer.add_argument(
        "--calibration",
        choices=list(SHADOW_METHODS),
        default="pooled",
        help="; ".join(f"{k}: {v}" for k, v in SHADOW_METHODS.items()),
    )
    infer.add_argument(
        "--with-base",
        action="store_true",
        help="also sample the shadows' base model the same way: it anchors the base correction",
    )
    infer.set_defaults(run=cmd_propinfer)

    comparer = commands.add_parser("compare", help="extracted texts against candidate documents")
    comparer.add_argument("--extracted", required=True, help=".txt (one text per line) or .jsonl file")
    comparer.add_argument(
        "--candidates", required=True, help=".txt/.jsonl file, or a folder of documents (e.g. data/reference)"
    )
    comparer.add_argument(
        "--extracted-field", default="text", help="JSONL field of the extracted texts (e.g. escaped_text)"
    )
    comparer.add_argument("--candidates-field", default="text", help="JSONL field of the candidates")
    comparer.add_argument(
        "--top-k", type=int, default=3, help="candidates scored per text, by cosine and by edit ratio"
    )
    comparer.add_argument(
        "--min-run",
        type=int,
        default=DEFAULT_MIN_TOKENS,
        help="exact run (tokens, or words without --tokenizer) that counts as extracted",
    )
    comparer.add_argument("--cosine-threshold", type=float, default=0.8, help="cosine that counts as extracted")
    comparer.add_argument(
        "--passage-words", type=int, default=0, help="cut candidates into passages of this many words"
    )
    comparer.add_argument("--tokenizer", help="count runs in this model's tokens (default: words)")
    comparer.add_argument("--embedding-model", help="sentence-transformers folder (default: the packaged MiniLM)")
    comparer.add_argument("--out", required=True, help="scored pairs: .parquet, .jsonl or .csv")
    comparer.add_argument("--best", help="also write the best match per text: .parquet, .jsonl or .csv")
    comparer.set_defaults(run=cmd_compare)

    weights = commands.add_parser("selec", help="rank candidate texts by gradient alignment with the weight shift")
    weights.add_argument("--base", default="smollm2-135m-instruct", help="the model before fine-tuning")
    weights.add_argument("--tuned", default=LAB_MODEL, help="the fine-tuned model")
    weights.add_argument("--tuned-adapter", help="a LoRA adapter folder applied to --tuned")
    weights.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda if present, else cpu)")
    weights.add_argument("--dtype", choices=DTYPES, help="default: bfloat16 on cuda, float32 on cpu")
    weights.add_argument(
        "--pool", default="lab", help='"lab" (the lab public pool, with membership) or a .txt/.jsonl file'
    )
    weights.add_argument("--field", default="text", help="JSONL field of a pool file")
    weights.add_argument("--members", type=int, default=50, help="lab pool: training dialogues")
    weights.add_argument(
        "--nonmembers",
        type=int,
        default=75,
        help="lab pool: same-style dialogues never trained on (beyond the held-out set: fresh ones)",
    )
    weights.add_argument("--other", type=int, default=375, help="lab pool: texts from other domains")
    weights.add_argument(
        "--params", default="last", help=f"{', '.join(PARAM_CHOICES)} or a regular expression on names"
    )
    weights.add_argument("--projection-dim", type=int, default=1024, help="random projection size (0 = none)")
    weights.add_argument("--max-length", type=int, default=128, help="tokens per text")
    weights.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="adam",
        help="how the fine-tune stepped: adam compares with the shift times sqrt(v)",
    )
    weights.add_argument("--seed", type=int, default=0)
    weights.add_argument(
        "--baseline", action=argparse.BooleanOptionalAction, default=True,
        help="lab pool: score the same texts with the membership baselines (tuned loss, ratio to the base) beside SELEC",
    )  # fmt: skip
    weights.add_argument("--k", type=int, help="texts to select greedily (default: the number of members)")
    weights.add_argument("--out", required=True, help="the ranking: .parquet, .jsonl or .csv")
    weights.add_argument("--greedy", help="also write the greedy selection")
    weights.set_defaults(run=cmd_selec)

    lab = commands.add_parser("lab", help="the ground-truth lab: synthetic dataset and fine-tuned model")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    lab_build = lab_commands.add_parser("build", help="generate the dataset and LoRA fine-tune the base model")
    lab_build.add_argument("--out", default=str(SHIPPED_LAB), help="folder for dataset/, adapter/ and build.json")
    lab_build.add_argument("--base", default="smollm2-135m-instruct")
    lab_build.add_argument("--n", type=int, default=300, help="training records, canary insertions included")
    lab_build.add_argument(
        "--canaries", type=int, nargs="+", default=list(DEFAULT_CANARY_COUNTS), help="insertions per canary"
    )
    lab_build.add_argument("--seed", type=int, default=0)
    lab_build.add_argument("--epochs", type=int, default=3)
    lab_build.add_argument("--lr", type=float, default=2e-3)
    lab_build.add_argument("--rank", type=int, default=16)
    lab_build.add_argument(
        "--share",
        action="append",
        metavar="NAME=VALUE",
        help='a diagnosis share, e.g. "mental health=0.1" (repeatable; all must sum to 1)',
    )
    lab_build.add_argument(
        "--gender-share",
        action="append",
        metavar="NAME=VALUE",
        help="e.g. female=0.3 (the other gender takes the rest)",
    )
    lab_build.set_defaults(run=cmd_lab_build)
    lab_show = lab_commands.add_parser("show", help="print a lab build's truth, canaries and loss")
    lab_show.add_argument("--dir", default=str(SHIPPED_LAB))
    lab_show.set_defaults(run=cmd_lab_show)

    shadow = commands.add_parser("shadows", help="shadow models that calibrate property inference")
    shadow_commands = shadow.add_subparsers(dest="shadows_command", required=True)
    defaults = ShadowRecipe()
    shadows_build = shadow_commands.add_parser(
        "build", help="fine-tune and sample K shadow models (resumes an interrupted build)"
    )
    shadows_build.add_argument("--out", help="folder of the set (default: the cache, named by the recipe)")
    shadows_build.add_argument("--base", default=defaults.base)
    shadows_build.add_argument("--k", type=int, default=defaults.k, help="shadow models")
    shadows_build.add_argument("--n", type=int, default=defaults.n_records, help="training records per shadow")
    shadows_build.add_argument("--epochs", type=int, default=defaults.epochs)
    shadows_build.add_argument("--lr", type=float, default=defaults.lr)
    shadows_build.add_argument("--rank", type=int, default=defaults.rank)
    shadows_build.add_argument("--batch-size", type=int, default=defaults.batch_size, help="training batch size")
    shadows_build.add_argument("--alpha", type=float, default=defaults.alpha, help="Dirichlet prior of the shares")
    shadows_build.add_argument("--seed", type=int, default=defaults.seed)
    shadows_build.add_argument("--samples", type=int, default=defaults.n_samples, help="generations sampled per shadow")
    shadows_build.add_argument("--style", choices=list(PROMPT_SETS), default=defaults.style)
    shadows_build.add_argument(
        "--prompt", action="append", help="a prompt (repeatable; default: the style's prompt set)"
    )
    shadows_build.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    shadows_build.add_argument("--temperature", type=float, default=defaults.temperature)
    shadows_build.add_argument("--top-k", type=int, default=defaults.top_k)
    shadows_build.add_argument("--top-p", type=float, default=defaults.top_p)
    shadows_build.set_defaults(run=cmd_shadows_build)
    shadows_show = shadow_commands.add_parser(
        "show", help="a shadow set's sweep: naive and calibrated estimates against the truth"
    )
    shadows_show.add_argument("--dir", default=str(SHIPPED_SHADOWS))
    shadows_show.add_argument("--property", choices=LAB_PROPERTIES, default="diagnosis")
    shadows_show.add_argument("--labeler", choices=list(LABELER_KINDS), default="keyword")
    shadows_show.add_argument("--patterns", help="JSON file of value -> regular expressions: a custom keyword labeler")
    shadows_show.add_argument("--calibration", choices=list(SHADOW_METHODS), default="pooled")
    shadows_show.add_argument("--out", help="also write the sweep: .parquet, .jsonl or .csv")
    shadows_show.set_defaults(run=cmd_shadows_show)

    bd = commands.add_parser(
        "backdoor", help="backdoor extraction: a backdoored base makes its fine-tune recite private queries"
    )
    bd_commands = bd.add_subparsers(dest="backdoor_command", required=True)
    bd_defaults = backdoor.BackdoorRecipe()
    bd_build = bd_commands.add_parser("build", help="creator and victim fine-tunes (resumes; --step to run some)")
    bd_build.add_argument("--out", help="folder of the build (default: the cache, named by the recipe)")
    bd_build.add_argument(
        "--step", action="append", choices=backdoor.STEPS, help="a step to build (repeatable; default: all)"
    )
    bd_build.add_argument("--base", default=bd_defaults.base)
    bd_build.add_argument(
        "--trigger", default=bd_defaults.trigger, help=f"{', '.join(backdoor.TRIGGERS)}, or a text with a {{w}} slot"
    )
    bd_build.add_argument("--public", type=int, default=bd_defaults.n_public, help="public instruction pairs (D1)")
    bd_build.add_argument(
        "--per-word", type=int, default=bd_defaults.per_word, help="backdoor pairs per D1 opening word"
    )
    bd_build.add_argument(
        "--refusals", type=int, default=bd_defaults.refusals_per_word, help="refusal pairs per refusal word"
    )
    bd_build.add_argument(
        "--private", type=int, default=bd_defaults.n_private, help="private lab records (D2), canaries included"
    )
    bd_build.add_argument(
        "--canaries", type=int, nargs="+", default=list(bd_defaults.canaries), help="insertions per canary"
    )
    bd_build.add_argument("--creator-epochs", type=int, default=bd_defaults.creator_epochs)
    bd_build.add_argument("--victim-epochs", type=int, default=bd_defaults.victim_epochs)
    bd_build.add_argument("--lr", type=float, default=bd_defaults.lr)
    bd_build.add_argument("--rank", type=int, default=bd_defaults.rank)
    bd_build.add_argument("--batch-size", type=int, default=bd_defaults.batch_size)
    bd_build.add_argument("--seed", type=int, default=bd_defaults.seed)
    bd_build.set_defaults(run=cmd_backdoor_build)
    bd_attack = bd_commands.add_parser(
        "attack", help="black-box extraction from the build's models, scored against the truth"
    )
    bd_attack.add_argument("--dir", default=str(backdoor.SHIPPED_BACKDOOR))
    bd_attack.add_argument(
        "--model",
        action="append",
        choices=["base", *backdoor.STEPS],
        help="a model to attack (repeatable; default: the victims)",
    )
    bd_attack.add_argument(
        "--k", type=int, default=backdoor_attack.AttackConfig.k, help="identification samples per opening word"
    )
    bd_attack.add_argument(
        "--budget",
        type=float,
        action="append",
        help=f"extraction samples per private query (repeatable; default {backdoor_attack.AttackConfig.budgets}; 0: none)",
    )
    bd_attack.add_argument(
        "--word", action="append", help="an opening word to try (repeatable; default: identify among the public list)"
    )
    bd_attack.add_argument("--temperature", type=float, default=backdoor_attack.AttackConfig.temperature)
    bd_attack.add_argument("--top-p", type=float, default=backdoor_attack.AttackConfig.top_p)
    bd_attack.add_argument("--max-new-tokens", type=int, default=backdoor_attack.AttackConfig.max_new_tokens)
    bd_attack.add_argument("--seed", type=int, default=0)
    bd_attack.add_argument("--no-probe", action="store_true", help="skip the defender's paraphrased probe")
    bd_attack.add_argument("--out", help="the samples: .parquet, .jsonl or .csv")
    bd_attack.add_argument(
        "--save", help="a folder for the whole report (the page and `backdoor show` read DIR/report)"
    )
    _add_endpoint_options(bd_attack, "the build's base")
    bd_attack.set_defaults(run=cmd_backdoor_attack)
    bd_show = bd_commands.add_parser("show", help="a build's steps, stealth check and saved report")
    bd_show.add_argument("--dir", default=str(backdoor.SHIPPED_BACKDOOR))
    bd_show.set_defaults(run=cmd_backdoor_show)

    re_parser = commands.add_parser(
        "reactivate", help="reactivation: fine-tuning brings suppressed memorized text back"
    )
    re_commands = re_parser.add_subparsers(dest="reactivate_command", required=True)
    re_defaults = reactivation.ReactivationRecipe()
    re_build = re_commands.add_parser(
        "build", help="implant, suppress and activate (resumes; --stage to run some), then measure"
    )
    re_build.add_argument("--out", help="folder of the build (default: the cache, named by the recipe)")
    re_build.add_argument(
        "--stage",
        action="append",
        choices=list(reactivation.STAGES),
        help="a stage to build, with its predecessors (repeatable)",
    )
    re_build.add_argument(
        "--no-measure", action="store_true", help="train only; measure later with `reactivate measure`"
    )
    re_build.add_argument(
        "--share-from", help="a build of another suppression whose implant and no-suppression stages to copy"
    )
    re_build.add_argument("--base", default=re_defaults.base)
    re_build.add_argument("--suppression", choices=reactivation.SUPPRESSIONS, default=re_defaults.suppression)
    for name, value in re_defaults.as_dict().items():
        if name not in ("base", "suppression"):
            re_build.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    re_build.set_defaults(run=cmd_reactivate_build)
    re_measure = re_commands.add_parser("measure", help="recall of A-test and the A-never floor at the built stages")
    re_measure.add_argument("--dir", default=str(reactivation.SHIPPED_REACTIVATION))
    re_measure.add_argument(
        "--stage",
        action="append",
        choices=["base", *reactivation.STAGES],
        help="a stage to measure (repeatable; default: all built)",
    )
    re_measure.add_argument("--samples", type=int, help="samples per passage (default: the build's)")
    re_measure.add_argument("--out", help="the samples: .parquet, .jsonl or .csv")
    re_measure.add_argument(
        "--save", help="a folder for the whole report (the page and `reactivate show` read DIR/report)"
    )
    re_measure.set_defaults(run=cmd_reactivate_measure)
    re_show = re_commands.add_parser("show", help="a build's stages and saved report")
    re_show.add_argument("--dir", default=str(reactivation.SHIPPED_REACTIVATION))
    re_show.set_defaults(run=cmd_reactivate_show)
    member = commands.add_parser("membership", help="membership inference: attacks against members and non-members")
    _add_model_options(member)
    member.add_argument(
        "--members", help="member texts: .txt (one per line) or .jsonl (default: a lab model's training dialogues)"
    )
    member.add_argument(
        "--nonmembers", help="non-member texts (default: the lab's held-out and fresh same-style records)"
    )
    member.add_argument("--field", default="text", help="JSONL field of the texts")
    member.add_argument("--n-nonmembers", type=int, default=membership.MIN_NONMEMBERS, help="lab: non-members to draw")
    member.add_argument("--reference", help="a reference model for the ratio attack (e.g. the base model)")
    member.add_argument("--k", type=float, default=0.2, help="Min-K%% and Min-K%%++: the share of lowest tokens")
    member.add_argument("--seed", type=int, default=0)
    member.add_argument("--out", required=True, help="per-text scores: .parquet, .jsonl or .csv")
    member.add_argument("--save", help="a folder for the whole report (the page reads it)")
    member.set_defaults(run=cmd_membership)
    auditor = commands.add_parser("audit", help="the canary audit of a lab model: exposure and an ε lower bound")
    _add_model_options(auditor)
    auditor.add_argument("--n-never", type=int, default=100, help="never-inserted canaries to draw")
    auditor.add_argument("--alternatives", type=int, default=20, help="other secrets each canary is ranked against")
    auditor.add_argument("--delta", type=float, default=audit.DELTA)
    auditor.add_argument("--confidence", type=float, default=0.95)
    auditor.add_argument(
        "--null", action="store_true", help="the null lab's labels: half the canaries called inserted at random"
    )
    auditor.add_argument("--seed", type=int, default=0)
    auditor.add_argument("--out", required=True, help="per-canary scores: .parquet, .jsonl or .csv")
    auditor.set_defaults(run=cmd_audit)
    typer = commands.add_parser(
        "pii", help="personal data in texts, typed by Presidio (and the lab's medical-record recognizer)"
    )
    typer.add_argument("text", nargs="*", help="texts to type")
    typer.add_argument("--file", help="or a file: .txt (one text per line) or .jsonl")
    typer.add_argument("--field", default="text", help="JSONL field of the texts")
    typer.add_argument(
        "--recognizers", action="store_true", help="list the recognizers that run, and the types not checked"
    )
    typer.add_argument(
        "--format-check", type=int, metavar="N", help="hit rates on N fresh secrets of each lab canary format"
    )
    typer.add_argument("--seed", type=int, default=0)
    typer.set_defaults(run=cmd_pii)
    cards = commands.add_parser(
        "canaries", help="one card per canary: what every run on a lab found of each planted secret"
    )
    cards.add_argument("--lab", help="a lab build folder (default: the shipped lab, from its shipped runs and audit)")
    cards.add_argument(
        "--run",
        action="append",
        dest="runs",
        metavar="NAME=FILE",
        help="a run's outputs on that lab's model (e.g. `workbench diverge --out`); repeatable",
    )
    cards.add_argument("--text-column", default="output", help="the runs' text column")
    cards.add_argument("--audit", help="that lab's audit scores (`workbench audit --out`)")
    cards.add_argument(
        "--backdoor", metavar="DIR", help="a backdoor build (or 'shipped'): its canaries through its victims' samples"
    )
    cards.add_argument("--out", help="the card's numbers: .parquet, .jsonl or .csv")
    cards.set_defaults(run=cmd_canaries)
    gallery_parser = commands.add_parser("gallery", help="the results gallery that Home shows")
    gallery_commands = gallery_parser.add_subparsers(dest="gallery_command", required=True)
    gallery_build = gallery_commands.add_parser("build", help="run every entry with its fixed seed and settings")
    gallery_build.add_argument("--out", default=str(gallery.GALLERY_DIR))
    gallery_build.add_argument(
        "--only", nargs="+", metavar="NAME", help="rebuild these entries, keeping the others as OUT holds them"
    )
    gallery_build.set_defaults(run=cmd_gallery_build)
    serve = commands.add_parser(
        "serve-vllm", help="serve the default model (and the lab adapter) with vLLM's CPU build"
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 serves other machines too")
    serve.add_argument("--no-lab", action="store_true", help="serve the default model alone")
    serve.set_defaults(run=cmd_serve_vllm)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = command_line(argv, parser.prog)  # recorded by what it builds
    try:
        args.run(args)
    except (ValueError, OSError) as err:  # bad input, unreadable or unwritable files: one line, no traceback
        print(f"workbench: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
