"""Model picker and model card.

The model itself lives in ``st.cache_resource`` (one copy per process, shared by every
browser session); which model a user is looking at lives in ``st.session_state``.
"""

from __future__ import annotations

import streamlit as st

from workbench.config import DTYPES, ModelSpec, startup_model
from workbench.session import Session, load_session, registry_names

OTHER = "Other (Hugging Face id or path)…"
_ACTIVE = "active_model_spec"
_FAILED = "failed_model_spec"


@st.cache_resource(max_entries=3, show_spinner=False)
def shared_session(spec: ModelSpec) -> Session:
    """Loaded once per process and spec; at most three models are held at a time (the sidebar's
    model plus a base and a tuned model for the pages that compare two)."""
    return load_session(spec)


def _load_with_spinner(spec: ModelSpec) -> Session:
    with st.spinner(f"Loading {spec.name}… (the first start converts the default model once, ~30 s)"):
        return shared_session(spec)


def _requested_spec() -> ModelSpec:
    """The spec the sidebar widgets ask for; raises ValueError for an invalid one."""
    start = startup_model()
    names = registry_names()
    options = [*names, OTHER]
    choice = st.sidebar.selectbox(
        "Model", options, index=options.index(start) if start in names else len(names), key="model_choice"
    )
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


def model_sidebar() -> Session | None:
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


def active_session() -> Session | None:
    """The session chosen in the sidebar for this user (cached: cheap to call from pages)."""
    spec = st.session_state.get(_ACTIVE)
    return None if spec is None else shared_session(spec)


SIDEBAR_MODEL = "(sidebar model)"


def model_picker(where, label: str, default: str, key: str) -> ModelSpec:
    """A page's own model choice: a registry name, or the model loaded in the sidebar (any id,
    folder or adapter) when there is one. Returns the chosen spec; ``where`` is st or a column."""
    active = active_session()
    options = ([SIDEBAR_MODEL] if active is not None else []) + registry_names()

    def shown(option: str) -> str:
        if option != SIDEBAR_MODEL:
            return option
        return f"{option} — {active.info.name}" + (" + adapter" if active.spec.adapter else "")

    choice = where.selectbox(label, options, index=options.index(default), key=key, format_func=shown)
    return active.spec if choice == SIDEBAR_MODEL else ModelSpec(choice)


def require_session() -> Session:
    """The active session; without one, a warning and the end of the page's run."""
    session = active_session()
    if session is None:
        st.warning("No model is loaded: pick one in the sidebar.")
        st.stop()
    return session


def _compact(count: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return str(count)


def model_card(session: Session) -> None:
    info = session.info
    st.markdown(
        f"""**Model card**

| model | `{info.name}` |
|---|---|
| parameters | {_compact(info.n_params)} |
| layers | {info.n_layers} |
| heads (kv heads) | {info.n_heads} ({info.n_kv_heads}) |
| context | {info.context_length:,} tokens |
| vocabulary | {info.vocab_size:,} |
| dtype / device | {info.dtype} / {info.device} |
| architecture | {info.architecture} |
""",
        help=f"Source: {info.source}" + (f"; adapter: {info.adapter}" if info.adapter else ""),
    )
