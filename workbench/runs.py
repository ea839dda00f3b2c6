"""Runs shared by everyone on one server: identical runs computed once, a first-come,
first-served queue per model, cancelling, and workshop limits.

Runs are seeded and deterministic, so two users who ask for the same thing — the same model
(its adapter by content, not path), the same settings, the same uploaded files — can share
one computation, in flight or finished. Finished results are kept within a memory budget,
least recently used first out. Each model has one worker thread that runs its queue in
arrival order by the server's clock; different models run side by side. Cancelling detaches
one user: the run stops only when nobody waits for it any more. The app submits its runs
here; the library and the CLI call the explorations directly (the sampler's per-batch lock
stays for them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.config import ModelSpec
from workbench.contract import Progress
from workbench.registry import adapter_chain

DEFAULT_BUDGET_MB = 500
WORKSHOP_VARIABLE = "WORKBENCH_WORKSHOP"


class Cancelled(Exception):
    """Raised inside a run's progress callback once nobody waits for it."""


@dataclass(frozen=True)
class WorkshopLimits:
    """Caps that keep one person from holding the room: per run, and on each model's queue."""

    max_generations: int = 64
    max_new_tokens: int = 128
    max_queue: int = 30

    def describe(self) -> str:
        return (
            f"Workshop mode: at most {self.max_generations} generations and {self.max_new_tokens} new tokens per run, "
            f"{self.max_queue} runs waiting per model."
        )

    def check(self, generations: int, new_tokens: int, estimated: bool = False) -> None:
        """ValueError when a run of ``generations`` samples of ``new_tokens`` is over the caps."""
        if generations > self.max_generations or new_tokens > self.max_new_tokens:
            about = "About " if estimated else ""
            raise ValueError(
                f"{about}{generations} generations of {new_tokens} new tokens is over the limit. {self.describe()}"
            )


def workshop_limits() -> WorkshopLimits | None:
    """The limits when ``$WORKBENCH_WORKSHOP`` is set (1, true, yes), else None."""
    return WorkshopLimits() if os.environ.get(WORKSHOP_VARIABLE, "").lower() in ("1", "true", "yes") else None


# ---------------------------------------------------------------- what makes two runs the same


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def spec_identity(spec: ModelSpec) -> dict:
    """A model spec as it matters for results: an adapter (and the chain it was trained on)
    by the contents of its files, so the same adapter at another path is the same model."""
    identity = dataclasses.asdict(spec)
    if spec.adapter:
        identity["adapter"] = [_folder_digest(folder) for folder in adapter_chain(spec.adapter)]
    if spec.lab_build:
        identity["lab_build"] = _folder_digest(Path(spec.lab_build) / "dataset")
    return identity


def _canonical(value: Any) -> Any:
    if isinstance(value, ModelSpec):
        return {"model": spec_identity(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: _canonical(dataclasses.asdict(value))}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes):
        return {"sha256": file_digest(value)}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"Cannot key a run on a {type(value).__name__}.")


def run_key(page: str, *parts: Any) -> str:
    """The identity of a run: the page and everything it depends on (specs, settings, files)."""
    return hashlib.sha256(json.dumps([page, *map(_canonical, parts)], sort_keys=True).encode()).hexdigest()


