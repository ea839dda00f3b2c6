"""Batch command line: `workbench info [--model NAME] [--json]`.

Errors end with a one-line message on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys

from workbench.config import DTYPES, ModelSpec, startup_model
from workbench.session import load_session, registry_names


def _spec_from_args(args: argparse.Namespace) -> ModelSpec:
    return ModelSpec(
        name=args.model,
        device=args.device,
        dtype=args.dtype,
        adapter=args.adapter,
        trust_remote_code=args.trust_remote_code,
    )


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


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> None:
    info = load_session(_spec_from_args(args), progress=_progress).info
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
    else:
        width = max(map(len, info.as_dict()))
        for key, value in info.as_dict().items():
            print(f"{key:<{width}}  {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="load a model and print its card")
    _add_model_options(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ValueError as err:
        print(f"workbench: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
