"""Model picker and model card.

The model itself lives in ``st.cache_resource`` (one copy per process, shared by every
browser session); which model a user is looking at lives in ``st.session_state``.
"""

from __future__ import annotations

import os

import streamlit as st

from workbench.config import DEFAULT_MODEL, DTYPES, ModelSpec, startup_model
from workbench.contract import LanguageModel
from workbench.endpoint import API_KEY_VARIABLES
from workbench.registry import registry_names
from workbench.session import load_session

OTHER = "Other (Hugging Face id or path)…"
SERVED = "Served model (OpenAI-compatible endpoint)…"
_ACTIVE = "active_model_spec"
_FAILED = "failed_model_spec"


@st.cache_resource(max_entries=3, show_spinner=False)
def shared_session(spec: ModelSpec) -> LanguageModel:
    """Loaded once per process and spec; at most three models are held at a time (the sidebar's
    model plus a base and a tuned model for the pages that compare two)."""
    return load_session(spec)


def _load_with_spinner(spec: ModelSpec) -> LanguageModel:
    with st.spinner(f"Loading {spec.name}… (the first start converts the default model once, ~30 s)"):
        return shared_session(spec)


def _requested_spec() -> ModelSpec:
    """The spec the sidebar widgets ask for; raises ValueError for an invalid one."""
    start = startup_model()
    names = registry_names()
    options = [*names, OTHER, SERVED]
    if os.environ.get("WORKBENCH_ENDPOINT"):
        index = len(options) - 1
    else:
        index = options.index(start) if start in names else len(names)
    choice = st.sidebar.selectbox("Model", options, index=index, key="model_choice")
    if choice == SERVED:
        return _served_spec()
    name = choice
    if choice == OTHER:
        name = st.sidebar.text_input(
            "Hugging Face id, model folder or .gguf file",
            value="" if start in names else start,
            key="model_custom",
            placeholder="e.g. EleutherAI/pythia-70m or /path/to/model.gguf",
        )
    with st.sidebar.expander("Loading options"):
        dtype = st.selectbox("dtype", ["auto", *DTYPES], key="model_dtype")
        adapter = st.text_input(
            "LoRA adapter folder (optional)",
            key="model_adapter",
            help="A peft adapter applied on top of the model, e.g. a lab model rebuilt with `workbench lab build --out DIR` (DIR/adapter).",
        )
        trust = st.checkbox(
            "Trust remote code",
            key="model_trust_remote_code",
            help="Lets a Hub model run its own Python code on this machine. Only for models you trust.",
        )
    return ModelSpec(
        name=name, dtype=None if dtype == "auto" else dtype, adapter=adapter.strip() or None, trust_remote_code=trust
    )


def _served_spec() -> ModelSpec:
    """A served model: the endpoint, its name there and a local tokenizer (defaults from the
    environment: WORKBENCH_ENDPOINT, WORKBENCH_SERVED_MODEL, WORKBENCH_TOKENIZER)."""
    url = st.sidebar.text_input(
        "Endpoint URL", os.environ.get("WORKBENCH_ENDPOINT", "http://127.0.0.1:8000/v1"), key="model_endpoint",
        help="An OpenAI-compatible server that returns log-probs, e.g. vLLM (`make serve-vllm`).",
    )  # fmt: skip
    name = st.sidebar.text_input(
        "Served model name", os.environ.get("WORKBENCH_SERVED_MODEL", DEFAULT_MODEL), key="model_served"
    )
    with st.sidebar.expander("Endpoint options"):
        tokenizer = st.text_input(
            "Local tokenizer", os.environ.get("WORKBENCH_TOKENIZER", DEFAULT_MODEL), key="model_tokenizer",
            help="A registry name, folder or Hugging Face id with the served model's tokenizer: token ids, pieces and chat templates come from it.",
        )  # fmt: skip
        lab_build = st.text_input(
            "Lab build folder (optional)", key="model_lab_build",
            help="When the served model is a lab model (e.g. data/lab served as an adapter), its build folder gives the truth.",
        )  # fmt: skip
        concurrency = st.number_input("Requests in flight", 1, 256, ModelSpec.concurrency, key="model_concurrency")
        send_seed = st.checkbox(
            "Send seeds", key="model_send_seed",
            help="Only for a server that takes them: vLLM on a GPU does, vLLM's CPU engine crashes on a seeded request.",
        )  # fmt: skip
        key_set = next((v for v in API_KEY_VARIABLES if os.environ.get(v)), None)
        st.caption(
            f"API key: read from ${key_set} (never shown)."
            if key_set
            else f"API key: none (set ${API_KEY_VARIABLES[0]} before starting the app)."
        )
    return ModelSpec(
        name, endpoint=url, tokenizer=tokenizer, lab_build=lab_build.strip() or None,
        concurrency=int(concurrency), send_seed=send_seed,
    )  # fmt: skip


