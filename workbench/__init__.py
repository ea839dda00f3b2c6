"""Memorization Workbench: explore how language models memorize and leak training data."""

from workbench.config import ModelSpec
from workbench.contract import LanguageModel
from workbench.session import Session, load_session

__all__ = ["LanguageModel", "ModelSpec", "Session", "load_session"]
__version__ = "0.1.0"
