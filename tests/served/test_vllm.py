"""The black-box explorations against a real vLLM server (CPU build, `make vllm`) serving the
default model and the lab adapter: log-probs equal the in-process model's, the tables keep
their columns, a served lab model keeps its truth.

Two torch processes on two cores slow each other badly, so the in-process references are
computed before the server starts, and the server runs only for this module."""

import json
import os
import socket

import numpy as np
import pytest
import torch
from notebook_run import SERVED_NOTEBOOK, executed

from workbench import backdoor, backdoor_attack, vllm_server
from workbench.cli import main
from workbench.config import ModelSpec, PropInferConfig, SamplingConfig
from workbench.divergence import run as run_divergence
from workbench.lab import lab_dataset_for
from workbench.propinfer import PROMPT_SETS, lab_labeler, labels_of, mean_absolute_error
from workbench.propinfer import run as run_propinfer
from workbench.registry import LAB_DIR
from workbench.sampling import sample, text_logprobs
from workbench.session import load_session

pytestmark = pytest.mark.default_model

TEXTS = [
    "Four score and seven years ago our fathers brought forth on this continent a new nation.",
    "Patient: I have had a dry cough for two weeks.\nDoctor: Any fever or shortness of breath?",
]
PROMPTS = ["The capital of France is", "Once upon a time"]
GREEDY = SamplingConfig(max_new_tokens=24, temperature=0)
DIVERGE = SamplingConfig(max_new_tokens=16, n=2, seed=3)


@pytest.fixture(scope="module")
def in_process(default_session):
    """Everything the in-process model contributes, computed before the server starts."""
    return {
        "logprobs": text_logprobs(default_session, TEXTS),
        "greedy": sample(default_session, PROMPTS, GREEDY),
        "diverge": run_divergence(default_session, ["poem"], [20], DIVERGE),
    }


@pytest.fixture(scope="module")
def served(in_process, tmp_path_factory):
    """The base URL of a vLLM server on a free port, stopped when the module ends."""
    if not vllm_server.available():
        if os.environ.get("CI"):
            pytest.fail("vLLM is not installed; `make test` installs it (make vllm).")
        pytest.skip("vLLM is not installed: run `make vllm`.")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with vllm_server.running(port, log=tmp_path_factory.mktemp("vllm") / "server.log") as url:
        yield url + "/v1"


def _spec(url: str, name: str = vllm_server.SERVED_NAME, **kwargs) -> ModelSpec:
    return ModelSpec(name, endpoint=url, tokenizer="smollm2-135m-instruct", **kwargs)


def test_prompt_and_sampled_logprobs_equal_the_in_process_model(served, in_process, default_session):
    session = load_session(_spec(served))
    assert session.server["name"] == "vLLM" and session.server["version"] != "unknown"
    assert session.info.context_length == 2048
    for local, remote in zip(in_process["logprobs"], text_logprobs(session, TEXTS)):
        assert len(local) == len(remote) > 10
        assert np.max(np.abs(local - remote)) <= 1e-3

    greedy = sample(session, PROMPTS, GREEDY)
    for local, remote in zip(in_process["greedy"], greedy):
        assert local.token_ids[:8] == remote.token_ids[:8]
        shared = next(
            (i for i, (a, b) in enumerate(zip(local.token_ids, remote.token_ids)) if a != b), len(remote.token_ids)
        )
        assert np.max(np.abs(np.subtract(local.logprobs[:shared], remote.logprobs[:shared]))) <= 1e-3

    # Sampled at temperature 0.7, the recorded log-probs are still the raw model's (temperature 1).
    for generation in sample(session, PROMPTS, SamplingConfig(max_new_tokens=12, temperature=0.7, n=2)):
        ids = torch.tensor([generation.prompt_ids + generation.token_ids])
        with torch.inference_mode():
            teacher = torch.log_softmax(default_session.model(input_ids=ids).logits[0, :-1].float(), -1)
        teacher = teacher.gather(-1, ids[0, 1:, None]).squeeze(-1).numpy()[len(generation.prompt_ids) - 1 :]
        assert len(teacher) == len(generation.logprobs) > 0
        assert np.max(np.abs(teacher - np.array(generation.logprobs))) <= 1e-3


