"""Personal data in text, typed with Microsoft Presidio's analyzer.

Presidio's recognizers come in two kinds: patterns with validation (phone numbers, e-mail
addresses, credit cards, IBANs, IP addresses, US SSNs, dates, URLs …) and named-entity
recognition, which needs a trained spaCy model (PERSON, LOCATION, ORGANIZATION, NRP). No such
model can be installed here (none is on the package index, and nothing downloads at run time),
so the analyzer runs over a blank English spaCy pipeline: every pattern recognizer runs and the
NER-only types are reported as not checked (``not_checked``), never as absent.

The lab's patient IDs (``MRN-dddd-dddd``) match no built-in recognizer, so one pattern
recognizer is added for medical record numbers (``LAB_RECOGNIZERS``); ``format_check`` measures
the built-in and the added recognizers on fresh secrets of the lab's formats.
"""

from __future__ import annotations

import functools
import html
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from workbench.lab_data import canary_secret
from workbench.lab_vocabulary import CANARY_KINDS, CANARY_TEMPLATES
from workbench.stats import rate_difference, wilson

MAX_CHARS = 200_000  # one text; longer ones are refused, not silently cut
INSTALL = "Presidio is not installed in this environment: run `make setup`, or `pip install presidio-analyzer`."
MRN_ENTITY = "MEDICAL_RECORD_NUMBER"
# Written from the format "MRN, then 6 to 12 digits, grouped by dashes or spaces"; tested on
# secrets and phrasings it was not written from (tests/library/test_pii.py).
MRN_PATTERN = r"\bMRN[\s:#-]{0,3}\d(?:[\s-]?\d){5,11}\b"
MRN_CONTEXT = ("patient", "record", "file", "mrn", "medical")


class PresidioMissing(ValueError):
    """Presidio is not importable; the message says how to install it."""


@dataclass(frozen=True)
class Finding:
    entity: str
    start: int
    end: int
    score: float
    text: str


