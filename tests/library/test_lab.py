import json

import pytest
import torch

from workbench.config import ModelSpec
from workbench.lab import SHIPPED_LAB, LabRecipe, build, finetune, loss_curve, truth_table
from workbench.lab_data import DEFAULT_SHARES, LabDataset, make_dataset
from workbench.session import load_session
from workbench.training import TrainingRecipe


def test_dataset_is_deterministic_for_a_seed():
    a, b, c = make_dataset(n=200, seed=3), make_dataset(n=200, seed=3), make_dataset(n=200, seed=4)
    assert a.texts == b.texts and a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert [x.secret for x in a.canaries] == [x.secret for x in b.canaries]


def test_shares_match_the_request():
    dataset = make_dataset(n=1031, seed=0)
    dialogues = dataset.dialogues
    for value, share in DEFAULT_SHARES.items():
        realized = sum(r["diagnosis"] == value for r in dialogues) / len(dialogues)
        assert realized == pytest.approx(share, abs=1 / len(dialogues))
        assert dataset.truth["realized"]["diagnosis"][value] == pytest.approx(realized)
    assert dataset.truth["realized"]["gender"]["female"] == pytest.approx(0.6, abs=0.002)


def test_dialogues_are_varied_and_mention_their_labels():
    dataset = make_dataset(n=400, seed=0)
    dialogues = dataset.dialogues
    assert len({r["text"] for r in dialogues}) > 0.95 * len(dialogues)
    assert len({r["text"].split("\n")[0][:25] for r in dialogues}) > 100  # many different openings
    assert all(r["text"].startswith("Patient: ") and "\nDoctor: " in r["text"] for r in dialogues)
    assert all(r["condition"] in r["text"] for r in dialogues)


def test_canaries_are_inserted_as_requested():
    dataset = make_dataset(n=100, canaries=(1, 3, 5), seed=1)
    assert [c.insertions for c in dataset.canaries] == [1, 3, 5]
    for canary in dataset.canaries:
        holders = [r for r in dataset.records if r["canary"] == canary.secret]
        assert len(holders) == canary.insertions
        assert all(canary.prefix + canary.secret in r["text"] for r in holders)
    assert len({c.secret for c in dataset.canaries}) == 3
    assert not any(c.secret in r["text"] for c in dataset.canaries for r in dataset.holdout)


def test_holdout_is_same_style_but_disjoint():
    dataset = make_dataset(n=200, seed=0)
    assert len(dataset.holdout) == 50
    assert not {r["text"] for r in dataset.holdout} & set(dataset.texts)
    assert all(r["text"].startswith("Patient: ") for r in dataset.holdout)


