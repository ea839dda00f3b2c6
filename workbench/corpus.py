"""A reference corpus: documents read from .txt/.jsonl files, tokenized and indexed in
tokengrams' suffix array, saved and loaded; ``workbench.overlap.exact_matches`` looks runs up in it.

Documents are tokenized with the model's tokenizer and joined with a separator id that no
tokenizer produces, so no match spans two documents.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from tokengrams import InMemoryIndex
from transformers import PreTrainedTokenizerBase

from workbench.cache import atomic_dir
from workbench.config import DATA_DIR

DOCUMENT_SUFFIXES = (".txt", ".jsonl")
REFERENCE_CORPUS = DATA_DIR / "reference"


def parse_documents(name: str, data: bytes, field: str = "text") -> list[tuple[str, str]]:
    """(name, text) documents of one file's bytes: a .txt file is one document; a .jsonl
    file holds one per line, as {field: ..., "id": optional name} or a JSON string."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} is not UTF-8 text (byte {err.start} cannot be decoded).") from err
    if name.lower().endswith(".txt"):
        return [(name, text)]
    if not name.lower().endswith(".jsonl"):
        raise ValueError(f"{name}: corpus files must end in {' or '.join(DOCUMENT_SUFFIXES)}.")
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name} line {number} is not JSON ({err.msg}).") from err
        if isinstance(record, dict) and isinstance(record.get(field), str):
            documents.append((str(record.get("id", f"{name}:{number}")), record[field]))
        elif isinstance(record, str):
            documents.append((f"{name}:{number}", record))
        else:
            raise ValueError(f'{name} line {number} has no "{field}" string.')
    return documents


def read_documents(path: str | Path) -> list[tuple[str, str]]:
    """Documents of a .txt/.jsonl file, or of every such file in a folder (sorted by name)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in DOCUMENT_SUFFIXES)
        if not files:
            raise ValueError(f"The folder {path} holds no .txt or .jsonl files.")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"No corpus file or folder at {path}.")
    documents = []
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as err:
            raise ValueError(f"Cannot read {file}: {err.strerror}.") from err
        documents.extend(parse_documents(file.name, data))
    return documents


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(vocab.encode()).hexdigest()[:16]


class CorpusIndex:
    """A suffix array over the tokens of named documents."""

    def __init__(self, index: InMemoryIndex, names: list[str], starts: list[int], vocab: int, fingerprint: str):
        self.suffix_array = index
        self.names = names
        self._starts = starts  # token position where each document begins
        self._vocab = vocab
        self.fingerprint = fingerprint

    @property
    def n_documents(self) -> int:
        return len(self.names)

    @property
    def n_tokens(self) -> int:
        return self._starts[-1] if self._starts else 0

    @property
    def separator(self) -> int:
        """The id between documents; it and every larger id never match."""
        return self._vocab - 1

    def locate(self, position: int) -> tuple[str, int]:
        """(document name, token offset in it) of a token position of the index."""
        document = bisect.bisect_right(self._starts, position) - 1
        return self.names[document], position - self._starts[document]

    @classmethod
    def from_texts(
        cls, documents: Sequence[tuple[str, str]] | Sequence[str], tokenizer: PreTrainedTokenizerBase
    ) -> CorpusIndex:
        """Index ``(name, text)`` pairs, or plain texts (named doc-0, doc-1, …)."""
        pairs = [d if isinstance(d, tuple) else (f"doc-{i}", d) for i, d in enumerate(documents)]
        if not pairs:
            raise ValueError("The corpus has no documents.")
        separator = len(tokenizer)  # one past the largest id: never in a query
        tokens: list[int] = []
        starts: list[int] = []
        for _, text in pairs:
            starts.append(len(tokens))
            tokens.extend(tokenizer.encode(text, add_special_tokens=False))
            tokens.append(separator)
        starts.append(len(tokens))
        vocab = separator + 1
        return cls(InMemoryIndex(tokens, vocab), [n for n, _ in pairs], starts, vocab, tokenizer_fingerprint(tokenizer))

    @classmethod
    def from_path(cls, path: str | Path, tokenizer: PreTrainedTokenizerBase) -> CorpusIndex:
        """A saved index folder, or a .txt/.jsonl file or folder of them to index now."""
        path = Path(path).expanduser()
        if (path / "corpus-index.json").is_file():
            return cls.load(path, tokenizer)
        return cls.from_texts(read_documents(path), tokenizer)

    def save(self, folder: str | Path) -> Path:
        """Write the index to ``folder`` (atomically); ``CorpusIndex.load`` reads it back."""
        folder = Path(folder).expanduser()
        with atomic_dir(folder) as tmp:
            self.suffix_array.save_tokens(str(tmp / "tokens.bin"))
            self.suffix_array.save_index(str(tmp / "index.bin"))
            meta = {"names": self.names, "starts": self._starts, "vocab": self._vocab, "tokenizer": self.fingerprint}
            (tmp / "corpus-index.json").write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: str | Path, tokenizer: PreTrainedTokenizerBase) -> CorpusIndex:
        folder = Path(folder).expanduser()
        try:
            meta = json.loads((folder / "corpus-index.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{folder} is not a saved corpus index: {err}") from err
        if meta["tokenizer"] != tokenizer_fingerprint(tokenizer):
            raise ValueError(f"The index in {folder} was built with another tokenizer; rebuild it for this model.")
        index = InMemoryIndex.from_disk(str(folder / "tokens.bin"), str(folder / "index.bin"), meta["vocab"])
        return cls(index, meta["names"], meta["starts"], meta["vocab"], meta["tokenizer"])
