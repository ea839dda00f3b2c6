"""The one build mechanism: recipes, step builds and saved reports, on toy steps that count their calls."""

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from workbench.builds import (
    Recipe,
    SavedReport,
    Step,
    StepBuild,
    code_version,
    command_line,
)


@dataclass(frozen=True, kw_only=True)
class Toy(Recipe):
    WHAT = "toy build"
    MANIFEST = "toy.json"
    KIND = "toys"

    name: str = "toy"
    sizes: tuple[int, ...] = (1, 2)
    shares: Mapping[str, float] = field(default_factory=lambda: {"a": 0.25, "b": 0.75})
    seed: int = 0

    def label(self) -> str:
        return self.name


TOY_DIGEST = "95382c9dd8"  # Toy()'s digest, computed once: it must never change


def _steps(calls: list[str], fail: str = "") -> list[Step]:
    def make(name: str):
        def write(folder: Path, progress) -> None:
            calls.append(name)
            (folder / "part.txt").write_text(name)
            if name == fail:
                raise RuntimeError(f"{name} failed half-way")
            if progress is not None:
                progress(0.5, "half")

        return write

    return [Step("first", make("first"), seed=1), Step("second", make("second"), seed=2, label="Second", weight=3.0)]


def test_a_recipe_is_keyword_only_frozen_and_round_trips():
    with pytest.raises(TypeError):
        Toy("positional")  # noqa
    with pytest.raises(FrozenInstanceError):
        Toy().seed = 1  # type: ignore[misc]
    recipe = Toy(sizes=(3, 4), seed=7)
    assert recipe.as_dict() == {"name": "toy", "sizes": [3, 4], "shares": {"a": 0.25, "b": 0.75}, "seed": 7}
    assert Toy.from_dict(json.loads(json.dumps(recipe.as_dict()))) == recipe  # lists come back as tuples
    assert Toy.from_dict({"seed": 7, "sizes": [3, 4]}) == recipe  # a setting saved before it existed takes its default
    with pytest.raises(ValueError, match="no setting colour"):
        Toy.from_dict({"colour": "red"})


def test_the_digest_is_stable_across_orderings_and_processes(monkeypatch, tmp_path):
    assert Toy().digest() == TOY_DIGEST
    assert Toy(shares={"b": 0.75, "a": 0.25}).digest() == TOY_DIGEST  # mapping order does not count
    assert Toy(seed=1).digest() != TOY_DIGEST
    code = (
        "from dataclasses import dataclass, field\nfrom collections.abc import Mapping\nfrom workbench.builds import Recipe\n"
        "@dataclass(frozen=True, kw_only=True)\nclass Toy(Recipe):\n    name: str = 'toy'\n    sizes: tuple = (1, 2)\n"
        "    shares: Mapping = field(default_factory=lambda: {'b': 0.75, 'a': 0.25})\n    seed: int = 0\nprint(Toy().digest())"
    )
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    assert other == TOY_DIGEST
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert Toy().default_dir() == tmp_path / "toys" / f"toy-{TOY_DIGEST}"


def test_the_shipped_recipes_keep_their_default_folders(monkeypatch, tmp_path):
    """Default folders are named by the digest: the names builds already have must not move."""
    from workbench.backdoor import BackdoorRecipe
    from workbench.reactivation import ReactivationRecipe
    from workbench.shadows import ShadowRecipe

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert ShadowRecipe().default_dir() == tmp_path / "shadows" / "smollm2-135m-instruct-k8-a78413d4cf"
    # issue 27 changed the backdoor recipe (18 pairs per word, victims 5 epochs): a new recipe, a new folder
    assert BackdoorRecipe().default_dir() == tmp_path / "backdoor" / "smollm2-135m-instruct-f2c6252abc"
    # issue 28 changed the reactivation recipe (24 A-test and 24 A-never passages, 128 new tokens)
    assert ReactivationRecipe().default_dir() == tmp_path / "reactivation" / "smollm2-135m-instruct-refusal-c023de5eb2"
    assert (
        ReactivationRecipe(suppression="unlearning").default_dir().name == "smollm2-135m-instruct-unlearning-a91b58e5dc"
    )


def test_a_build_resumes_without_redoing_a_step(tmp_path):
    out = tmp_path / "b"
    calls, seen = [], []
    built = StepBuild.start(out, Toy(), "make toy")
    built.run(_steps(calls), lambda f, m: seen.append((f, m)), "make toy")
    assert calls == ["first", "second"] and built.done("first") and built.done("second")
    assert seen[-1][0] == pytest.approx(1.0) and ("Second: half") in [m for _, m in seen]
    assert [f for f, m in seen if m == "first: half"] == [
        pytest.approx(0.125)
    ]  # weights 1 and 3: the first step is a quarter
    again = StepBuild.start(out, Toy(), "make toy again")
    seen.clear()
    again.run(_steps(calls), lambda f, m: seen.append((f, m)), "make toy again")
    assert calls == ["first", "second"]  # nothing ran twice
    assert [m for _, m in seen] == ["first: already built", "Second: already built"]
    assert again.command == "make toy"  # the command that began the build stays


