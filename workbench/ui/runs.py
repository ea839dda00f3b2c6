"""A page's run through the server's run board: submitted once, waited for with its place in
the model's queue or its progress, cancellable, and its result kept in the user's session."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from workbench.builds import Recipe
from workbench.contract import Progress
from workbench.runs import DEFAULT_BUDGET_MB, RunBoard, WorkshopLimits, run_key, workshop_limits

BUDGET_VARIABLE = "WORKBENCH_SHARED_RESULTS_MB"
LOG_VARIABLE = "WORKBENCH_RUN_LOG"  # a file: one JSON line per run served and per result handed over
# A waiting page wakes at once when its run ends; until then it redraws its place or progress at
# most this often: every redraw costs each waiting browser a repaint (measured: 20 pages redrawing
# every 0.5 s took 1.4 of this machine's 2 cores).
REDRAW_SECONDS = 1.0


@st.cache_resource(show_spinner=False)
def run_board() -> RunBoard:
    """One per server process, shared by every browser session."""
    log = os.environ.get(LOG_VARIABLE)
    return RunBoard(
        float(os.environ.get(BUDGET_VARIABLE, DEFAULT_BUDGET_MB)), workshop_limits(), Path(log) if log else None
    )


def limits() -> WorkshopLimits | None:
    return run_board().limits


def check_limits(generations: int, new_tokens: int, estimated: bool = False) -> None:
    """In workshop mode, ValueError for a run over the caps (``WorkshopLimits.check``)."""
    if limits() is not None:
        limits().check(generations, new_tokens, estimated)


SHARED = "Shared: another user asked for exactly this run, so it was computed once for both."


def shared_note(result: dict) -> None:
    """Say so when a run's result was computed for another user's identical request too."""
    if result["shared"]:
        st.caption(SHARED)


def show_limits() -> None:
    if limits() is not None:
        st.caption(limits().describe())


BUILDS = "builds"  # the queue every page's builds share: one slot, apart from each model's sampling queue
BUILDS_OFF = (
    "Builds are off in workshop mode: one takes the server for many minutes. Build before the workshop, "
    "with the CLI or the app started without WORKBENCH_WORKSHOP."
)


def submit_build(prefix: str, recipe: Recipe, work: Callable[[Progress], dict], label: str) -> None:
    """Queue a build (``work(progress)`` returns a dict) in the builds queue; identical recipes
    asked while one is building share it. ValueError in workshop mode, where builds are off."""
    if limits() is not None:
        raise ValueError(BUILDS_OFF)
    key = run_key(
        "build", type(recipe).__name__, recipe.as_dict(), str(recipe.default_dir())
    )  # same recipe, same folder
    submit_run(prefix, key, BUILDS, work, label, keep=False)  # its result is the folder, which can be deleted


def submit_run(
    prefix: str, key: str, model: str, work: Callable[[Progress], Any], label: str = "", keep: bool = True
) -> None:
    """Queue ``work(progress)`` (or join an identical run) for this user; the page then calls
    ``wait_for_run(prefix, …)``. Raises ValueError when the model's queue is full."""
    previous = st.session_state.get(f"{prefix}_ticket")
    if previous is not None and not previous.done():
        previous.cancel()  # a new request replaces this user's unfinished one
    st.session_state[f"{prefix}_ticket"] = run_board().submit(key, model, work, label, keep)


def wait_for_run(prefix: str, result_key: str) -> None:
    """Show this user's pending run — its place in the queue, then its progress — with a Cancel
    button, until it finishes; then store its result (a dict) under ``result_key`` with
    ``shared`` telling whether another user's identical request computed it."""
    ticket = st.session_state.get(f"{prefix}_ticket")
    if ticket is None:
        return
    if not ticket.done():
        box = st.container(border=True)
        if box.button("Cancel", key=f"{prefix}_cancel"):
            ticket.cancel()
            st.session_state.pop(f"{prefix}_ticket")
            box.info("Cancelled. A run that someone else is waiting for goes on for them.")
            return
        status, bar = box.empty(), box.progress(0.0)
        place_shown = progress_shown = None
        while not ticket.wait(REDRAW_SECONDS):
            place = ticket.place()
            if place != place_shown:
                place_shown = place
                if place:
                    status.info(f"Waiting in the queue: {place} run{'s' if place > 1 else ''} ahead.")
                else:
                    status.caption("Running" + (" (shared: someone asked for the same run)" if ticket.shared else ""))
            if not place:
                fraction, message = ticket.progress()
                if (fraction, message) != progress_shown:
                    progress_shown = fraction, message
                    bar.progress(min(fraction, 1.0), text=message or "Starting…")
        box.empty()
    st.session_state.pop(f"{prefix}_ticket")
    try:
        st.session_state[result_key] = {**ticket.result(), "shared": ticket.shared}
    except ValueError as err:
        st.error(str(err))
