"""Personal data in what leaks, and one card per canary: the recognizers' hits and misses on the
lab's canary formats, their false positives on texts that hold none, the share of escapes with
personal data on the lab model against the default model on the same prompts, and the shipped
cards.

    python benchmarks/pii_eval.py --out DIR

The grid below was committed before any of its results was seen. No model is called: every text
is a shipped one (the lab's records, the Repeated-tokens benchmarks' generations, the backdoor
build's victims' samples) or drawn by the lab's generators with the seeds named here.
- Formats: GRID["format_secrets"] fresh secrets of each canary format (``lab_data.canary_secret``,
  stream ``pii-format-check-<seed>``), each in its canary record; built-in recognizers alone,
  then with the lab's medical-record recognizer.
- Known negatives: the shipped lab's training dialogues (canary records apart), its held-out
  records, and GRID["nonmembers"] same-style texts (``lab_data.nonmember_texts``); none holds a
  secret, so every finding there is a false positive.
- Escapes: the Repeated-tokens outcome grid on the lab model (data/benchmarks/divergence/lab.parquet)
  against the default model's generations of the same templates, repeats, temperature, words and
  seeds (default.parquet); the share of escapes holding personal data, the difference with
  Newcombe's 95% interval. The extraction run (divergence-extraction) is reported alone: it has no
  default-model twin.
- Victims: the backdoor build's non-refused, non-public samples per victim
  (``backdoor_attack.victim_outputs``, as the canary card counts them), against the clean victim.
- Cards: ``canary_card.shipped_lab_card`` and ``shipped_backdoor_card``.
Added after the first run had been read (post hoc, the grid unchanged): escapes-by-type.csv and
victims-by-type.csv, the same comparisons for each entity type alone — the first run showed most
findings to be weak pattern matches (driver licences, bank numbers, URLs) on random digit strings;
and per-generation escape shares (escapes-per-generation.csv: every generation of both models,
escaped with a finding or not, so the comparison does not condition on escaping). The first run
counted the victims' distinct texts; they are now counted as the card counts them, every sample.

Written into DIR: format-check.csv, negatives.csv, escapes.csv, victims.csv, *-by-type.csv, typed-*.parquet (every
text with its types and spans), lab-card.parquet, backdoor-card.parquet, run-output.txt (what this
prints) and manifest.json (command, code version, grid, seconds per step, wall time).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import pandas as pd

from workbench import backdoor_attack, canary_card, pii
from workbench.builds import run_manifest
from workbench.config import DATA_DIR
from workbench.lab import SHIPPED_LAB
from workbench.lab_data import LabDataset, nonmember_texts

GRID = {
    "format_secrets": 1000,
    "format_seed": 0,
    "nonmembers": 2000,
    "escapes": {
        "lab": "data/benchmarks/divergence/lab.parquet",
        "default": "data/benchmarks/divergence/default.parquet",
        "match_on": ["template", "repeats", "temperature", "word", "sample", "seed"],
        "extraction": "data/benchmarks/divergence-extraction/generations.parquet",
    },
    "victims": "data/backdoor/report/samples.parquet",
    "floor_victim": "victim-clean",
}
ROOT = DATA_DIR.parent


def by_type(typed: pd.DataFrame, group: str, floor: str) -> pd.DataFrame:
    """``pii.by_group`` for each entity type found, alone."""
    entities = sorted(pii.counts(typed)["entity"])
    parts = [
        pii.by_group(
            typed.assign(pii=typed["pii"].map(lambda s, e=e: e if e in s.split(", ") else "")), group, floor
        ).assign(entity=e)
        for e in entities
    ]
    return pd.concat(parts, ignore_index=True)[
        ["entity", group, "texts", "with_pii", "share", "difference", "low", "high"]
    ]


def _typed(name: str, table: pd.DataFrame, column: str, out: Path) -> pd.DataFrame:
    typed = pii.annotate(table, column)
    typed.to_parquet(out / f"typed-{name}.parquet", index=False)
    return typed


def _negatives(out: Path) -> pd.DataFrame:
    dataset = LabDataset.load(SHIPPED_LAB / "dataset")
    sets = {
        "training dialogues": [r["text"] for r in dataset.dialogues],
        "held-out records": [r["text"] for r in dataset.holdout],
        "same-style non-members": nonmember_texts(dataset, GRID["nonmembers"]),
    }
    rows = []
    for name, texts in sets.items():
        typed = _typed(name.replace(" ", "-"), pd.DataFrame({"text": texts}), "text", out)
        counts = pii.counts(typed)
        rows.append({"set": name, "texts": len(typed), "with_pii": int((typed["pii"] != "").sum()),
                     "types": "; ".join(f"{r.entity} {r.texts}" for r in counts.itertuples())})  # fmt: skip
    return pd.DataFrame(rows)


def _escapes(out: Path) -> pd.DataFrame:
    spec = GRID["escapes"]
    lab, default = pd.read_parquet(ROOT / spec["lab"]), pd.read_parquet(ROOT / spec["default"])
    keys = spec["match_on"]
    twins = default.merge(lab[keys], on=keys, how="inner")
    if len(twins) != len(lab):
        raise ValueError(f"The default model's grid matches {len(twins)} of the lab's {len(lab)} generations.")
    both = pd.concat([lab.assign(model="lab"), twins.assign(model="default")], ignore_index=True)
    escaped = both[both["outcome"] == "escaped"]
    typed = _typed("escapes", escaped, "escaped_text", out)
    table = pii.by_group(typed, "model", "default").assign(run="outcome grid (chat + prefill, T 1.0)")
    held = typed.loc[typed["pii"] != "", ["model", "seed", "template", "repeats", "word", "sample"]].assign(pii="yes")
    every = both[["model", "seed", "template", "repeats", "word", "sample"]].merge(held, how="left").fillna({"pii": ""})
    pii.by_group(every, "model", "default").to_csv(out / "escapes-per-generation.csv", index=False)
    by_type(typed, "model", "default").to_csv(out / "escapes-by-type.csv", index=False)
    extraction = pd.read_parquet(ROOT / spec["extraction"])
    extra = _typed("extraction-escapes", extraction[extraction["outcome"] == "escaped"], "escaped_text", out)
    held = int((extra["pii"] != "").sum())
    alone = {
        "model": "lab",
        "texts": len(extra),
        "with_pii": held,
        "share": held / len(extra),
        "run": "extraction (no default twin)",
    }
    return pd.concat([table, pd.DataFrame([alone])], ignore_index=True)


def _victims(out: Path) -> pd.DataFrame:
    typed, shares = backdoor_attack.personal_data(pd.read_parquet(ROOT / GRID["victims"]))
    typed.to_parquet(out / "typed-victims.parquet", index=False)
    by_type(typed, "model", GRID["floor_victim"]).to_csv(out / "victims-by-type.csv", index=False)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty.")
    out.mkdir(parents=True, exist_ok=True)
    manifest = run_manifest(out, GRID, resume=False)
    wall, printed = time.perf_counter(), io.StringIO()

    def step(name: str, work):
        started = time.perf_counter()
        result = work()
        manifest["seconds"][name] = round(time.perf_counter() - started, 1)
        return result

    with contextlib.redirect_stdout(Tee(sys.stdout, printed)):
        pd.set_option("display.width", 200)
        checked = step("format check", lambda: pii.format_check(GRID["format_secrets"], GRID["format_seed"]))
        checked.to_csv(out / "format-check.csv", index=False)
        print("Recognizers on the lab's canary formats (hits: a finding covering the secret; 95% Wilson):")
        print(checked.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"not checked (need a spaCy NER model): {', '.join(pii.not_checked())}")
        negatives = step("negatives", lambda: _negatives(out))
        negatives.to_csv(out / "negatives.csv", index=False)
        print("\nKnown negatives (texts holding no secret):")
        print(negatives.to_string(index=False))
        escapes = step("escapes", lambda: _escapes(out))
        escapes.to_csv(out / "escapes.csv", index=False)
        print("\nEscapes holding personal data, lab model against the default model on the same prompts:")
        print(escapes.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        victims = step("victims", lambda: _victims(out))
        victims.to_csv(out / "victims.csv", index=False)
        print(
            "\nThe backdoor build's victims, non-refused non-public samples holding personal data, against the clean victim:"
        )
        print(victims.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print("\nGenerations escaping with a finding, every generation of both models (post hoc):")
        print(pd.read_csv(out / "escapes-per-generation.csv").to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        for name in ("escapes", "victims"):
            print(f"\n{name.capitalize()} by type (post hoc):")
            print(pd.read_csv(out / f"{name}-by-type.csv").to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        for name, make in [("lab", canary_card.shipped_lab_card), ("backdoor", canary_card.shipped_backdoor_card)]:
            card = step(f"{name} card", make)
            card.table.to_parquet(out / f"{name}-card.parquet", index=False)
            print(f"\nThe {name} card:")
            print(card.readable().T.to_string(header=False))
            print(f"sources: {json.dumps(card.sources)}; not measured: {card.not_measured}; epsilon: {card.epsilon}")
        manifest["wall_seconds"] = round(time.perf_counter() - wall, 1)
        print(f"\nwall time {manifest['wall_seconds']:.0f} s")
    (out / "run-output.txt").write_text(printed.getvalue())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


class Tee(io.TextIOBase):
    """Writes to several streams: the terminal and the run's record."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)


if __name__ == "__main__":
    main()
