"""The endpoint backend's contract at its edges, against a small stand-in server on loopback:
what is sent (seeds, key), and the failures a real vLLM cannot be made to show on demand (no
log-probs, a death part-way through a run). tests/served/test_vllm.py runs it against real vLLM."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.attention import sink_scores
from workbench.config import ModelSpec, SamplingConfig
from workbench.endpoint import IncompleteRun, base_url
from workbench.sampling import sample, sample_seed
from workbench.session import load_session


class StandIn(BaseHTTPRequestHandler):
    """Serves model ``m``: every completion is tokens 5, 6, 7 with log-prob -1 each."""

    state: dict = {}

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        models = [{"id": "m", "object": "model", "created": 0, "owned_by": "stand-in", "max_model_len": 512}]
        self._answer(200, {"object": "list", "data": models})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.state
        with state["lock"]:
            state["requests"].append(body)
            state["authorization"] = self.headers.get("Authorization")
            served = len(state["requests"])
        if served > state.get("fail_after", 10**9):
            self._answer(500, {"error": {"message": "engine died", "type": "InternalServerError"}})
            return
        logprobs = None
        if state.get("logprobs", True):
            logprobs = {
                "tokens": ["token_id:5", "token_id:6", "token_id:7"],
                "token_logprobs": [-1.0] * 3,
                "top_logprobs": None,
                "text_offset": [0, 1, 2],
            }
        choice = {"index": 0, "text": "abc", "finish_reason": "length", "logprobs": logprobs}
        self._answer(200, {"id": "c", "object": "text_completion", "created": 0, "model": "m", "choices": [choice]})


@pytest.fixture
def stand_in():
    """(url, state) of a stand-in server on a free loopback port."""
    StandIn.state = {"lock": threading.Lock(), "requests": []}
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", StandIn.state
    server.shutdown()
    server.server_close()


def _spec(url: str, **kwargs) -> ModelSpec:
    return ModelSpec("m", endpoint=url, tokenizer="tiny-llama", **kwargs)


def test_a_served_spec_is_checked():
    with pytest.raises(ValueError, match="not a URL"):
        ModelSpec("m", endpoint="127.0.0.1:8000", tokenizer="tiny-llama")
    with pytest.raises(ValueError, match="local tokenizer"):
        ModelSpec("m", endpoint="http://127.0.0.1:8000")
    with pytest.raises(ValueError, match="the server's"):
        ModelSpec("m", endpoint="http://127.0.0.1:8000", tokenizer="tiny-llama", adapter="x")
    with pytest.raises(ValueError, match="give its endpoint"):
        ModelSpec("tiny-llama", tokenizer="tiny-llama")
    assert base_url("http://h:1") == base_url("http://h:1/v1/") == "http://h:1/v1"


def test_seeds_are_sent_only_when_asked_and_the_key_never_recorded(stand_in, monkeypatch):
    url, state = stand_in
    monkeypatch.setenv("WORKBENCH_API_KEY", "sk-secret-123")
    cfg = SamplingConfig(max_new_tokens=3, n=2, seed=7)
    session = load_session(_spec(url))
    generations = sample(session, ["hello", "world"], cfg)
    assert [g.token_ids for g in generations] == [(5, 6, 7)] * 4
    assert [g.logprobs for g in generations] == [(-1.0,) * 3] * 4
    assert [g.stop_reason for g in generations] == ["length"] * 4
    assert all("seed" not in body for body in state["requests"])
    assert state["authorization"] == "Bearer sk-secret-123"
    sent = [body for body in state["requests"] if body["max_tokens"] == 3]
    assert all(body["return_tokens_as_token_ids"] and body["logprobs"] == 0 for body in sent)

    seeded = load_session(_spec(url, send_seed=True))
    state["requests"].clear()
    sample(seeded, ["hello", "world"], cfg)
    expected = {sample_seed(7, p, s) for p in range(2) for s in range(2)}
    assert {body["seed"] for body in state["requests"] if body["max_tokens"] == 3} == expected
    for record in (session.served_record(cfg), seeded.served_record(cfg)):
        assert "sk-secret" not in json.dumps(record)
    assert session.served_record(cfg)["request"]["seed"] == "not sent"
    assert "sk-secret" not in repr(session)


def test_a_server_without_logprobs_is_a_clear_error(stand_in):
    url, state = stand_in
    state["logprobs"] = False
    with pytest.raises(ValueError, match="returned no log-probs"):
        load_session(_spec(url))


def test_a_failure_part_way_keeps_what_came_back(stand_in):
    url, state = stand_in
    session = load_session(_spec(url, concurrency=1))
    state["fail_after"] = len(state["requests"]) + 4
    with pytest.raises(IncompleteRun, match="answered 500.*4 of 10 requests had completed") as failed:
        sample(session, ["hello"], SamplingConfig(max_new_tokens=3, n=10))
    kept = failed.value.completed
    assert [g.sample_index for g in kept] == [0, 1, 2, 3]
    assert all(g.token_ids == (5, 6, 7) for g in kept)


def test_unreachable_server_wrong_name_and_white_box_use_are_clear_errors(stand_in):
    url, _ = stand_in
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"
    with pytest.raises(ValueError, match="Cannot reach the endpoint"):
        load_session(_spec(dead))
    with pytest.raises(ValueError, match="serves m, not 'other'"):
        load_session(ModelSpec("other", endpoint=url, tokenizer="tiny-llama"))
    with pytest.raises(ValueError, match="needs the model's weights"):
        sink_scores(load_session(_spec(url)), "hello there")
