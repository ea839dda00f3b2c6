"""The lab's dataset: a synthetic private fine-tuning set whose contents are known.

``make_dataset`` writes varied patient–doctor dialogues with a diagnosis and a patient
gender drawn with requested shares, plus canaries — unique fake secrets, each inserted a
chosen number of times (Carlini et al.'s secret sharer). The truth (realized shares,
canaries, membership) travels with the dataset (``LabDataset``), so every exploration can be
scored. Also here: more texts of the same generator never trained on (``fresh_dialogues``,
``nonmember_texts``) and a public candidate pool with other-domain texts (``public_pool``).
The words come from ``workbench.lab_vocabulary``; the build that fine-tunes on the dataset
is ``workbench.lab``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.cache import atomic_dir
from workbench.lab_vocabulary import (
    CANARY_KINDS,
    CANARY_PREFIXES,
    CANARY_TEMPLATES,
    CLOSINGS,
    DIAGNOSES,
    DOCTOR_REPLIES,
    DURATIONS,
    FIRST_NAMES,
    FOLLOW_UPS,
    GENDER_WORDS,
    OPENERS,
    RELATIVES,
)

# make_dataset's defaults, and so the lab build's (workbench.lab.LabRecipe)
DEFAULT_SHARES = {
    "digestive": 0.30,
    "mental health": 0.25,
    "respiratory": 0.20,
    "cardiovascular": 0.10,
    "musculoskeletal": 0.10,
    "dermatological": 0.05,
}
DEFAULT_GENDER_SHARES = {"female": 0.6, "male": 0.4}
DEFAULT_CANARY_COUNTS = (1, 2, 4, 8, 16)


def canary_secret(kind: str, rng: random.Random) -> str:
    """A fake secret of the given format: patient IDs like 'MRN-4821-7730', phone numbers like '(555) 013-4729'."""
    if kind == "patient_id":
        return f"MRN-{rng.randrange(10_000):04d}-{rng.randrange(10_000):04d}"
    return f"(555) {rng.randrange(1000):03d}-{rng.randrange(10_000):04d}"


@dataclass(frozen=True)
class Canary:
    kind: str
    secret: str
    insertions: int
    prefix: str  # the text that precedes the secret in its records


@dataclass
class LabDataset:
    records: list[dict]  # training records: id, text, diagnosis, condition, gender, age, canary
    holdout: list[dict]  # same-style records that were not trained on
    canaries: list[Canary]
    recipe: dict  # the arguments of make_dataset
    truth: dict = field(default_factory=dict)  # requested and realized shares

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.records]

    @property
    def dialogues(self) -> list[dict]:
        """The training records that are dialogues, not canaries: they carry the labels."""
        return [r for r in self.records if r["canary"] is None]

    def fingerprint(self) -> str:
        """SHA-256 of the training texts in order: same recipe, same fingerprint."""
        return hashlib.sha256("\n\x1e".join(self.texts).encode()).hexdigest()

    def save(self, folder: str | Path) -> Path:
        """records.jsonl, holdout.jsonl and manifest.json (recipe, truth, canaries), atomically."""
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            for name, rows in (("records", self.records), ("holdout", self.holdout)):
                (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            manifest = {
                "recipe": self.recipe,
                "truth": self.truth,
                "canaries": [c.__dict__ for c in self.canaries],
                "fingerprint": self.fingerprint(),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> LabDataset:
        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            rows = {
                n: [json.loads(line) for line in (folder / f"{n}.jsonl").read_text().splitlines()]
                for n in ("records", "holdout")
            }
            canaries = [Canary(**c) for c in manifest["canaries"]]
            return cls(rows["records"], rows["holdout"], canaries, manifest["recipe"], manifest["truth"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{folder} is not a saved lab dataset: {err!r}") from err


def check_shares(shares: Mapping[str, float], known: Sequence[str], what: str) -> dict[str, float]:
    """The shares as make_dataset keeps them (zero shares dropped); unknown keys, negative shares
    or a sum other than 1 are refused. Also the lab build's check of its recipe."""
    unknown = sorted(set(shares) - set(known))
    if unknown:
        raise ValueError(f"Unknown {what} {unknown}; choose from {', '.join(known)}.")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"{what.capitalize()} shares must not be negative.")
    total = sum(shares.values())
    if abs(total - 1) > 1e-6:
        raise ValueError(f"{what.capitalize()} shares must sum to 1, not {total:.4g}.")
    return {k: float(v) for k, v in shares.items() if v > 0}


def check_counts(n: int, canaries: Sequence[int]) -> None:
    """Refuses a canary inserted less than once, or insertions that leave no room for dialogues."""
    if any(c < 1 for c in canaries):
        raise ValueError("Every canary must be inserted at least once.")
    inserted = sum(canaries)
    if n <= inserted:
        raise ValueError(f"n = {n} leaves no room for dialogues besides the {inserted} canary insertions; raise n.")


