"""What every subcommand shares: the model and served-model options, reading and writing tables,
progress on the terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from workbench import pii
from workbench.cli.flags import add_fields
from workbench.config import DTYPES, ModelSpec, SamplingConfig, setting, startup_model
from workbench.contract import Progress
from workbench.corpus import read_documents
from workbench.endpoint import API_KEY_VARIABLES
from workbench.registry import registry_names
from workbench.similarity import read_texts

OUTPUT_FORMATS = (".parquet", ".jsonl", ".csv")


@dataclass(kw_only=True)
class ModelOptions:
    model: str = setting(
        None,
        "registry name, Hugging Face id, folder or .gguf (default: $WORKBENCH_MODEL or the embedded default)",
    )
    device: str | None = setting(None, "cpu, cuda, cuda:N or mps (default: cuda if present, else cpu)")
    dtype: str | None = setting(None, "default: bfloat16 on cuda, float32 on cpu", choices=DTYPES)
    adapter: str | None = setting(None, "folder of a peft (LoRA) adapter to apply")
    trust_remote_code: bool = setting(False, "let a Hub model run its own code (off by default)")


@dataclass(kw_only=True)
class EndpointOptions:
    endpoint: str | None = setting(None, "the server's URL, e.g. http://127.0.0.1:8000/v1")
    served_model: str | None = setting(None, "the model's name on the server")
    tokenizer: str | None = setting(
        None,
        "local tokenizer of the served model: registry name, folder or Hugging Face id (default: --model; for "
        "`backdoor attack`, the build's base)",
    )
    lab_build: str | None = setting(
        None, "the lab build (DIR with dataset/) the served model was fine-tuned on, for its truth"
    )
    concurrency: int = setting(ModelSpec.concurrency, "requests in flight at once")
    send_seed: bool = setting(False, "send each sample's seed (vLLM's CPU engine crashes on seeds)")


def add_endpoint_options(parser: argparse.ArgumentParser) -> None:
    served = parser.add_argument_group(
        "served model", f"an OpenAI-compatible server such as vLLM; the API key comes from ${API_KEY_VARIABLES[0]}"
    )
    add_fields(served, EndpointOptions)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model to load, in process or served; the default model is read when the parser is made."""
    add_fields(parser, ModelOptions, defaults=ModelOptions(model=startup_model()))
    parser.epilog = f"Registry names: {', '.join(registry_names())}."
    add_endpoint_options(parser)


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    if args.endpoint:
        return served_spec(args, args.model)
    return ModelSpec(
        name=args.model,
        device=args.device,
        dtype=args.dtype,
        adapter=args.adapter,
        trust_remote_code=args.trust_remote_code,
    )


def served_spec(args: argparse.Namespace, default_tokenizer: str) -> ModelSpec:
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


def save_endpoint_record(session, cfg: SamplingConfig, out: Path) -> None:
    """Beside a table made over an endpoint: the server, its version and what was sent."""
    served = session.served_record(cfg)
    if served is not None:
        record = out.with_name(out.stem + ".endpoint.json")
        record.write_text(json.dumps(served, indent=2))
        print(f"served by {served['server']['name']} {served['server']['version']}; request settings -> {record}")


def progress_line(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A tqdm bar driven by the library's progress(fraction, message) callbacks."""
    with tqdm(total=1.0, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}") as bar:

        def progress(fraction: float, message: str) -> None:
            bar.update(fraction - bar.n)
            bar.set_postfix_str(message)

        yield progress


def output_path(value: str) -> Path:
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


def write_table(table, out: Path) -> None:
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    elif out.suffix == ".jsonl":
        table.to_json(out, orient="records", lines=True)
    else:
        table.to_csv(out, index=False)


def read_table(path: str) -> pd.DataFrame:
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


def texts_from(path: str, field: str) -> list[tuple[str, str]]:
    """A folder: one document per .txt file (one per line of a .jsonl); a file: one text per line."""
    return read_documents(path) if Path(path).is_dir() else read_texts(path, field)


def with_pii(table: pd.DataFrame, column: str, prefix: str = "") -> pd.DataFrame:
    """``table`` with its PII columns; without them, and a warning, where Presidio is missing or a text
    cannot be analyzed (the run's results are written all the same)."""
    try:
        return pii.annotate(table, column, prefix=prefix)
    except ValueError as err:
        print(f"workbench: warning: personal data not typed: {err}", file=sys.stderr)
        return table


def command(commands, name: str, help: str, run, *option_classes: type) -> argparse.ArgumentParser:
    """A subcommand that runs ``run(args)``, its flags the fields of ``option_classes``."""
    parser = commands.add_parser(name, help=help)
    for cls in option_classes:
        add_fields(parser, cls)
    parser.set_defaults(run=run)
    return parser
