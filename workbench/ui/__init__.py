"""The only Streamlit-aware code: the process-wide model cache and shared widgets."""

from workbench.ui.model import (
    active_session,
    model_card,
    model_picker,
    model_sidebar,
    require_session,
    served_note,
    shared_session,
)
from workbench.ui.progress import last_result

__all__ = [
    "active_session",
    "model_card",
    "model_picker",
    "last_result",
    "model_sidebar",
    "require_session",
    "served_note",
    "shared_session",
]