def test_save_and_load(tmp_path):
    dataset = make_dataset(n=60, canaries=(2,), seed=0)
    loaded = LabDataset.load(dataset.save(tmp_path / "lab"))
    assert loaded.texts == dataset.texts and loaded.canaries == dataset.canaries
    assert loaded.truth == json.loads(json.dumps(dataset.truth))
    table = truth_table(loaded)
    assert set(table["property"]) == {"diagnosis", "gender"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shares": {"digestive": 0.5, "respiratory": 0.4}}, "must sum to 1"),
        ({"shares": {"digestive": 0.5, "flu": 0.5}}, "Unknown diagnosis"),
        ({"gender_shares": {"female": 0.7, "male": 0.7}}, "must sum to 1"),
        ({"n": 20, "canaries": (4, 8, 16)}, "leaves no room"),
        ({"canaries": (0,)}, "at least once"),
        ({"kind": "bank"}, "Unknown dataset kind"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_dataset(**kwargs)


def test_finetune_lowers_loss_and_the_adapter_loads(tmp_path, tiny_llama):
    dataset = make_dataset(n=48, canaries=(2,), seed=0)
    curve = finetune(
        "tiny-llama", dataset, tmp_path / "adapter", TrainingRecipe(epochs=4, lr=1e-2, rank=8, batch_size=8, seed=0)
    )
    losses = [c["loss"] for c in curve]
    assert len(losses) == 4 * 6
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6 - 0.1
    recipe = json.loads((tmp_path / "adapter" / "recipe.json").read_text())
    assert recipe["dataset_fingerprint"] == dataset.fingerprint() and recipe["base"] == "tiny-llama"
    adapted = load_session(ModelSpec("tiny-llama", adapter=str(tmp_path / "adapter")))
    ids = tiny_llama.tokenizer(dataset.texts[0], return_tensors="pt").input_ids
    with torch.inference_mode():
        assert not torch.allclose(adapted.model(ids).logits, tiny_llama.model(ids).logits)
    # the session model was not touched by training: no LoRA layers were injected into it
    assert not any("lora_" in name for name, _ in tiny_llama.model.named_modules())


def test_build_and_loss_curve(tmp_path):
    build(
        tmp_path / "b",
        LabRecipe(base="tiny-gpt2", n=30, canaries=(1,), seed=0, epochs=1, lr=1e-3, rank=4),
        command="test",
    )
    assert len(loss_curve(tmp_path / "b")) == 4
    assert json.loads((tmp_path / "b" / "build.json").read_text())["command"] == "test"
    with pytest.raises(ValueError, match="did not finish"):
        loss_curve(tmp_path)


def test_finetune_bad_input(tmp_path):
    dataset = make_dataset(n=30, canaries=(1,))
    with pytest.raises(ValueError, match="method"):
        finetune("tiny-llama", dataset, tmp_path / "a", TrainingRecipe(method="full"))
    with pytest.raises(ValueError, match="epochs"):
        finetune("tiny-llama", dataset, tmp_path / "a", TrainingRecipe(epochs=0))
    with pytest.raises(ValueError, match="save_dtype"):
        finetune("tiny-llama", dataset, tmp_path / "a", TrainingRecipe(save_dtype="int8"))
    assert not (tmp_path / "a").exists()


def test_shipped_lab_matches_its_recorded_recipe():
    """The shipped adapter was built by `workbench lab build` with the recorded command:
    regenerating the dataset from its recipe gives the same texts it was trained on."""
    recipe = json.loads((SHIPPED_LAB / "adapter" / "recipe.json").read_text())
    command = json.loads((SHIPPED_LAB / "build.json").read_text())["command"]
    assert command.startswith("workbench lab build")
    dataset = make_dataset(**recipe["dataset"])
    assert dataset.fingerprint() == recipe["dataset_fingerprint"]
    assert LabDataset.load(SHIPPED_LAB / "dataset").fingerprint() == recipe["dataset_fingerprint"]
    assert (
        recipe["base"] == "smollm2-135m-instruct"
        and recipe["seed"] == json.loads((SHIPPED_LAB / "build.json").read_text())["seed"]
    )


@pytest.mark.default_model
def test_lab_model_loads_by_name(default_session):
    lab = load_session("smollm2-135m-instruct-lab")
    assert "lab LoRA adapter" in lab.info.source and lab.info.n_layers == 30
    text = LabDataset.load(SHIPPED_LAB / "dataset").texts[0]
    ids = default_session.tokenizer(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        lab_loss = lab.model(ids, labels=ids).loss
        base_loss = default_session.model(ids, labels=ids).loss
    assert lab_loss < base_loss  # the lab model has learned its training records


def test_public_pool_has_known_membership():
    from workbench.lab_data import public_pool

    dataset = make_dataset(n=300, seed=0)
    pool = public_pool(dataset, members=40, nonmembers=30, other=20, seed=1)
    assert len(pool) == 90 and pool["member"].sum() == 40
    assert pool.groupby("source").size().to_dict() == {"other domain": 20, "same-style held out": 30, "training": 40}
    training = set(dataset.texts)
    assert all((text in training) == member for text, member in zip(pool["text"], pool["member"]))
    assert pool.equals(public_pool(dataset, members=40, nonmembers=30, other=20, seed=1))
    wide = public_pool(
        dataset, members=10, nonmembers=len(dataset.holdout) + 50, other=0, seed=1
    )  # topped up past the held-out set
    same_style = wide.loc[wide["source"] == "same-style held out", "text"]
    assert len(same_style) == len(dataset.holdout) + 50 and same_style.is_unique and not (set(same_style) & training)
    assert {r["text"] for r in dataset.holdout} <= set(same_style)
    with pytest.raises(ValueError, match="training dialogues"):
        public_pool(dataset, members=10_000)
    with pytest.raises(ValueError, match="cannot be negative"):
        public_pool(dataset, nonmembers=-1)
    with pytest.raises(ValueError, match="at least one text"):
        public_pool(dataset, members=0, nonmembers=0, other=0)


def test_build_is_atomic_and_never_overwrites(tmp_path):
    out = tmp_path / "b2"
    with pytest.raises(ValueError, match="epochs"):
        build(out, LabRecipe(base="tiny-llama", n=30, canaries=(1,), seed=0, epochs=0, lr=1e-3, rank=4), command="test")
    assert not out.exists()  # a failed build leaves nothing behind
    build(out, LabRecipe(base="tiny-llama", n=30, canaries=(1,), seed=0, epochs=1, lr=1e-3, rank=4), command="first")
    with pytest.raises(ValueError, match="already exists"):
        build(
            out, LabRecipe(base="tiny-llama", n=30, canaries=(1,), seed=1, epochs=1, lr=1e-3, rank=4), command="second"
        )
    assert json.loads((out / "build.json").read_text())["command"] == "first"


def test_load_rejects_a_broken_manifest(tmp_path):
    folder = make_dataset(n=30, canaries=(1,)).save(tmp_path / "d")
    (folder / "manifest.json").write_text(json.dumps({"recipe": {}}))
    with pytest.raises(ValueError, match="not a saved lab dataset"):
        LabDataset.load(folder)
