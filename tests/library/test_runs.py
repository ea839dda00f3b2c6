"""The run board: identical runs computed once, never mixed up; a first-come, first-served
queue per model; cancelling detaches; the memory budget; workshop limits."""

import json
import shutil
import threading

import pandas as pd
import pytest

from workbench.config import ModelSpec, SamplingConfig
from workbench.registry import LAB_DIR
from workbench.runs import RunBoard, WorkshopLimits, run_key, size_of, workshop_limits


class Gate:
    """Work that waits until released, counting its calls."""

    def __init__(self, value):
        self.value, self.calls, self.release, self.started = value, 0, threading.Event(), threading.Event()

    def __call__(self, progress):
        self.calls += 1
        self.started.set()
        while not self.release.wait(0.01):
            progress(0.5, "working")
        progress(1.0, "done")
        return self.value


def test_run_keys_follow_contents_not_paths(tmp_path):
    copy = tmp_path / "adapter"
    shutil.copytree(LAB_DIR / "adapter", copy)
    here, there = (
        ModelSpec("smollm2-135m-instruct", adapter=str(LAB_DIR / "adapter")),
        ModelSpec("smollm2-135m-instruct", adapter=str(copy)),
    )
    cfg = SamplingConfig(n=4, seed=1)
    assert run_key("rt", here, cfg) == run_key("rt", there, cfg)
    (copy / "adapter_model.safetensors").write_bytes(b"other weights")
    assert run_key("rt", here, cfg) != run_key("rt", there, cfg)
    assert run_key("rt", here, cfg) != run_key("rt", here, SamplingConfig(n=4, seed=2))
    assert run_key("rt", here, cfg) != run_key("pi", here, cfg)
    assert run_key("rt", b"file one") != run_key("rt", b"file two")


def test_identical_runs_share_one_computation_and_different_ones_never_mix():
    board = RunBoard()
    first, second = Gate("A"), Gate("B")
    a1 = board.submit("key-a", "model", first)
    a2 = board.submit("key-a", "model", first)
    b = board.submit("key-b", "model", second)
    assert not a1.shared and a2.shared and not b.shared
    first.release.set()
    second.release.set()
    assert a1.wait(10) and b.wait(10)
    assert (a1.result(), a2.result(), b.result()) == ("A", "A", "B")
    assert first.calls == 1 and second.calls == 1
    later = board.submit("key-a", "model", Gate("never"))  # finished: from memory, not recomputed
    assert later.shared and later.done() and later.result() == "A"


def test_each_model_serves_in_arrival_order_and_tells_the_place():
    board = RunBoard()
    gates = [Gate(i) for i in range(3)]
    tickets = [board.submit(f"k{i}", "model", gate) for i, gate in enumerate(gates)]
    other = board.submit("elsewhere", "other model", Gate("x"))
    assert gates[0].started.wait(10)
    assert [t.place() for t in tickets] == [0, 1, 2]
    assert tickets[0].state == "running" and tickets[2].state == "queued"
    other.job.work.release.set()
    assert other.wait(10)  # another model is not held up by this one's queue
    for gate in gates:
        gate.release.set()
    assert all(t.wait(10) for t in tickets)
    assert [s["number"] for s in board.served if s["model"] == "model"] == [t.job.number for t in tickets]


def test_cancelling_detaches_and_stops_a_run_nobody_waits_for():
    board = RunBoard()
    running, queued = Gate("r"), Gate("q")
    mine, yours = board.submit("r", "model", running), board.submit("r", "model", running)
    waiting = board.submit("q", "model", queued)
    assert running.started.wait(10)
    mine.cancel()
    assert mine.state == "cancelled" and yours.state == "running"  # still wanted by someone else
    waiting.cancel()
    assert waiting.job.state == "cancelled"  # queued and wanted by nobody: dropped
    yours.cancel()
    assert yours.wait(10) and yours.job.state == "cancelled"
    with pytest.raises(ValueError, match="cancelled"):
        yours.result()
    assert queued.calls == 0
    assert board.submit("r", "model", Gate("again")).shared is False  # a cancelled run is not remembered


def test_a_failed_run_reports_its_message_to_every_waiter():
    board = RunBoard()

    def broken(progress):
        raise ValueError("The prompt is empty.")

    tickets = [board.submit("bad", "model", broken) for _ in range(2)]
    assert all(t.wait(10) for t in tickets)
    for ticket in tickets:
        with pytest.raises(ValueError, match="The prompt is empty."):
            ticket.result()


def test_finished_results_stay_within_the_memory_budget():
    table = pd.DataFrame({"text": ["x" * 1000] * 200})
    board = RunBoard(budget_mb=2.5 * size_of(table) / 2**20)
    for name in "abc":
        assert board.submit(name, "model", lambda progress: table.copy()).wait(10)
    assert board.held_bytes() <= board.budget
    assert board.submit("c", "model", Gate(None)).done()  # the newest is kept
    assert not board.submit("a", "model", lambda progress: "recomputed").shared  # the oldest went


def test_workshop_limits_cap_the_queue(monkeypatch):
    monkeypatch.delenv("WORKBENCH_WORKSHOP", raising=False)
    assert workshop_limits() is None
    monkeypatch.setenv("WORKBENCH_WORKSHOP", "1")
    assert workshop_limits() == WorkshopLimits()
    board = RunBoard(limits=WorkshopLimits(max_queue=1))
    gate = Gate(0)
    board.submit("running", "model", gate)
    assert gate.started.wait(10)
    waiting = Gate(1)
    board.submit("waiting", "model", waiting)
    with pytest.raises(ValueError, match="already waiting"):
        board.submit("one too many", "model", Gate(2))
    gate.release.set()
    waiting.release.set()


def test_the_log_holds_each_run_served_and_each_result_handed_over(tmp_path):
    log = tmp_path / "runs.jsonl"
    board = RunBoard(log=log)
    gate = Gate("A")
    first, second = board.submit("key", "model", gate), board.submit("key", "model", gate)
    gate.release.set()
    assert first.wait(10) and second.result() == "A" and first.result() == "A"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [e for e in entries if "state" in e]
    deliveries = [e for e in entries if "delivered" in e]
    assert [(r["number"], r["state"]) for r in runs] == [(first.job.number, "done")]
    assert [(d["delivered"], d["shared"]) for d in deliveries] == [(first.job.number, True), (first.job.number, False)]
    assert all(d["asked"] <= runs[0]["ended"] <= d["at"] for d in deliveries)


def test_a_run_not_kept_is_shared_while_it_runs_and_computed_again_after():
    board, gate = RunBoard(), Gate({"folder": "built"})
    first = board.submit("build", "builds", gate, keep=False)
    gate.started.wait(5)
    second = board.submit("build", "builds", gate, keep=False)
    assert second.shared  # asked while it runs: one build
    gate.release.set()
    assert first.wait(5) and first.result() == second.result() == {"folder": "built"}
    again = board.submit("build", "builds", gate, keep=False)
    assert not again.shared and again.wait(5) and gate.calls == 2  # not kept: built again
    assert board.held_bytes() == 0


def test_workshop_limits_refuse_a_run_over_either_cap():
    caps = WorkshopLimits(max_generations=10, max_new_tokens=20)
    caps.check(10, 20)  # at the caps: allowed
    with pytest.raises(ValueError, match="^11 generations of 20 new tokens is over the limit. Workshop mode"):
        caps.check(11, 20)
    with pytest.raises(ValueError, match="^About 5 generations of 21 new tokens is over the limit"):
        caps.check(5, 21, estimated=True)
