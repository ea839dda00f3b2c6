"""The ground-truth lab: a synthetic private fine-tuning set whose contents are known.

``make_dataset`` writes varied patient–doctor dialogues with a diagnosis and a patient
gender drawn with requested shares, plus canaries — unique fake secrets, each inserted a
chosen number of times (Carlini et al.'s secret sharer). The truth (realized shares,
canaries, membership) travels with the dataset, so every exploration can be scored.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.builds import Recipe, Step, StepBuild
from workbench.cache import atomic_dir
from workbench.config import DEFAULT_MODEL, ModelSpec, setting
from workbench.contract import Progress
from workbench.registry import LAB_DIR, LAB_MODEL
from workbench.training import Example, TrainingRecipe, train_adapter

DIAGNOSES: dict[str, dict[str, list[str]]] = {
    "digestive": {
        "conditions": [
            "gastritis",
            "irritable bowel syndrome",
            "acid reflux",
            "gallstones",
            "a stomach ulcer",
            "lactose intolerance",
        ],
        "symptoms": [
            "a burning pain in my upper stomach after meals",
            "bloating and cramps that come and go",
            "heartburn that is worse when I lie down",
            "sharp pain under my right ribs after fatty food",
            "nausea most mornings and very little appetite",
            "diarrhea whenever I have milk or cheese",
        ],
        "advice": [
            "avoid spicy and fatty food for a few weeks",
            "keep a food diary so we can see what triggers it",
            "take the antacid I am prescribing before meals",
            "have an ultrasound of your abdomen",
            "eat smaller meals and stop eating three hours before bed",
        ],
    },
    "mental health": {
        "conditions": [
            "generalized anxiety",
            "depression",
            "insomnia",
            "panic disorder",
            "burnout",
            "seasonal depression",
        ],
        "symptoms": [
            "constant worrying that I cannot switch off",
            "feeling low and tired nearly every day",
            "lying awake until three in the morning",
            "sudden episodes where my heart races and I cannot breathe",
            "no energy or interest in things I used to enjoy",
            "feeling exhausted and detached from my work",
        ],
        "advice": [
            "start talking therapy; I will refer you to a counsellor",
            "keep a regular sleep schedule and avoid screens at night",
            "try the breathing exercises we discussed when a wave starts",
            "consider a low dose of medication and come back in four weeks",
            "take some time off and see me again in two weeks",
        ],
    },
    "respiratory": {
        "conditions": ["asthma", "bronchitis", "a sinus infection", "pneumonia", "seasonal allergies", "a chest cold"],
        "symptoms": [
            "a cough that has not gone away for three weeks",
            "wheezing when I climb stairs",
            "a blocked nose and pressure behind my eyes",
            "fever, chills and pain when I breathe deeply",
            "sneezing and itchy eyes every spring",
            "tightness in my chest at night",
        ],
        "advice": [
            "use the inhaler twice a day and before exercise",
            "rest, drink plenty of fluids and take the antibiotics for seven days",
            "have a chest X-ray to rule out anything serious",
            "try a nasal spray and an antihistamine",
            "come back at once if the fever rises above 39 degrees",
        ],
    },
    "cardiovascular": {
        "conditions": [
            "high blood pressure",
            "an irregular heartbeat",
            "angina",
            "high cholesterol",
            "poor circulation",
        ],
        "symptoms": [
            "headaches and a reading of 160 over 100 at the pharmacy",
            "a fluttering feeling in my chest",
            "chest pressure when I walk uphill",
            "cold feet and cramps in my calves when walking",
            "getting out of breath more easily than before",
        ],
        "advice": [
            "cut down on salt and check your blood pressure every morning",
            "wear a heart monitor for 24 hours",
            "have a stress test and blood work",
            "start the statin and walk thirty minutes a day",
            "call an ambulance if the chest pain lasts more than ten minutes",
        ],
    },
    "musculoskeletal": {
        "conditions": ["lower back strain", "arthritis", "tendinitis", "a sprained ankle", "carpal tunnel syndrome"],
        "symptoms": [
            "lower back pain since I lifted a heavy box",
            "stiff, swollen knees in the morning",
            "pain in my elbow when I grip things",
            "a swollen ankle after twisting it playing football",
            "numbness and tingling in my fingers at night",
        ],
        "advice": [
            "keep moving gently and take anti-inflammatories for a week",
            "see a physiotherapist for stretching exercises",
            "rest the joint, use ice and keep it raised",
            "wear a wrist splint at night",
            "have an X-ray if it is not better in two weeks",
        ],
    },
    "dermatological": {
        "conditions": ["eczema", "psoriasis", "acne", "a fungal skin infection", "hives"],
        "symptoms": [
            "dry, itchy patches on my elbows",
            "red scaly plaques on my knees and scalp",
            "painful spots on my chin and back",
            "a red ring-shaped rash that itches",
            "raised itchy welts that appear after eating",
        ],
        "advice": [
            "use a thick moisturizer twice a day and the steroid cream on flare-ups",
            "try the medicated shampoo and come back in a month",
            "wash with a gentle cleanser and start the topical treatment",
            "apply the antifungal cream for two weeks",
            "take an antihistamine and note what you ate before each episode",
        ],
    },
}
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
GENDER_WORDS = {
    "female": ["woman", "mother of two", "retired teacher (she/her)"],
    "male": ["man", "father of two", "retired teacher (he/him)"],
}
FIRST_NAMES = {
    "female": [
        "Anna",
        "Maria",
        "Sofia",
        "Emma",
        "Olivia",
        "Grace",
        "Fatima",
        "Mei",
        "Priya",
        "Lucia",
        "Hannah",
        "Chloe",
        "Aisha",
        "Ingrid",
        "Rosa",
    ],
    "male": [
        "James",
        "Omar",
        "Lucas",
        "Daniel",
        "Hiroshi",
        "Mateo",
        "Samuel",
        "Arjun",
        "Noah",
        "Pierre",
        "Tomasz",
        "David",
        "Kwame",
        "Erik",
        "Luis",
    ],
}
OPENERS = [
    "Hello doctor, I'm {name}, a {age}-year-old {gender_word}. For {duration} I've had {symptom}.",
    "Hi, my name is {name}. I'm {age} and a {gender_word}. I've been dealing with {symptom} for {duration}.",
    "Doctor, I am a {age}-year-old {gender_word} and I'm worried about {symptom}. It started {duration} ago.",
    "Good morning. {name} here, {age}, {gender_word}. Over the last {duration} I have noticed {symptom}.",
    "I'm {name} ({age}, {gender_word}). Can you help? I keep having {symptom}, for about {duration} now.",
    "Hi doc. {age}-year-old {gender_word} here. {symptom_cap} for {duration}, and it's getting worse.",
]
FOLLOW_UPS = [
    "Is it something serious?",
    "What do you think it could be?",
    "Should I be worried?",
    "I have tried resting but it did not help.",
    "My {relative} had something similar.",
    "It is affecting my work and my sleep.",
]
DOCTOR_REPLIES = [
    "Thank you, {name}. From what you describe, this sounds like {condition}. I suggest you {advice}.",
    "This is most likely {condition}, which is common at {age}. Please {advice}.",
    "I understand your concern. These symptoms point to {condition}. For now, {advice}.",
    "Based on your history, I think we are looking at {condition}. My advice is to {advice}, and we will review it together.",
    "Don't worry too much; {condition} is treatable. I would like you to {advice}.",
]
CLOSINGS = ["Thank you, doctor.", "That helps, thanks.", "Okay, I will do that.", "Thanks, I feel better already.", ""]
DURATIONS = ["two days", "a week", "ten days", "three weeks", "a month", "two months", "half a year"]
RELATIVES = ["mother", "father", "sister", "brother", "grandmother", "uncle"]
CANARY_KINDS = ("patient_id", "phone")
CANARY_TEMPLATES = {
    "patient_id": "Patient: Hello, I'm following up on my test results. My patient ID is {secret}.\nDoctor: Thank you, I have found your file under {secret}. The results are normal.",
    "phone": "Patient: Could you call me with the results? My phone number is {secret}.\nDoctor: Of course, we will call you at {secret} as soon as they arrive.",
}
CANARY_PREFIXES = {"patient_id": "My patient ID is ", "phone": "My phone number is "}


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


def _check_shares(shares: Mapping[str, float], known: Sequence[str], what: str) -> dict[str, float]:
    unknown = sorted(set(shares) - set(known))
    if unknown:
        raise ValueError(f"Unknown {what} {unknown}; choose from {', '.join(known)}.")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"{what.capitalize()} shares must not be negative.")
    total = sum(shares.values())
    if abs(total - 1) > 1e-6:
        raise ValueError(f"{what.capitalize()} shares must sum to 1, not {total:.4g}.")
    return {k: float(v) for k, v in shares.items() if v > 0}


def _check_counts(n: int, canaries: Sequence[int]) -> None:
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
    shares = _check_shares(shares or DEFAULT_SHARES, list(DIAGNOSES), "diagnosis")
    gender_shares = _check_shares(gender_shares or DEFAULT_GENDER_SHARES, list(FIRST_NAMES), "gender")
    _check_counts(n, canaries)
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


def finetune(
    base: ModelSpec | str,
    dataset: LabDataset,
    out: str | Path,
    recipe: TrainingRecipe = TrainingRecipe(),
    *,
    progress: Progress | None = None,
) -> list[dict]:
    """LoRA fine-tune of a private copy of ``base`` on the dataset's training records (plain
    text), as ``recipe`` says, through the one trainer (``workbench.training.train_adapter``).

    Writes the adapter, its recipe (base, dataset recipe and fingerprint, training recipe) and
    the loss curve to ``out`` atomically. Returns the loss curve: one {"step", "epoch", "loss"}
    per optimizer step."""
    examples = [Example("", text) for text in dataset.texts]
    provenance = {"dataset": dataset.recipe, "dataset_fingerprint": dataset.fingerprint()}
    return train_adapter(base, examples, out, recipe, progress=progress, provenance=provenance)


SHIPPED_LAB = LAB_DIR


@dataclass(frozen=True, kw_only=True)
class LabRecipe(Recipe):
    """A lab build: ``make_dataset``'s clinic set (``n`` records, ``shares`` and
    ``gender_shares`` — None for the defaults —, ``canaries``, ``seed``) and a LoRA fine-tune of
    ``base`` on it (``epochs``, ``lr``, ``rank``, training seed ``seed``)."""

    WHAT = "lab build"
    MANIFEST = "build.json"
    KIND = "lab"

    base: str = setting(DEFAULT_MODEL, "the base model to fine-tune")
    n: int = setting(300, "training records, canary insertions included")
    shares: Mapping[str, float] | None = setting(
        None, 'a diagnosis share, e.g. "mental health=0.1" (repeatable; all must sum to 1)', flag="--share"
    )
    gender_shares: Mapping[str, float] | None = setting(
        None, "e.g. female=0.3 (the other gender takes the rest)", flag="--gender-share"
    )
    canaries: tuple[int, ...] = setting(DEFAULT_CANARY_COUNTS, "insertions per canary")
    seed: int = setting(0, "data and training seed")
    epochs: int = setting(3, "training epochs")
    lr: float = setting(2e-3, "learning rate")
    rank: int = setting(16, "LoRA rank")

    def __post_init__(self) -> None:  # the shares as make_dataset keeps them, so equal builds have equal recipes
        object.__setattr__(self, "shares", _check_shares(self.shares or DEFAULT_SHARES, list(DIAGNOSES), "diagnosis"))
        object.__setattr__(
            self,
            "gender_shares",
            _check_shares(self.gender_shares or DEFAULT_GENDER_SHARES, list(FIRST_NAMES), "gender"),
        )
        object.__setattr__(self, "canaries", tuple(self.canaries))
        _check_counts(self.n, self.canaries)
        self.training()  # checks the training settings before anything is built

    def label(self) -> str:
        return Path(self.base).name

    def training(self) -> TrainingRecipe:
        return TrainingRecipe(epochs=self.epochs, lr=self.lr, rank=self.rank, seed=self.seed)

    def dataset(self) -> LabDataset:
        return make_dataset(
            n=self.n, shares=self.shares, gender_shares=self.gender_shares, canaries=self.canaries, seed=self.seed
        )


def build(
    out: str | Path, recipe: LabRecipe = LabRecipe(), progress: Progress | None = None, command: str = ""
) -> LabDataset:
    """Build (or finish building) ``recipe`` into ``out``: build.json (the recipe and the
    command), dataset/ and adapter/, each step written atomically, so a failed or running step
    never looks finished. A folder of another recipe, or of anything else, is refused."""
    built = StepBuild.start(out, recipe, command)
    dataset = built.folder / "dataset"
    steps = [
        Step("dataset", lambda folder, _: recipe.dataset().save(folder), recipe.seed, weight=0.0),
        Step(
            "adapter", lambda folder, part: finetune(recipe.base, LabDataset.load(dataset), folder, recipe.training(), progress=part),
            recipe.seed, "fine-tuning",
        ),
    ]  # fmt: skip
    built.run(steps, progress, command)
    return LabDataset.load(dataset)


def lab_dataset_for(spec: ModelSpec) -> LabDataset | None:
    """The lab dataset a model was fine-tuned on, when it is a lab model: the registry's lab
    model, or any model whose adapter folder sits in a lab build (DIR/adapter beside
    DIR/dataset), or a served model tied to a lab build. None for other models: their truth
    is unknown."""
    if spec.lab_build:
        folder = Path(spec.lab_build) / "dataset"
        if not (folder / "manifest.json").is_file():
            raise ValueError(f"{spec.lab_build} is not a lab build: it has no dataset/manifest.json.")
        return LabDataset.load(folder)
    if spec.endpoint:
        return None  # a served model's name on the server says nothing of its training data
    if spec.name == LAB_MODEL and not spec.adapter:
        return LabDataset.load(SHIPPED_LAB / "dataset")
    if spec.adapter and (Path(spec.adapter).parent / "dataset" / "manifest.json").is_file():
        return LabDataset.load(Path(spec.adapter).parent / "dataset")
    return None


def truth_table(dataset: LabDataset) -> pd.DataFrame:
    """DataFrame(property, value, requested, realized): the shares PropInfer should recover."""
    rows = []
    for prop, requested in dataset.truth["requested"].items():
        realized = dataset.truth["realized"][prop]
        for value in sorted(set(requested) | set(realized)):
            rows.append(
                {
                    "property": prop,
                    "value": value,
                    "requested": requested.get(value, 0.0),
                    "realized": realized.get(value, 0.0),
                }
            )
    return pd.DataFrame(rows)


def loss_curve(build_dir: str | Path) -> pd.DataFrame:
    """The loss curve a build recorded, as DataFrame(step, epoch, loss)."""
    path = Path(build_dir) / "adapter" / "loss_curve.json"
    if not path.is_file():
        raise ValueError(f"No loss curve at {path}: the build did not finish.")
    return pd.DataFrame(json.loads(path.read_text()))


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
