"""The only Streamlit-aware code: the process-wide model cache and shared widgets."""

from workbench.ui.model import active_session, model_card, model_sidebar, require_session, shared_session

__all__ = ["active_session", "model_card", "model_sidebar", "require_session", "shared_session"]
