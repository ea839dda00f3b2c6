"""Subcommands over texts and weights: compare, selec, pii, and building the gallery."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import pandas as pd

from workbench import gallery, pii
from workbench.cli.common import (
    command,
    output_path,
    progress_bar,
    progress_line,
    texts_from,
    with_pii,
    write_table,
)
from workbench.config import DEFAULT_MODEL, DTYPES, ModelSpec, setting
from workbench.lab import lab_dataset_for
from workbench.lab_data import public_pool
from workbench.overlap import DEFAULT_MIN_TOKENS
from workbench.registry import LAB_MODEL
from workbench.selec import OPTIMIZERS, WeightDiff, default_k, evaluate
from workbench.selec_judge import baseline_scores, check_pool, judge, readable
from workbench.selec_shift import PARAM_CHOICES
from workbench.session import load_session
from workbench.similarity import best_per_text, compare, passages, read_texts


@dataclass(kw_only=True)
class CompareOptions:
    extracted: str = setting(help=".txt (one text per line) or .jsonl file")
    candidates: str = setting(help=".txt/.jsonl file, or a folder of documents (e.g. data/reference)")
    extracted_field: str = setting("text", "JSONL field of the extracted texts (e.g. escaped_text)")
    candidates_field: str = setting("text", "JSONL field of the candidates")
    top_k: int = setting(3, "candidates scored per text, by cosine and by edit ratio")
    min_run: int = setting(
        DEFAULT_MIN_TOKENS, "exact run (tokens, or words without --tokenizer) that counts as extracted"
    )
    cosine_threshold: float = setting(0.8, "cosine that counts as extracted")
    passage_words: int = setting(0, "cut candidates into passages of this many words")
    tokenizer: str | None = setting(None, "count runs in this model's tokens (default: words)")
    embedding_model: str | None = setting(None, "sentence-transformers folder (default: the packaged MiniLM)")
    out: str = setting(help="scored pairs: .parquet, .jsonl or .csv")
    best: str | None = setting(None, "also write the best match per text: .parquet, .jsonl or .csv")


@dataclass(kw_only=True)
class SelecOptions:
    base: str = setting(DEFAULT_MODEL, "the model before fine-tuning")
    tuned: str = setting(LAB_MODEL, "the fine-tuned model")
    tuned_adapter: str | None = setting(None, "a LoRA adapter folder applied to --tuned")
    device: str | None = setting(None, "cpu, cuda, cuda:N or mps (default: cuda if present, else cpu)")
    dtype: str | None = setting(None, "default: bfloat16 on cuda, float32 on cpu", choices=DTYPES)
    pool: str = setting("lab", '"lab" (the lab public pool, with membership) or a .txt/.jsonl file')
    field: str = setting("text", "JSONL field of a pool file")
    members: int = setting(50, "lab pool: training dialogues")
    nonmembers: int = setting(
        75, "lab pool: same-style dialogues never trained on (beyond the held-out set: fresh ones)"
    )
    other: int = setting(375, "lab pool: texts from other domains")
    params: str = setting("last", f"{', '.join(PARAM_CHOICES)} or a regular expression on names")
    projection_dim: int = setting(1024, "random projection size (0 = none)")
    max_length: int = setting(128, "tokens per text")
    optimizer: str = setting(
        "adam", "how the fine-tune stepped: adam compares with the shift times sqrt(v)", choices=OPTIMIZERS
    )
    seed: int = setting(0, "the projection's and the pool's seed")
    baseline: bool = setting(
        True,
        "lab pool: score the same texts with the membership baselines (tuned loss, ratio to the base) beside SELEC",
    )
    k: int | None = setting(None, "texts to select greedily (default: the number of members)")
    out: str = setting(help="the ranking: .parquet, .jsonl or .csv")
    greedy: str | None = setting(None, "also write the greedy selection")


@dataclass(kw_only=True)
class PiiOptions:
    text: tuple[str, ...] = setting((), "texts to type", positional=True, nargs="*")
    file: str | None = setting(None, "or a file: .txt (one text per line) or .jsonl")
    field: str = setting("text", "JSONL field of the texts")
    recognizers: bool = setting(False, "list the recognizers that run, and the types not checked")
    format_check: int | None = setting(None, "hit rates on N fresh secrets of each lab canary format", metavar="N")
    seed: int = setting(0, "the fresh secrets' seed")


@dataclass(kw_only=True)
class GalleryOptions:
    out: str = setting(str(gallery.GALLERY_DIR), "the gallery's folder")
    only: tuple[str, ...] = setting((), "rebuild these entries, keeping the others as OUT holds them", metavar="NAME")


def cmd_compare(args: argparse.Namespace) -> None:
    out = output_path(args.out)
    best_out = output_path(args.best) if args.best else None
    extracted = texts_from(args.extracted, args.extracted_field)
    candidates = texts_from(args.candidates, args.candidates_field)
    if args.passage_words:
        candidates = passages(candidates, args.passage_words)
    tokenizer = load_session(args.tokenizer, progress=progress_line).tokenizer if args.tokenizer else None
    with progress_bar() as progress:
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
    write_table(table, out)
    best = with_pii(
        with_pii(best_per_text(table, args.cosine_threshold, args.min_run), "candidate_text", "candidate_"),
        "extracted_text",
    )
    if best_out is not None:
        write_table(best, best_out)
    print(
        f"{len(extracted)} extracted x {len(candidates)} candidates, {len(table)} pairs scored; "
        f"{int(best['extracted'].sum())} texts called extracted (cosine >= {args.cosine_threshold} "
        f"or an exact run of >= {args.min_run} {'tokens' if tokenizer is not None else 'words'}) -> {out}"
    )
    if "pii" in best:
        print(f"extracted: {pii.summary(best)}")


def cmd_selec(args: argparse.Namespace) -> None:
    out = output_path(args.out)
    greedy_out = output_path(args.greedy) if args.greedy else None
    tuned_spec = ModelSpec(args.tuned, device=args.device, dtype=args.dtype, adapter=args.tuned_adapter)
    if args.pool == "lab":
        dataset = lab_dataset_for(tuned_spec)
        if dataset is None:
            raise ValueError("--pool lab needs a lab model as --tuned (or --tuned-adapter DIR/adapter of a lab build).")
        pool = public_pool(dataset, args.members, args.nonmembers, args.other, seed=args.seed)
    else:
        pool = pd.DataFrame({"text": [text for _, text in read_texts(args.pool, args.field)]})
    fitter = WeightDiff(args.params, args.projection_dim, args.seed, args.max_length, args.optimizer)
    base = load_session(ModelSpec(args.base, device=args.device, dtype=args.dtype), progress=progress_line)
    tuned = load_session(tuned_spec, progress=progress_line)
    with progress_bar() as progress:
        fitter.fit(base, tuned, pool, progress)
    ranking = fitter.rank()
    write_table(ranking, out)
    k = args.k or default_k(pool)
    greedy = fitter.greedy_select(k)
    if greedy_out is not None:
        write_table(greedy, greedy_out)
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
    with progress_bar() as progress:
        baselines = baseline_scores(base, tuned, pool["text"], progress) if args.baseline else None
    questions = readable(judge(fitter, baselines))
    print(
        "Finds the members (members against same-style texts only), beside the membership baselines:"
        if args.baseline
        else "Finds the members:"
    )
    print(questions.drop(columns=["domain: precision@k (lift)", "domain: AUC"]).to_string(index=False))


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


def cmd_gallery_build(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    with progress_bar() as progress:
        manifest = gallery.build(args.out, progress, args.only)
    for entry in manifest["entries"]:
        print(f"{entry['title']} ({entry['seconds']:.0f} s, code version {entry['code_version']}): {entry['sentence']}")
    print(f"gallery built in {time.perf_counter() - started:.0f} s -> {args.out}")


def register(commands) -> None:
    command(commands, "compare", "extracted texts against candidate documents", cmd_compare, CompareOptions)
    command(
        commands, "selec", "rank candidate texts by gradient alignment with the weight shift", cmd_selec, SelecOptions
    )
    command(
        commands,
        "pii",
        "personal data in texts, typed by Presidio (and the lab's medical-record recognizer)",
        cmd_pii,
        PiiOptions,
    )
    gallery_parser = commands.add_parser("gallery", help="the results gallery that Home shows")
    gallery_commands = gallery_parser.add_subparsers(dest="gallery_command", required=True)
    command(
        gallery_commands, "build", "run every entry with its fixed seed and settings", cmd_gallery_build, GalleryOptions
    )
