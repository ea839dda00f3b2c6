"""The CLI's shadow models, calibrated property inference and lab shares, on the tiny models."""

import json
import re

import pandas as pd
import pytest

from workbench.cli import main
from workbench.config import PropInferConfig
from workbench.lab_data import LabDataset
from workbench.propinfer import PROMPT_SETS, KeywordLabeler, run
from workbench.propinfer_pipeline import infer
from workbench.session import load_session
from workbench.shadows import ShadowSet


@pytest.fixture(scope="module")
def shadow_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shadows") / "set"
    argv = ["shadows", "build", "--base", "tiny-llama", "--k", "4", "--n", "20", "--epochs", "1", "--rank", "2"]
    assert main([*argv, "--samples", "8", "--max-new-tokens", "6", "--out", str(folder)]) == 0
    return folder


@pytest.fixture
def lab_letters(tmp_path):
    path = tmp_path / "letters.json"
    path.write_text(json.dumps({"digestive": ["e"], "respiratory": ["a"]}))  # lab values: the shadows know their truth
    return str(path)


def test_shadows_build_and_show(shadow_dir, lab_letters, tmp_path, capsys):
    manifest = json.loads((shadow_dir / "shadows.json").read_text())
    assert manifest["command"].startswith("workbench shadows build") and manifest["recipe"]["k"] == 4
    out = tmp_path / "sweep.csv"
    assert main(["shadows", "show", "--dir", str(shadow_dir), "--patterns", lab_letters, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 shadows of tiny-llama: 20 records" in printed
    assert "naive       MAE" in printed and "calibrated  MAE" in printed and "of 8 intervals cover the truth" in printed
    assert printed.count("mean interval score") == 2
    assert len(pd.read_csv(out)) == 4 * 2 * 2
    # random weights write no clinic words: the lab's own labeler finds nothing to calibrate
    assert main(["shadows", "show", "--dir", str(shadow_dir)]) == 2
    assert "no labeled generation" in capsys.readouterr().err


def test_propinfer_calibrates_on_a_shadow_set(shadow_dir, lab_letters, tmp_path, capsys):
    out = tmp_path / "est.csv"
    argv = ["propinfer", "--model", "tiny-llama", "--property", "diagnosis", "--patterns", lab_letters, "--n", "8"]
    assert main([*argv, "--max-new-tokens", "6", "--shadows", str(shadow_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    estimates = pd.read_csv(out)
    assert estimates["value"].tolist() == ["digestive", "respiratory"]
    assert {"share", "ci_low", "calibrated", "cal_low", "cal_high"} <= set(estimates.columns)
    assert "calibrated" in captured.out and "Calibrated on 4 shadow models" in captured.out
    assert "warning" not in captured.err
    assert (
        "Leading estimate: " in captured.out
        and "james-stein" in captured.out
        and not re.search(r"^\s+base\s", captured.out, re.MULTILINE)
    )
    # the shadows' base sampled the same way anchors the base correction
    assert main([*argv, "--max-new-tokens", "6", "--shadows", str(shadow_dir), "--with-base", "--out", str(out)]) == 0
    assert re.search(r"^\s+base\s+digestive", capsys.readouterr().out, re.MULTILINE)
    assert main([*argv, "--with-base", "--out", str(out)]) == 2
    assert "give --shadows too" in capsys.readouterr().err
    assert (
        main(
            [
                *argv,
                "--max-new-tokens",
                "6",
                "--temperature",
                "0.7",
                "--shadows",
                str(shadow_dir),
                "--calibration",
                "ridge",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "temperature is 0.7" in capsys.readouterr().err


def test_propinfer_and_shadows_bad_input_are_clean_errors(tmp_path, capsys):
    base = ["propinfer", "--model", "tiny-llama", "--property", "diagnosis", "--out", str(tmp_path / "e.csv")]
    for argv, message in [
        ([*base, "--shadows", str(tmp_path)], "is not a shadow set"),
        (["shadows", "build", "--base", "tiny-llama", "--k", "3", "--out", str(tmp_path / "s")], "at least 4 shadows"),
        (["shadows", "show", "--dir", str(tmp_path)], "is not a shadow set"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "e.csv").exists()


def test_lab_build_takes_shares(tmp_path, capsys):
    out = tmp_path / "lab"
    argv = ["lab", "build", "--base", "tiny-llama", "--n", "41", "--canaries", "1", "--epochs", "1", "--rank", "2"]
    shares = ["--share", "digestive=0.5", "--share", "mental health=0.5", "--gender-share", "female=0.3"]
    assert main([*argv, *shares, "--out", str(out)]) == 0
    truth = LabDataset.load(out / "dataset").truth
    assert truth["requested"]["diagnosis"] == {"digestive": 0.5, "mental health": 0.5}
    assert truth["requested"]["gender"] == pytest.approx({"female": 0.3, "male": 0.7})
    assert truth["realized"]["gender"]["female"] == pytest.approx(0.3)
    capsys.readouterr()
    for extra, message in [
        (["--share", "digestive"], "is not NAME=VALUE"),
        (["--share", "digestive=x"], "is not NAME=VALUE"),
        (["--share", "digestive=0.9"], "must sum to 1"),
        (["--share", "flu=1"], "Unknown diagnosis"),
        (["--gender-share", "female=0.3", "--gender-share", "male=0.3"], "must sum to 1"),
    ]:
        assert main([*argv, *extra, "--out", str(tmp_path / "other")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_infer_is_one_call_and_a_failed_calibration_keeps_the_runs(shadow_dir, tmp_path, capsys):
    cfg = PropInferConfig(n_samples=8, max_new_tokens=6, seed=3)
    session = load_session("tiny-llama")
    letters = KeywordLabeler("diagnosis", {"digestive": ["e"], "respiratory": ["a"]})
    inference = infer([session], PROMPT_SETS["question-answer"], cfg, letters, shadows=ShadowSet.load(shadow_dir))
    alone = run(session, PROMPT_SETS["question-answer"], cfg, letters)
    assert inference.target.generations["text"].tolist() == alone.generations["text"].tolist()
    assert inference.truth is None and inference.calibration_failed is None  # tiny-llama is no lab model
    assert inference.table()["calibrated"].notna().all() and inference.estimates()["run"].unique().tolist() == [
        "tiny-llama"
    ]
    # values the shadows hold no truth for: no calibration, and the run still stands
    unknown = KeywordLabeler("diagnosis", {"has e": ["e"], "has a": ["a"]})
    failed = infer([session], PROMPT_SETS["question-answer"], cfg, unknown, shadows=ShadowSet.load(shadow_dir))
    assert failed.judged is None and failed.calibration_failed and len(failed.target.generations) == 8
    assert "calibrated" not in failed.table().columns
    with pytest.raises(ValueError, match="at most one base model"):
        infer([session] * 3, PROMPT_SETS["question-answer"], cfg, letters)
    # the CLI writes the run and warns
    patterns = tmp_path / "unknown.json"
    patterns.write_text(json.dumps(unknown.patterns))
    out = tmp_path / "e.csv"
    argv = ["propinfer", "--model", "tiny-llama", "--property", "diagnosis", "--patterns", str(patterns), "--n", "8"]
    assert main([*argv, "--max-new-tokens", "6", "--shadows", str(shadow_dir), "--out", str(out)]) == 0
    assert "warning: no calibration" in capsys.readouterr().err and len(pd.read_csv(out)) == 2
