"""Subcommands that sample or read one model: info, diverge, sinks, sink-mechanism, and serving one."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

from workbench import pii, sink_mechanism, vllm_server
from workbench.attention import SINK_THRESHOLD, sink_heads, sink_scores
from workbench.cli.common import (
    add_model_options,
    command,
    output_path,
    progress_bar,
    progress_line,
    save_endpoint_record,
    spec_from_args,
    with_pii,
    write_table,
)
from workbench.cli.flags import add_fields, values
from workbench.config import SamplingConfig, setting
from workbench.corpus import REFERENCE_CORPUS, CorpusIndex
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
from workbench.lab import lab_dataset_for
from workbench.overlap import DEFAULT_MIN_TOKENS
from workbench.prompts import HINT_PREFIXES, TEMPLATES, repeated_token_prompt
from workbench.session import load_session


@dataclass(kw_only=True)
class InfoOptions:
    json: bool = setting(False, "print JSON")


@dataclass(kw_only=True)
class DivergeOptions:
    word: tuple[str, ...] = setting(help="word to repeat (repeatable)", repeat=True)
    repeats: tuple[int, ...] = setting(help="repeat count (repeatable)", repeat=True)
    prefix: str = setting("", "hint before the repetition, e.g. def, copyright")
    template: str | None = setting(
        None,
        "chat: ask for the repetition in a chat message; prefill: ask once and begin the reply with the repeats",
        choices=[t for t in TEMPLATES if t],
    )
    min_repeats: int = setting(DEFAULT_MIN_REPEATS, "r: repeats before an output counts as repeating")
    window: int = setting(DEFAULT_WINDOW, "m: tokens of sustained other text that hold at most one repeat")
    summary: str | None = setting(None, "also write the outcome summary per word x repeats x temperature (.csv, ...)")
    corpus: str = setting(str(REFERENCE_CORPUS), "saved index, .txt/.jsonl file or folder (default: shipped)")
    min_tokens: int = setting(DEFAULT_MIN_TOKENS, "shortest exact match to report")
    reference: str | None = setting(None, "reference model for the perplexity ratio")
    out: str = setting(help="results file: .parquet, .jsonl or .csv")


@dataclass(kw_only=True)
class SinksOptions:
    prompt: str | None = setting(None, "the prompt text")
    word: str | None = setting(None, "build a repeated-token prompt of this word instead")
    repeats: int = setting(1000, "repeats for --word")
    prefix: str = setting("", f"hint before the repetition, e.g. {', '.join(p for p in HINT_PREFIXES if p)}")
    sink_index: int = setting(0, "position of the sink key (default: the first token)")
    threshold: float = setting(SINK_THRESHOLD, "score of a sink head")
    out: str = setting(help="scores file: .parquet, .jsonl or .csv")


@dataclass(kw_only=True)
class MechanismOptions:
    word: str = setting("poem", "the repeated word")
    repeats: tuple[int, ...] = setting((), "repeat count (repeatable; default 10, 50, 200, 1000)", repeat=True)
    heads: int = setting(8, "top sink heads, chosen on prose")
    neuron_layers: int = setting(4, "early layers searched for sink neurons")
    out: str = setting(help="folder for the tables and the manifest")


@dataclass(kw_only=True)
class ServeOptions:
    port: int = setting(8000, "the port to serve on")
    host: str = setting("127.0.0.1", "0.0.0.0 serves other machines too")
    no_lab: bool = setting(False, "serve the default model alone")


def cmd_info(args: argparse.Namespace) -> None:
    session = load_session(spec_from_args(args), progress=progress_line)
    card = session.card()
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        width = max(map(len, card))
        for key, value in card.items():
            print(f"{key:<{width}}  {value}")


def cmd_diverge(args: argparse.Namespace) -> None:
    out = output_path(args.out)
    if args.min_tokens < 1:
        raise ValueError("--min-tokens must be at least 1.")
    temperatures = args.temperature or [SamplingConfig.temperature]
    cfg = values(SamplingConfig, args, temperature=temperatures[0])
    session = load_session(spec_from_args(args), progress=progress_line)
    corpus = CorpusIndex.from_path(args.corpus, session.tokenizer)
    reference = load_session(args.reference, progress=progress_line) if args.reference else None
    with progress_bar() as progress:
        table = run_divergence(
            session, args.word, args.repeats, cfg, args.prefix, args.template, corpus, args.min_tokens, reference, progress,
            min_repeats=args.min_repeats, window=args.window, temperatures=temperatures,
        )  # fmt: skip
    table = with_pii(table, "escaped_text")
    write_table(table, out)
    save_endpoint_record(session, cfg, out)
    summary = outcome_summary(table)
    if args.summary:
        write_table(summary, output_path(args.summary))
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
    out = output_path(args.out)
    session = load_session(spec_from_args(args), progress=progress_line)
    if args.word:
        prompt = repeated_token_prompt(
            session.tokenizer, args.word, args.repeats, args.prefix, context_length=session.info.context_length
        ).token_ids
    else:
        prompt = args.prompt
    scores = sink_scores(session, prompt, args.sink_index)
    write_table(scores, out)
    heads = sink_heads(scores, args.threshold)
    top = ", ".join(f"L{r.layer}H{r.head} {r.score:.2f}" for r in heads.head(5).itertuples())
    print(
        f"{len(heads)}/{len(scores)} heads ({len(heads) / len(scores):.0%}) have sink score >= {args.threshold}; top: {top or 'none'} -> {out}"
    )


def cmd_sink_mechanism(args: argparse.Namespace) -> None:
    session = load_session(spec_from_args(args), progress=progress_line)
    with progress_bar() as progress:
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


def cmd_serve_vllm(args: argparse.Namespace) -> None:
    with vllm_server.running(args.port, host=args.host, lab=not args.no_lab, progress=progress_line) as url:
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


def register(commands) -> None:
    add_model_options(command(commands, "info", "load a model and print its card", cmd_info, InfoOptions))
    diverge = command(commands, "diverge", "repeated-token divergence experiment", cmd_diverge, DivergeOptions)
    add_fields(diverge, SamplingConfig, repeat={"temperature"})
    add_model_options(diverge)
    sinks = command(commands, "sinks", "per-head attention-sink scores of one prompt", cmd_sinks)
    add_fields(sinks, SinksOptions, one_of={"prompt", "word"})
    add_model_options(sinks)
    mechanism = command(
        commands,
        "sink-mechanism",
        "why repeats break out: hidden-state geometry, sink heads and sink neurons",
        cmd_sink_mechanism,
        MechanismOptions,
    )
    add_model_options(mechanism)
    command(
        commands,
        "serve-vllm",
        "serve the default model (and the lab adapter) with vLLM's CPU build",
        cmd_serve_vllm,
        ServeOptions,
    )