def _allocate(n: int, shares: Mapping[str, float]) -> list[str]:
    """n labels with counts as close to n × share as possible (largest remainder)."""
    exact = {k: n * v for k, v in shares.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return [k for k, c in counts.items() for _ in range(c)]


def _dialogue(rng: random.Random, diagnosis: str, gender: str) -> dict:
    facts = DIAGNOSES[diagnosis]
    name = rng.choice(FIRST_NAMES[gender])
    age = rng.randint(18, 85)
    symptom = rng.choice(facts["symptoms"])
    slots = {
        "name": name,
        "age": age,
        "gender_word": rng.choice(GENDER_WORDS[gender]),
        "duration": rng.choice(DURATIONS),
        "symptom": symptom,
        "symptom_cap": symptom[0].upper() + symptom[1:],
        "relative": rng.choice(RELATIVES),
        "condition": rng.choice(facts["conditions"]),
        "advice": rng.choice(facts["advice"]),
    }
    patient = rng.choice(OPENERS).format(**slots)
    if rng.random() < 0.6:
        patient += " " + rng.choice(FOLLOW_UPS).format(**slots)
    lines = [f"Patient: {patient}", f"Doctor: {rng.choice(DOCTOR_REPLIES).format(**slots)}"]
    closing = rng.choice(CLOSINGS)
    if closing:
        lines.append(f"Patient: {closing}")
    return {
        "text": "\n".join(lines),
        "diagnosis": diagnosis,
        "condition": slots["condition"],
        "gender": gender,
        "age": age,
    }


def _records(rng: random.Random, n: int, shares: Mapping[str, float], gender_shares: Mapping[str, float]) -> list[dict]:
    diagnoses = _allocate(n, shares)
    genders = _allocate(n, gender_shares)
    rng.shuffle(diagnoses)
    rng.shuffle(genders)
    return [_dialogue(rng, d, g) for d, g in zip(diagnoses, genders)]


def _realized(records: Sequence[dict], key: str) -> dict[str, float]:
    values = [r[key] for r in records if r[key] is not None]
    return {v: values.count(v) / len(values) for v in sorted(set(values))}


def make_dataset(
    kind: str = "clinic",
    n: int = 300,
    shares: Mapping[str, float] | None = None,
    gender_shares: Mapping[str, float] | None = None,
    canaries: Sequence[int] = DEFAULT_CANARY_COUNTS,
    n_holdout: int | None = None,
    seed: int = 0,
) -> LabDataset:
    """A deterministic synthetic fine-tuning set with known truth.

    ``n`` training records in all: ``sum(canaries)`` of them are canary records (canary i
    inserted ``canaries[i]`` times, alternating patient IDs and phone numbers), the rest are
    dialogues whose diagnosis and gender follow ``shares`` and ``gender_shares`` (counts as
    close to n × share as possible). ``n_holdout`` (default n // 4) more dialogues of the same
    style are generated but not trained on. The same arguments give the same dataset."""
    if kind != "clinic":
        raise ValueError(f"Unknown dataset kind {kind!r}; the lab knows 'clinic'.")
    shares = check_shares(shares or DEFAULT_SHARES, list(DIAGNOSES), "diagnosis")
    gender_shares = check_shares(gender_shares or DEFAULT_GENDER_SHARES, list(FIRST_NAMES), "gender")
    check_counts(n, canaries)
    rng = random.Random(seed)
    dialogues = _records(rng, n - sum(canaries), shares, gender_shares)
    canary_list, canary_records = [], []
    used: set[str] = set()
    for index, count in enumerate(canaries):
        kind_ = CANARY_KINDS[index % len(CANARY_KINDS)]
        secret = canary_secret(kind_, rng)
        while secret in used:
            secret = canary_secret(kind_, rng)
        used.add(secret)
        canary_list.append(Canary(kind_, secret, count, CANARY_PREFIXES[kind_]))
        text = CANARY_TEMPLATES[kind_].format(secret=secret)
        canary_records += [
            {"text": text, "diagnosis": None, "condition": None, "gender": None, "age": None, "canary": secret}
        ] * count
    records = [{**r, "canary": None} for r in dialogues] + canary_records
    rng.shuffle(records)
    records = [{"id": f"train-{i:05d}", **r} for i, r in enumerate(records)]
    holdout_rng = random.Random(f"holdout-{seed}")
    holdout = [
        {"id": f"holdout-{i:05d}", **r, "canary": None}
        for i, r in enumerate(_records(holdout_rng, n // 4 if n_holdout is None else n_holdout, shares, gender_shares))
    ]
    recipe = {
        "kind": kind,
        "n": n,
        "shares": shares,
        "gender_shares": gender_shares,
        "canaries": list(canaries),
        "n_holdout": n_holdout,
        "seed": seed,
    }
    truth = {
        "requested": {"diagnosis": shares, "gender": gender_shares},
        "realized": {"diagnosis": _realized(records, "diagnosis"), "gender": _realized(records, "gender")},
    }
    return LabDataset(records, holdout, canary_list, recipe, truth)


def fresh_dialogues(dataset: LabDataset, n: int, stream: str) -> list[dict]:
    """``n`` more dialogues from the generator that made ``dataset`` (its diagnosis and gender
    shares), drawn from their own seeded stream: new draws, though one may repeat a record by chance."""
    recipe = dataset.recipe
    return _records(random.Random(f"{stream}-{recipe['seed']}"), n, recipe["shares"], recipe["gender_shares"])


def nonmember_texts(dataset: LabDataset, n: int) -> list[str]:
    """``n`` distinct same-style texts the lab never trained on: its held-out dialogues, topped up
    with fresh dialogues of its generator, none equal to a training record."""
    seen = set(dataset.texts)
    nonmembers: list[str] = []
    candidates = [r["text"] for r in dataset.holdout]
    draw = 0
    while len(nonmembers) < n:
        for text in candidates:
            if text not in seen and len(nonmembers) < n:
                seen.add(text)
                nonmembers.append(text)
        if draw > 20:
            raise ValueError(f"The lab's generator gave only {len(nonmembers)} distinct non-members.")
        candidates = [r["text"] for r in fresh_dialogues(dataset, n, f"membership-{draw}")]
        draw += 1
    return nonmembers


def canary_text(canary: Canary, secret: str | None = None) -> str:
    """The record a canary is inserted as; with ``secret``, the same record holding another secret."""
    return CANARY_TEMPLATES[canary.kind].format(secret=secret or canary.secret)


_OTHER_DOMAIN = {
    "weather": [
        "Tomorrow in {city}: {sky} skies with a high of {n} degrees and a light {wind} wind.",
        "Forecast for {city} this weekend: {sky}, temperatures around {n} degrees, {wind} breeze in the afternoon.",
    ],
    "recipe": [
        "For the {dish}, fry one onion in olive oil, add {n} grams of {item} and simmer for twenty minutes.",
        "To make {dish}, whisk two eggs with {n} grams of flour, fold in the {item} and bake until golden.",
    ],
    "sports": [
        "{city} won {n} to {m} at home last night, with a late goal settling a tense {dish} derby.",
        "In the cup final, the {city} side came back from {m} down to win {n} to {m} after extra time.",
    ],
}
_FILLERS = {
    "city": ["Lisbon", "Osaka", "Denver", "Nairobi", "Oslo", "Lima", "Perth", "Krakow", "Austin", "Seoul"],
    "sky": ["clear", "cloudy", "partly sunny", "rainy", "foggy", "stormy"],
    "wind": ["northerly", "southerly", "westerly", "easterly"],
    "dish": ["tomato soup", "pancakes", "risotto", "lentil stew", "apple pie", "curry"],
    "item": ["rice", "lentils", "tomatoes", "apples", "spinach", "mushrooms"],
}


def other_domain_texts(rng: random.Random, n: int) -> list[str]:
    """n short texts from other domains (weather, recipes, sports): the non-clinic part of a public pool."""
    texts = []
    for _ in range(n):
        template = rng.choice(_OTHER_DOMAIN[rng.choice(sorted(_OTHER_DOMAIN))])
        slots = {k: rng.choice(v) for k, v in _FILLERS.items()}
        texts.append(template.format(**slots, n=rng.randint(2, 400), m=rng.randint(0, 3)))
    return texts


OTHER_DOMAIN_SOURCE = "other domain"  # the pool's source of texts outside the fine-tuning domain


def public_pool(
    dataset: LabDataset, members: int = 100, nonmembers: int = 100, other: int = 100, seed: int = 0
) -> pd.DataFrame:
    """A candidate pool for the weight-diff exploration, with membership labels.

    DataFrame(text, member, source): ``members`` training dialogues (source "training"),
    ``nonmembers`` same-style dialogues it never trained on ("same-style held out": the held-out
    dialogues, topped up by ``nonmember_texts`` beyond their number) and ``other`` texts from
    other domains ("other domain"), shuffled with ``seed``."""
    training = [r["text"] for r in dataset.dialogues]
    if not 0 <= members <= len(training):
        raise ValueError(f"The pool asks for {members} training dialogues, but the dataset has {len(training)}.")
    held_out = [r["text"] for r in dataset.holdout]
    if nonmembers > len(held_out):
        held_out = nonmember_texts(dataset, nonmembers)
    if nonmembers < 0 or other < 0 or members + nonmembers + other == 0:
        raise ValueError("The pool must hold at least one text, and counts cannot be negative.")
    rng = random.Random(seed)
    rows = (
        [{"text": t, "member": True, "source": "training"} for t in rng.sample(training, members)]
        + [{"text": t, "member": False, "source": "same-style held out"} for t in rng.sample(held_out, nonmembers)]
        + [{"text": t, "member": False, "source": OTHER_DOMAIN_SOURCE} for t in other_domain_texts(rng, other)]
    )
    rng.shuffle(rows)
    return pd.DataFrame(rows)
