import pandas as pd
import pytest

from workbench import lab
from workbench.cli import main


@pytest.fixture(scope="module")
def tiny_lab(tmp_path_factory):
    """A lab build on tiny-llama: 1 epoch over 60 records with 10 canaries."""
    folder = tmp_path_factory.mktemp("lab") / "build"
    lab.build(folder, lab.LabRecipe(base="tiny-llama", n=60, canaries=(1, 2) * 5, epochs=1, rank=2))
    return folder


def test_membership_on_uploaded_files(tmp_path, capsys):
    members, nonmembers = tmp_path / "m.txt", tmp_path / "n.txt"
    members.write_text("\n".join(f"member number {i} wrote a note" for i in range(12)))
    nonmembers.write_text("\n".join(f"someone else, number {i}, wrote another" for i in range(15)))
    out = tmp_path / "scores.csv"
    args = ["membership", "--model", "tiny-llama", "--members", str(members), "--nonmembers", str(nonmembers)]
    assert main([*args, "--reference", "tiny-llama", "--out", str(out), "--save", str(tmp_path / "report")]) == 0
    scores = pd.read_csv(out)
    assert len(scores) == 27 and scores["member"].sum() == 12
    printed = capsys.readouterr().out
    assert "12 members, 15 non-members" in printed and "not estimable" in printed and "blind" in printed


def test_membership_bad_input_is_a_clean_error(tmp_path, capsys):
    members = tmp_path / "m.txt"
    members.write_text("one\ntwo\n")
    assert (
        main(["membership", "--model", "tiny-llama", "--members", str(members), "--out", str(tmp_path / "s.csv")]) == 2
    )
    assert "Give both --members and --nonmembers" in capsys.readouterr().err
    assert main(["membership", "--model", "tiny-llama", "--out", str(tmp_path / "s.csv")]) == 2
    assert "not a lab model" in capsys.readouterr().err
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert (
        main(
            [
                "membership",
                "--model",
                "tiny-llama",
                "--members",
                str(binary),
                "--nonmembers",
                str(members),
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err


def test_audit_of_a_lab_build_and_its_null(tiny_lab, tmp_path, capsys):
    out = tmp_path / "canaries.parquet"
    args = [
        "audit",
        "--model",
        "tiny-llama",
        "--adapter",
        str(tiny_lab / "adapter"),
        "--n-never",
        "20",
        "--alternatives",
        "5",
    ]
    assert main([*args, "--out", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert len(scores) == 30 and (scores["insertions"] > 0).sum() == 10
    assert "all inserted" in capsys.readouterr().out
    assert main([*args, "--null", "--out", str(out)]) == 0
    assert (pd.read_parquet(out)["insertions"] == 1).sum() == 15