def test_repeated_tokens_over_the_endpoint_has_the_in_process_columns(served, in_process):
    table = run_divergence(load_session(_spec(served)), ["poem"], [20], DIVERGE)
    assert list(table.columns) == list(in_process["diverge"].columns)
    assert len(table) == len(in_process["diverge"]) == 2
    assert set(table["stop_reason"]) <= {"eos", "length"}
    assert (table["generated_tokens"] > 0).all()


def test_the_served_lab_adapter_keeps_its_truth(served):
    spec = _spec(served, vllm_server.LAB_NAME, lab_build=str(LAB_DIR))
    dataset = lab_dataset_for(spec)
    assert dataset is not None
    truth = dataset.truth["realized"]["diagnosis"]
    result = run_propinfer(
        load_session(spec), PROMPT_SETS["chat"], PropInferConfig(n_samples=24), lab_labeler("diagnosis"), style="chat"
    )
    assert len(result.generations) == 24
    assert sum(label is not None for label in labels_of(result.generations)) > 12  # lab-style dialogues
    assert mean_absolute_error(result.estimates, truth) < 0.2


def test_membership_scores_over_the_endpoint_equal_the_in_process_ones(served, default_session):
    from workbench.membership import attack_scores

    session = load_session(_spec(served))
    remote, local = attack_scores(session, TEXTS), attack_scores(default_session, TEXTS)
    assert "min_k_pp" not in remote and "min_k_pp" in local  # the server returns no whole distribution
    for column in remote:
        assert np.max(np.abs(remote[column] - local[column])) <= 1e-3


def test_the_cli_records_the_server_and_what_was_sent(served, tmp_path, capsys):
    out = tmp_path / "served.csv"
    code = main(
        [
            "diverge",
            "--endpoint",
            served,
            "--served-model",
            vllm_server.SERVED_NAME,
            "--word",
            "poem",
            "--repeats",
            "20",
            "--n",
            "2",
            "--max-new-tokens",
            "12",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "served.endpoint.json").read_text())
    assert record["server"]["name"] == "vLLM"
    assert record["request"]["max_tokens"] == 12 and record["request"]["seed"] == "not sent"
    assert (
        main(
            [
                "sinks",
                "--endpoint",
                served,
                "--served-model",
                vllm_server.SERVED_NAME,
                "--prompt",
                "hi",
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
        == 2
    )
    assert "needs the model's weights" in capsys.readouterr().err


def test_the_backdoor_attack_runs_over_the_endpoint(served):
    built = backdoor.BackdoorBuild.load(backdoor.SHIPPED_BACKDOOR)
    word = backdoor.opening_word(built.queries()[0])
    cfg = backdoor_attack.AttackConfig(k=2, max_new_tokens=24, words=(word,), budgets=())  # identification only
    report = backdoor_attack.evaluate(built, cfg, ["base"], probe=False, served={"base": _spec(served)})
    assert list(report.summary["model"]) == ["base"]
    assert len(report.samples) == 2 and set(report.samples["word"]) == {word}


def test_the_app_runs_repeated_tokens_on_a_served_model(served, open_app, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ENDPOINT", served)
    monkeypatch.setenv("WORKBENCH_SERVED_MODEL", vllm_server.SERVED_NAME)
    at = open_app("app_pages/repeated_tokens.py")
    assert any("Served by vLLM" in i.value and "server's promise" in i.value for i in at.info)
    at.number_input(key="rt_n").set_value(2)
    at.number_input(key="rt_max_new_tokens").set_value(8)
    at.button(key="rt_run").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe[1].value) == 2  # the generations (after the outcome summary)
    assert "Request settings (JSON)" in [b.label for b in at.get("download_button")]

    at.switch_page("app_pages/attention_sinks.py").run()
    assert not at.exception
    assert any("needs the model's weights" in w.value for w in at.warning)


def test_the_served_models_notebook_runs(served, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ENDPOINT", served)
    outputs = executed(SERVED_NOTEBOOK)
    assert any("vLLM" in str(o.get("data", {})) for o in outputs)
    assert any("true_share" in str(o.get("data", {})) for o in outputs)
