"""The one build mechanism: recipe → resumable step build → saved report.

A ``Recipe`` is a keyword-only frozen dataclass: its dict form (what manifests keep), a digest
that is the same in every process, and a default folder named by it. A ``StepBuild`` is a
folder with a manifest (the recipe, the command that began it, a record of every step done)
and one folder per step; a step is written to a temporary folder renamed into place when it
finishes, so an interrupted build keeps what it finished and the next run of the same recipe
does only the rest, while a folder of another recipe is refused. A ``SavedReport`` is a
report's folder: its tables, its other values and the records of the steps that made it.

The lab, the shadow set, backdoor extraction and reactivation all build through this module.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar, Self, TypeVar

import pandas as pd

from workbench.cache import atomic_dir, atomic_file, cache_dir, replacing_dir
from workbench.contract import Progress, scaled_progress

R = TypeVar("R", bound="Recipe")


def code_version() -> str:
    """A digest of the library's sources (``workbench/*.py``): what an artefact was made with."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def command_line(args: Sequence[str] | None = None, program: str | None = None) -> str:
    """The command that made an artefact, as a line a shell can run again: ``program`` (default:
    the script this process runs) and ``args`` (default: the arguments it was given)."""
    return shlex.join([program or sys.argv[0], *(sys.argv[1:] if args is None else args)])


def run_manifest(out: Path, grid: dict, resume: bool) -> dict:
    """A benchmark run's manifest: command, code version, grid and seconds per step. With
    ``resume``, the one already in ``out`` with this invocation appended to its "resumed" list;
    ValueError when that run had another grid."""
    path = Path(out) / "manifest.json"
    if resume and path.is_file():
        manifest = json.loads(path.read_text())
        if manifest["grid"] != json.loads(json.dumps(grid)):
            raise ValueError(f"{out} holds a run of another grid: resume only the same grid.")
        manifest.setdefault("resumed", []).append({"command": command_line(), "code_version": code_version()})
        return manifest
    return {"command": command_line(), "code_version": code_version(), "grid": grid, "seconds": {}}


def step_record(started: float, seed: int | None, command: str) -> dict:
    """What a manifest keeps of a step: its wall time in seconds since ``started`` (a
    ``time.perf_counter()`` reading), its seed, the code version and the command."""
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "seed": seed,
        "code_version": code_version(),
        "command": command,
    }


def _plain(value):
    """A recipe value as JSON holds it: tuples as lists, mappings as dicts."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How an artefact is made. Subclasses are ``@dataclass(frozen=True, kw_only=True)`` with
    plain fields (numbers, strings, None, tuples and mappings of them), so equal settings make
    equal recipes with one digest. A recipe that is built into a folder names ``WHAT`` (for
    messages), ``MANIFEST`` (its build's manifest file) and ``KIND`` (the cache folder of its
    default builds), and ``label`` starts its default folder's name."""

    WHAT: ClassVar[str] = "build"
    MANIFEST: ClassVar[str] = "build.json"
    KIND: ClassVar[str] = ""

    def as_dict(self) -> dict:
        """Setting → value, as JSON holds them (tuples as lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping) -> Self:
        """The recipe of a dict form: lists become tuples; a setting missing (a recipe saved
        before it existed) takes its default; an unknown one is an error."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"A {cls.__name__} has no setting {', '.join(unknown)}.")
        return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})

    def digest(self) -> str:
        """Ten hex digits of the SHA-256 of the dict form with sorted keys: the same in every process."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:10]

    def label(self) -> str:
        """The readable start of the default folder's name."""
        return ""

    def default_dir(self) -> Path:
        """``<cache>/<KIND>/<label>-<digest>``: where this recipe is built unless told otherwise."""
        if not self.KIND:
            raise ValueError(f"A {type(self).__name__} is not built into a folder of its own.")
        return cache_dir() / self.KIND / "-".join(filter(None, (self.label(), self.digest())))


@dataclass(frozen=True)
class Step:
    """One step of a build: ``make(folder, progress)`` writes it into ``folder``, a temporary
    folder that becomes ``<build>/<name>`` once ``make`` returns. ``seed`` goes into its record;
    ``label`` starts its progress messages (default: the name); ``weight`` is its share of the
    build's progress."""

    name: str
    make: Callable[[Path, Progress | None], None]
    seed: int | None = None
    label: str = ""
    weight: float = 1.0