def test_the_manifest_records_the_recipe_and_every_step(tmp_path):
    out = tmp_path / "b"
    StepBuild.start(out, Toy(seed=3), "make toy").run(_steps([]), None, "make toy")
    manifest = json.loads((out / "toy.json").read_text())
    assert manifest["recipe"] == Toy(seed=3).as_dict() and manifest["command"] == "make toy"
    assert set(manifest["steps"]) == {"first", "second"}
    first = manifest["steps"]["first"]
    assert (
        first["seed"] == 1
        and first["command"] == "make toy"
        and first["code_version"] == code_version()
        and first["seconds"] >= 0
    )
    assert manifest["steps"]["second"]["seed"] == 2
    loaded = StepBuild.load(out, Toy)
    assert loaded.recipe == Toy(seed=3) and loaded.steps == manifest["steps"]


def test_a_failed_step_leaves_no_half_folder_and_the_build_resumes(tmp_path):
    out = tmp_path / "b"
    calls = []
    built = StepBuild.start(out, Toy())
    with pytest.raises(RuntimeError, match="second failed"):
        built.run(_steps(calls, fail="second"))
    assert built.done("first") and not built.done("second")
    assert sorted(p.name for p in out.iterdir()) == ["first", "toy.json"]  # no partial folder left behind
    assert set(json.loads((out / "toy.json").read_text())["steps"]) == {"first"}
    StepBuild.start(out, Toy()).run(_steps(calls))
    assert calls == ["first", "second", "second"] and (out / "second" / "part.txt").read_text() == "second"


def test_another_recipe_or_a_foreign_folder_is_refused(tmp_path):
    out = tmp_path / "b"
    StepBuild.start(out, Toy())
    with pytest.raises(ValueError, match="already exists and holds a toy build of another recipe"):
        StepBuild.start(out, Toy(seed=1))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="already exists and is not a toy build"):
        StepBuild.start(tmp_path / "empty", Toy())
    with pytest.raises(ValueError, match="is not a toy build: it has no toy.json"):
        StepBuild.load(tmp_path / "empty", Toy)
    (out / "toy.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a toy build: its toy.json is unreadable"):
        StepBuild.load(out, Toy)
    (out / "toy.json").write_text(json.dumps({"recipe": {"colour": "red"}}))
    with pytest.raises(ValueError, match="unreadable"):
        StepBuild.load(out, Toy)


def test_a_manifest_without_step_records_still_loads(tmp_path):
    """Builds made before steps were recorded: their steps are known by their folders."""
    out = tmp_path / "old"
    (out / "first").mkdir(parents=True)
    (out / "toy.json").write_text(json.dumps({"recipe": Toy().as_dict(), "command": "old"}))
    built = StepBuild.load(out, Toy)
    assert built.steps == {} and built.command == "old" and built.done("first") and not built.done("second")


def test_a_report_round_trips_with_its_manifest(tmp_path):
    tables = {
        "samples": pd.DataFrame({"ids": [[1, 2], [3]], "text": ["a", "b"]}),
        "summary": pd.DataFrame({"x": [0.5, float("nan")]}),
    }
    steps = {"model": {"seconds": 1.5, "seed": 0, "code_version": code_version(), "command": "attack"}}
    folder = SavedReport(tables, {"quality": {"implant": 2.5}}, steps).save(tmp_path / "report", "toy report")
    loaded = SavedReport.load(folder, ["samples", "summary"], ["quality"], "toy report")
    assert loaded.values == {"quality": {"implant": 2.5}} and loaded.steps == steps
    pd.testing.assert_frame_equal(loaded.tables["summary"], tables["summary"])
    assert [list(ids) for ids in loaded.tables["samples"]["ids"]] == [[1, 2], [3]]
    SavedReport({"summary": tables["summary"].head(1)}, {"quality": {}}).save(
        folder, "toy report"
    )  # replaces the old one
    assert len(SavedReport.load(folder, ["summary"]).tables["summary"]) == 1 and not list(tmp_path.glob(".report*"))
    with pytest.raises(ValueError, match="holds no toy report"):
        SavedReport.load(folder, ["summary"], ["missing"], "toy report")
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="holds no toy report"):
        SavedReport(tables, {}).save(tmp_path / "other", "toy report")


def test_a_report_saved_before_manifests_loads_its_csv_tables(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    pd.DataFrame({"x": [1, 2]}).to_csv(folder / "summary.csv", index=False)
    (folder / "report.json").write_text(json.dumps({"quality": {}}))
    loaded = SavedReport.load(folder, ["summary"], ["quality"])
    assert loaded.tables["summary"]["x"].tolist() == [1, 2] and loaded.steps == {}


def test_the_command_line_and_the_code_version():
    assert (
        command_line(["lab", "build", "--share", "mental health=0.1"], "workbench")
        == "workbench lab build --share 'mental health=0.1'"
    )
    assert command_line().startswith(sys.argv[0])
    assert len(code_version()) == 16 and code_version() == code_version()


def test_run_manifest_starts_or_resumes_a_run_of_the_same_grid(tmp_path):
    from workbench.builds import run_manifest

    fresh = run_manifest(tmp_path, {"n": 1}, resume=True)  # nothing to resume: a fresh manifest
    assert fresh["grid"] == {"n": 1} and fresh["seconds"] == {} and "resumed" not in fresh
    (tmp_path / "manifest.json").write_text(json.dumps({**fresh, "seconds": {"step": 2.0}}))
    resumed = run_manifest(tmp_path, {"n": 1}, resume=True)
    assert resumed["seconds"] == {"step": 2.0} and len(resumed["resumed"]) == 1
    assert "resumed" not in run_manifest(tmp_path, {"n": 1}, resume=False)
    with pytest.raises(ValueError, match="another grid"):
        run_manifest(tmp_path, {"n": 2}, resume=True)