def check_text(text: str | bytes) -> str:
    """The text to analyze, or a ValueError that says what is wrong with it: bytes that are not
    UTF-8, or a text over ``MAX_CHARS`` characters."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"The text is not UTF-8 (byte {error.start} cannot be decoded); save it as UTF-8 and try again."
            ) from None
    if not isinstance(text, str):
        raise ValueError(f"Expected text, got {type(text).__name__}.")
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"The text has {len(text):,} characters, more than the {MAX_CHARS:,} one analysis takes; split it into parts."
        )
    return text


@functools.cache
def _engine(lab_recognizers: bool):
    # The bundled public-suffix list (used to validate e-mail domains), not a network fetch.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError:
        raise PresidioMissing(INSTALL) from None

    class BlankSpacy(SpacyNlpEngine):
        """Tokens only: no trained spaCy model is installed (module docstring)."""

        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    nlp_engine = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    not_checked = set()
    for recognizer in list(registry.recognizers):
        if "Spacy" in type(recognizer).__name__:  # needs NER, which a blank pipeline has not
            registry.remove_recognizer(recognizer.name)
            not_checked |= set(recognizer.supported_entities)
    if lab_recognizers:
        mrn = Pattern("MRN, 6 to 12 digits", MRN_PATTERN, 0.6)
        registry.add_recognizer(
            PatternRecognizer(
                MRN_ENTITY, name="MedicalRecordNumberRecognizer", patterns=[mrn], context=list(MRN_CONTEXT)
            )
        )
    checked = {entity for r in registry.recognizers for entity in r.supported_entities}
    engine = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=["en"])
    return engine, sorted(not_checked - checked)


def recognizers(lab_recognizers: bool = True) -> pd.DataFrame:
    """The recognizers that run: name, the entity types each finds, and whether the lab added it."""
    engine, _ = _engine(lab_recognizers)
    rows = [
        {
            "recognizer": r.name,
            "entities": ", ".join(r.supported_entities),
            "added_for_the_lab": MRN_ENTITY in r.supported_entities,
        }
        for r in engine.registry.recognizers
    ]
    return pd.DataFrame(rows).sort_values("recognizer", ignore_index=True)


def not_checked() -> list[str]:
    """Entity types Presidio knows only through NER: not looked for here (module docstring)."""
    return _engine(True)[1]


def find(text: str | bytes, lab_recognizers: bool = True) -> list[Finding]:
    """Every span Presidio types in ``text``, in reading order. A span inside a longer span
    with at least its score is dropped: the same characters typed twice (e.g. a URL inside an
    e-mail address)."""
    text = check_text(text)
    engine, _ = _engine(lab_recognizers)
    results = sorted(engine.analyze(text, language="en"), key=lambda r: (r.start, -(r.end - r.start)))
    kept = [
        r for r in results
        if not any(o is not r and o.start <= r.start and r.end <= o.end and (o.end - o.start) > (r.end - r.start) and o.score >= r.score for o in results)
    ]  # fmt: skip
    return [Finding(r.entity_type, r.start, r.end, float(r.score), text[r.start : r.end]) for r in kept]


def annotate(table: pd.DataFrame, column: str, lab_recognizers: bool = True, prefix: str = "") -> pd.DataFrame:
    """``table`` with ``{prefix}pii`` (the entity types found in ``column``, comma-separated, ""
    for none) and ``{prefix}pii_spans`` (each finding as "TYPE: text")."""
    found = [find(text or "", lab_recognizers) for text in table[column].fillna("")]
    return table.assign(**{
        f"{prefix}pii": [", ".join(sorted({f.entity for f in fs})) for fs in found],
        f"{prefix}pii_spans": ["; ".join(f"{f.entity}: {f.text}" for f in fs) for fs in found],
    })  # fmt: skip


def counts(table: pd.DataFrame) -> pd.DataFrame:
    """From an annotated table: per entity type, how many of its texts hold one (entity, texts, of)."""
    types = table["pii"].fillna("").map(lambda s: {t for t in s.split(", ") if t})
    present = sorted(set().union(*types)) if len(types) else []
    return pd.DataFrame(
        {"entity": present, "texts": [int(types.map(lambda s, e=e: e in s).sum()) for e in present], "of": len(table)}
    )


def summary(table: pd.DataFrame) -> str:
    """One line for a page or the CLI: how many texts hold personal data, and of which types."""
    found = counts(table)
    held = int((table["pii"].fillna("") != "").sum())
    kinds = "; ".join(f"{row.entity} {row.texts}" for row in found.itertuples())
    return f"{held} of {len(table)} texts hold personal data Presidio recognizes" + (f" ({kinds})." if kinds else ".")


def by_group(table: pd.DataFrame, group: str, floor: str) -> pd.DataFrame:
    """From an annotated table: per value of ``group``, how many texts hold personal data, and
    the difference of that share from the ``floor`` group's (Newcombe's 95% interval; empty on
    the floor's own row)."""
    held = table["pii"].fillna("") != ""
    if floor not in set(table[group]):
        raise ValueError(f"No {group} {floor!r} to compare with.")
    k0, n0 = int(held[table[group] == floor].sum()), int((table[group] == floor).sum())
    rows = []
    for value, part in held.groupby(table[group]):
        difference, low, high = (
            rate_difference(int(part.sum()), len(part), k0, n0) if value != floor else (float("nan"),) * 3
        )
        rows.append(
            {
                group: value,
                "texts": len(part),
                "with_pii": int(part.sum()),
                "share": part.mean(),
                "difference": difference,
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(rows)


def highlighted(text: str, findings: Sequence[Finding]) -> str:
    """HTML of ``text`` (escaped) with each finding marked and titled by its type."""
    parts, at = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < at:  # overlapping spans of different types: the first one marks them
            continue
        parts += [
            html.escape(text[at : f.start]),
            f'<mark title="{f.entity} ({f.score:.2f})">{html.escape(text[f.start : f.end])}</mark>',
        ]
        parts.append(f"<sub>{f.entity}</sub>")
        at = f.end
    parts.append(html.escape(text[at:]))
    return "".join(parts).replace("\n", "<br>")


def secret_types(secret: str, context: str, lab_recognizers: bool = True) -> list[Finding]:
    """The findings that cover ``secret`` where it stands in ``context`` (its first occurrence)."""
    start = context.find(secret)
    if start < 0:
        raise ValueError("The secret does not occur in its context.")
    return [f for f in find(context, lab_recognizers) if f.start <= start and start + len(secret) <= f.end]


def format_check(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Hit rates on ``n`` fresh secrets per lab canary format, each in its canary record: built-in
    recognizers alone, then with the lab's recognizer. A hit is a finding covering the secret."""
    rng, rows = random.Random(f"pii-format-check-{seed}"), []
    for kind in CANARY_KINDS:
        secrets = [canary_secret(kind, rng) for _ in range(n)]
        for lab_recognizers in (False, True):
            found = [secret_types(s, CANARY_TEMPLATES[kind].format(secret=s), lab_recognizers) for s in secrets]
            hits = sum(bool(f) for f in found)
            low, high = wilson(hits, n)
            types = sorted({x.entity for f in found for x in f})
            rows.append({
                "format": kind, "recognizers": "built-in + lab" if lab_recognizers else "built-in", "n": n, "hits": hits,
                "hit_rate": hits / n, "low": low, "high": high, "types": ", ".join(types),
                "mean_score": sum(x.score for f in found for x in f[:1]) / hits if hits else float("nan"),
            })  # fmt: skip
    return pd.DataFrame(rows)