@dataclass
class StepBuild:
    """A build folder: ``recipe.MANIFEST`` holds the recipe, the command that began the build
    and ``steps`` (step → its ``step_record``); every step done is a folder of its name. Builds
    made before steps were recorded have no records: their steps are known by their folders."""

    folder: Path
    recipe: Recipe
    command: str = ""
    steps: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path, recipe_type: type[Recipe]) -> StepBuild:
        """The build in ``folder``; ValueError when it holds no build of a ``recipe_type``."""
        folder = Path(folder)
        path = folder / recipe_type.MANIFEST
        if not path.is_file():
            raise ValueError(f"{folder} is not a {recipe_type.WHAT}: it has no {recipe_type.MANIFEST}.")
        try:
            manifest = json.loads(path.read_text())
            return cls(
                folder,
                recipe_type.from_dict(manifest["recipe"]),
                manifest.get("command", ""),
                manifest.get("steps", {}),
            )
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{folder} is not a {recipe_type.WHAT}: its {recipe_type.MANIFEST} is unreadable ({err!r})."
            ) from err

    @classmethod
    def start(cls, folder: str | Path, recipe: Recipe, command: str = "") -> StepBuild:
        """The build of ``recipe`` in ``folder``: begun when the folder does not exist, resumed
        when it holds a build of the same recipe, refused when it holds anything else."""
        folder = Path(folder)
        if not folder.exists():
            with atomic_dir(folder) as tmp:  # the folder appears with its manifest or not at all
                cls(tmp, recipe, command)._save_manifest()
        elif not (folder / recipe.MANIFEST).is_file():
            raise ValueError(f"{folder} already exists and is not a {recipe.WHAT}; choose another folder.")
        build = cls.load(folder, type(recipe))
        if build.recipe != recipe:
            raise ValueError(
                f"{folder} already exists and holds a {recipe.WHAT} of another recipe; choose another folder or delete it first."
            )
        return build

    def done(self, step: str) -> bool:
        """Whether ``step`` is built: its folder appears only once it is complete."""
        return (self.folder / step).is_dir()

    def run(self, steps: Sequence[Step], progress: Progress | None = None, command: str = "") -> None:
        """Build the steps not done yet, in order, each atomically, recording each (run by
        ``command``) as it finishes. Progress runs over all of them by weight; each step ends
        with "done", or reports "already built" when it was built before."""
        total = sum(step.weight for step in steps) or 1.0
        low = 0.0
        for step in steps:
            high = low + step.weight / total
            part = scaled_progress(progress, low, high, f"{step.label or step.name}: ")
            low = high
            if self.done(step.name):
                if part is not None:
                    part(1.0, "already built")
                continue
            started = time.perf_counter()
            with atomic_dir(self.folder / step.name) as tmp:
                step.make(tmp, part)
            self.steps[step.name] = step_record(started, step.seed, command)
            self._save_manifest()
            if part is not None:
                part(1.0, "done")

    def copy_step(self, source: StepBuild, name: str) -> None:
        """Take step ``name`` over from ``source``, a build where it was made the same way; its
        record keeps the time it took there and says where it came from."""
        if not source.done(name):
            raise ValueError(f"{source.folder} has no step {name!r} to copy.")
        with atomic_dir(self.folder / name) as tmp:
            shutil.copytree(source.folder / name, tmp, dirs_exist_ok=True)
        self.steps[name] = {**source.steps.get(name, {}), "copied_from": str(source.folder)}
        self._save_manifest()

    def _save_manifest(self) -> None:
        with atomic_file(self.folder / self.recipe.MANIFEST) as tmp:
            tmp.write_text(
                json.dumps({"recipe": self.recipe.as_dict(), "command": self.command, "steps": self.steps}, indent=2)
            )


@dataclass
class BuiltSteps:
    """An exploration's build: its ``StepBuild`` (folder, recipe, command, step records), with the
    exploration's own artefacts beside it in subclasses; ``STEPS`` orders its steps."""

    build: StepBuild
    STEPS: ClassVar[Sequence[str]] = ()

    @property
    def folder(self) -> Path:
        return self.build.folder

    @property
    def recipe(self) -> Recipe:
        return self.build.recipe

    @property
    def command(self) -> str:
        return self.build.command

    def built(self) -> list[str]:
        """The steps done, in order."""
        return [step for step in self.STEPS if self.build.done(step)]


def _read_table(folder: Path, name: str) -> pd.DataFrame:
    parquet = folder / f"{name}.parquet"
    return (
        pd.read_parquet(parquet) if parquet.is_file() else pd.read_csv(folder / f"{name}.csv")
    )  # CSV: reports saved before


@dataclass
class SavedReport:
    """A report as a folder: a parquet file per table, ``report.json`` (its other values) and
    ``manifest.json`` (step → its ``step_record``). Reports saved before manifests were kept
    hold some tables as CSV and no manifest: they load, with no step records."""

    tables: dict[str, pd.DataFrame]
    values: dict
    steps: dict[str, dict] = field(default_factory=dict)

    def save(self, folder: str | Path, what: str = "report") -> Path:
        """Write the report to ``folder``, replacing an earlier report there once this one is
        complete; a folder that holds anything else is refused."""
        folder = Path(folder)
        if folder.exists() and not (folder / "report.json").is_file():
            raise ValueError(f"{folder} exists and holds no {what}; choose another folder.")
        with replacing_dir(folder) as tmp:
            for name, table in self.tables.items():
                table.to_parquet(tmp / f"{name}.parquet")
            (tmp / "report.json").write_text(json.dumps(self.values, indent=2))
            (tmp / "manifest.json").write_text(json.dumps({"steps": self.steps}, indent=2))
        return folder

    @classmethod
    def load(
        cls, folder: str | Path, tables: Sequence[str], keys: Sequence[str] = (), what: str = "report"
    ) -> SavedReport:
        """The report in ``folder``, with these tables and these keys among its values;
        ValueError when it holds none."""
        folder = Path(folder)
        manifest = folder / "manifest.json"
        try:
            values = json.loads((folder / "report.json").read_text())
            missing = [key for key in keys if key not in values]
            if missing:
                raise KeyError(", ".join(missing))
            read = {name: _read_table(folder, name) for name in tables}
            steps = json.loads(manifest.read_text())["steps"] if manifest.is_file() else {}
        except (OSError, json.JSONDecodeError, KeyError, ValueError) as err:
            raise ValueError(f"{folder} holds no {what}: {err}") from err
        return cls(read, values, steps)
