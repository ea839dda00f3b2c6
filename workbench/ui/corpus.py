"""Corpus indexes for pages: the shipped reference corpus is indexed once per tokenizer."""

from __future__ import annotations

import streamlit as st

from workbench.config import ModelSpec
from workbench.corpus import REFERENCE_CORPUS, CorpusIndex, parse_documents
from workbench.ui.model import shared_session


@st.cache_resource(show_spinner="Indexing the reference corpus…")
def reference_corpus(spec: ModelSpec) -> CorpusIndex:
    return CorpusIndex.from_path(REFERENCE_CORPUS, shared_session(spec).tokenizer)


def uploaded_corpus(files, tokenizer) -> CorpusIndex:
    """Index uploaded .txt/.jsonl files; their bytes are parsed as text, never executed."""
    if not files:
        raise ValueError("Upload at least one .txt or .jsonl file, or use the shipped reference corpus.")
    documents = [doc for file in files for doc in parse_documents(file.name, file.getvalue())]
    return CorpusIndex.from_texts(documents, tokenizer)