def size_of(value: Any) -> int:
    """Approximate bytes held by a result, for the memory budget."""
    if isinstance(value, pd.DataFrame | pd.Series):
        return int(
            value.memory_usage(deep=True).sum() if isinstance(value, pd.DataFrame) else value.memory_usage(deep=True)
        )
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(size_of(k) + size_of(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return sys.getsizeof(value) + sum(size_of(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sys.getsizeof(value) + sum(size_of(getattr(value, f.name)) for f in dataclasses.fields(value))
    return sys.getsizeof(value)


# ---------------------------------------------------------------- runs and tickets


@dataclass(eq=False)
class Job:
    key: str
    model: str
    label: str
    work: Callable[[Progress], Any] = field(repr=False)
    number: int  # arrival order on this server
    submitted: float  # the server's clock
    state: str = "queued"  # queued, running, done, failed, cancelled
    result: Any = field(default=None, repr=False)
    error: str | None = None
    fraction: float = 0.0
    message: str = ""
    waiters: int = 0
    keep: bool = True  # kept once done, for later identical requests (a build's result is its folder: not kept)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)


@dataclass(eq=False)
class Ticket:
    """One user's claim on a run. ``shared``: the run was asked for by someone else first."""

    board: RunBoard = field(repr=False)
    job: Job
    shared: bool
    cancelled: bool = False
    asked: float = field(default_factory=time.time)  # the server's clock

    @property
    def state(self) -> str:
        return "cancelled" if self.cancelled else self.job.state

    def done(self) -> bool:
        return self.cancelled or self.job.finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.job.finished.wait(timeout)

    def place(self) -> int:
        """Runs ahead of this one for its model: 0 once it runs."""
        return self.board.place(self.job)

    def progress(self) -> tuple[float, str]:
        return self.job.fraction, self.job.message

    def result(self) -> Any:
        """The run's result; ValueError with the run's message when it failed or was cancelled."""
        if not self.job.finished.is_set():
            raise ValueError("The run has not finished.")
        if self.job.state != "done":
            raise ValueError(self.job.error or "The run was cancelled.")
        self.board.record({"delivered": self.job.number, "asked": self.asked, "at": time.time(), "shared": self.shared})
        return self.job.result

    def cancel(self) -> None:
        """Stop waiting; the run itself stops only when nobody else waits for it."""
        if not self.cancelled and not self.job.finished.is_set():
            self.cancelled = True
            self.board.detach(self.job)


class RunBoard:
    """One per server process: see the module docstring."""

    def __init__(
        self, budget_mb: float = DEFAULT_BUDGET_MB, limits: WorkshopLimits | None = None, log: Path | None = None
    ):
        self.budget = int(budget_mb * 2**20)
        self.limits = limits
        # JSON lines: each run served, in the order of service, and each result handed to a user
        # (benchmarks/workshop_load.py reads them)
        self.log = log
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._active: dict[str, Job] = {}  # queued or running, by key
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._finished: OrderedDict[str, tuple[Job, int]] = OrderedDict()  # key → (job, bytes), oldest use first
        self.served: list[dict] = []  # the order of service: number, model, label, submitted, started, ended

    def submit(
        self, key: str, model: str, work: Callable[[Progress], Any], label: str = "", keep: bool = True
    ) -> Ticket:
        """A ticket for the run ``key`` on ``model``: a finished or running one when there is
        one, else ``work(progress)`` queued behind that model's earlier runs; with ``keep``
        false, its result is shared only while it runs, not kept once done. Raises
        ValueError when the model's queue is full in workshop mode."""
        with self._lock:
            if key in self._finished:
                self._finished.move_to_end(key)
                return Ticket(self, self._finished[key][0], shared=True)
            if key in self._active:
                job = self._active[key]
                job.waiters += 1
                return Ticket(self, job, shared=True)
            queue = self._queues.setdefault(model, deque())
            if self.limits is not None and len(queue) >= self.limits.max_queue:
                raise ValueError(
                    f"{len(queue)} runs are already waiting for this model (the workshop's limit): try again in a minute."
                )
            job = Job(key, model, label, work, next(self._numbers), time.time(), waiters=1, keep=keep)
            self._active[key] = job
            queue.append(job)
            if model not in self._workers or not self._workers[model].is_alive():
                self._workers[model] = threading.Thread(
                    target=self._serve, args=(model,), name=f"runs:{model}", daemon=True
                )
                self._workers[model].start()
            return Ticket(self, job, shared=False)

    def place(self, job: Job) -> int:
        with self._lock:
            if job.state != "queued":
                return 0
            queue = self._queues.get(job.model, deque())
            ahead = sum(1 for other in queue if other.number < job.number)
            return ahead + (1 if self._running(job.model) else 0)

    def _running(self, model: str) -> bool:
        return any(j.model == model and j.state == "running" for j in self._active.values())

    def detach(self, job: Job) -> None:
        with self._lock:
            job.waiters -= 1
            if job.waiters > 0:
                return
            if job.state == "queued":  # nobody waits: drop it from the queue
                self._queues[job.model].remove(job)
                self._finish(job, "cancelled", error="The run was cancelled.")
            # a running job sees waiters == 0 at its next progress report and stops

    def _finish(self, job: Job, state: str, result: Any = None, error: str | None = None) -> None:
        job.state, job.result, job.error = state, result, error
        self._active.pop(job.key, None)
        if state == "done" and job.keep:
            size = size_of(result)
            if size <= self.budget:
                self._finished[job.key] = (job, size)
                self._evict()
        job.finished.set()

    def _evict(self) -> None:
        while sum(size for _, size in self._finished.values()) > self.budget:
            self._finished.popitem(last=False)

    def held_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._finished.values())

    def record(self, entry: dict) -> None:
        """Append ``entry`` to the log file, when there is one."""
        if self.log is not None:
            with open(self.log, "a") as sink:
                sink.write(json.dumps(entry) + "\n")

    def _serve(self, model: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(model)
                if not queue:
                    self._workers.pop(model, None)
                    return
                job = queue.popleft()
                job.state = "running"
            started = time.time()

            def progress(fraction: float, message: str, job: Job = job) -> None:
                if job.waiters <= 0:
                    raise Cancelled
                job.fraction, job.message = fraction, message

            try:
                result = job.work(progress)
            except Cancelled:
                outcome = ("cancelled", None, "The run was cancelled.")
            except Exception as err:  # noqa: BLE001 - any failure belongs to the run's users, not the worker
                outcome = ("failed", None, str(err) or type(err).__name__)
            else:
                outcome = ("done", result, None)
            record = {
                "number": job.number, "model": model, "label": job.label, "submitted": job.submitted,
                "started": started, "ended": time.time(), "state": outcome[0], "waiters": job.waiters,
            }  # fmt: skip
            with self._lock:
                self.served.append(record)
                self.record(record)
                self._finish(job, *outcome)