def model_sidebar() -> LanguageModel | None:
    """Draw the model picker and card; return the user's active session (None if none loads).

    A model that fails to load shows an error and the previous model stays active."""
    active: ModelSpec | None = st.session_state.get(_ACTIVE)
    try:
        requested = _requested_spec()
    except ValueError as err:
        st.sidebar.error(str(err))
        requested = active
    failed = st.session_state.get(_FAILED)
    if requested is not None and requested != active:
        if failed is not None and failed[0] == requested:
            st.sidebar.error(failed[1])  # already tried: do not retry on every rerun
        else:
            try:
                _load_with_spinner(requested)
                st.session_state[_ACTIVE] = active = requested
                st.session_state.pop(_FAILED, None)
            except ValueError as err:
                st.session_state[_FAILED] = (requested, str(err))
                st.sidebar.error(str(err))
                if active is not None:
                    st.sidebar.info(f"Still using {active.name}.")
    if active is None:
        return None
    session = _load_with_spinner(active)
    with st.sidebar:
        model_card(session)
    return session


def active_session() -> LanguageModel | None:
    """The session chosen in the sidebar for this user (cached: cheap to call from pages)."""
    spec = st.session_state.get(_ACTIVE)
    return None if spec is None else shared_session(spec)


SIDEBAR_MODEL = "(sidebar model)"


def model_picker(where, label: str, default: str, key: str, needs_weights: bool = False) -> ModelSpec:
    """A page's own model choice: a registry name, or the model loaded in the sidebar (any id,
    folder, adapter or endpoint) when there is one; not a served one when the page ``needs_weights``.
    Returns the chosen spec; ``where`` is st or a column."""
    active = active_session()
    offered = active is not None and not (needs_weights and active.weights_refusal("This page"))
    options = ([SIDEBAR_MODEL] if offered else []) + registry_names()

    def shown(option: str) -> str:
        if option != SIDEBAR_MODEL:
            return option
        return (
            f"{option} — {active.info.name}"
            + (" + adapter" if active.spec.adapter else "")
            + (" (served)" if active.spec.endpoint else "")
        )

    choice = where.selectbox(label, options, index=options.index(default), key=key, format_func=shown)
    if active is not None and not offered:
        where.caption(f"The sidebar's served model ({active.info.name}) is not offered: this needs the weights.")
    return active.spec if choice == SIDEBAR_MODEL else ModelSpec(choice)


def require_session(needs_weights: str | None = None) -> LanguageModel:
    """The active session; without one, a warning and the end of the page's run. A page whose
    exploration ``needs_weights`` (named there) says so and stops for a served model."""
    session = active_session()
    if session is None:
        st.warning("No model is loaded: pick one in the sidebar.")
        st.stop()
    refusal = session.weights_refusal(needs_weights) if needs_weights else None
    if refusal is not None:
        st.warning(f"{refusal} Pick an in-process model in the sidebar for this page.")
        st.stop()
    return session


def served_note(session: LanguageModel) -> None:
    """For a served model: where results come from, and whose promise their reproducibility is."""
    note = session.reproducibility_note()
    if note is not None:
        st.info(note)


def _compact(count: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return str(count)


CARD_LABELS = {
    "n_params": "parameters",
    "n_layers": "layers",
    "context_length": "context",
    "vocab_size": "vocabulary",
    "served_model": "served as",
}


def _card_value(key: str, value: object) -> str:
    if isinstance(value, dict):  # a served model's server: name, version, url
        return " ".join(str(v) for v in value.values())
    if key == "n_params":
        return _compact(value)
    if key == "context_length":
        return f"{value:,} tokens"
    return f"{value:,}" if isinstance(value, int) else str(value)


def model_card(session: LanguageModel) -> None:
    """The contract's card as a table: heads beside kv heads, dtype beside device, the source in the help."""
    card = session.card()
    if "n_heads" in card:
        card["heads (kv heads)"] = f"{card.pop('n_heads')} ({card.pop('n_kv_heads')})"
    if "dtype" in card:
        card["dtype / device"] = f"{card.pop('dtype')} / {card.pop('device')}"
    hidden = ("name", "source", "adapter")
    rows = "\n".join(
        f"| {CARD_LABELS.get(k, k.replace('_', ' '))} | {_card_value(k, v)} |"
        for k, v in card.items()
        if k not in hidden
    )
    info = session.info
    st.markdown(
        f"**Model card**\n\n| model | `{info.name}` |\n|---|---|\n{rows}\n",
        help=f"Source: {info.source}"
        + (f"; adapter: {info.adapter}" if info.adapter else "")
        + ". White-box pages (attention sinks, weight diff, lab builds) need the weights and refuse a served model.",
    )
