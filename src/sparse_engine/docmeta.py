"""Per-document metadata (id, path relative to the collection root, captions).

Stored as JSON lines (``docs.jsonl``) plus byte offsets (``docs.offsets.npy``, int64, n+1) so one
document is a seek and a line read, and the ids as a fixed-width unicode array (``docs.ids.npy``)
so id → index needs no JSON parsing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import SparseEngineError

JSONL, OFFSETS, IDS = "docs.jsonl", "docs.offsets.npy", "docs.ids.npy"


@dataclass
class DocMeta:
    id: str
    path: str
    captions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "captions": list(self.captions)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_docmeta(directory: str | Path, docs: Iterable[DocMeta]) -> dict:
    """Write the metadata files into ``directory``; return the manifest fragment."""
    directory = Path(directory)
    offsets, ids = [0], []
    seen: set[str] = set()
    with open(directory / JSONL, "wb") as f:
        for doc in docs:
            if doc.id in seen:
                raise SparseEngineError(f"duplicate document id '{doc.id}'")
            seen.add(doc.id)
            line = (json.dumps(doc.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
            f.write(line)
            offsets.append(offsets[-1] + len(line))
            ids.append(doc.id)
    np.save(directory / OFFSETS, np.asarray(offsets, dtype=np.int64), allow_pickle=False)
    np.save(directory / IDS, np.asarray(ids, dtype=str) if ids else np.zeros(0, dtype="<U1"), allow_pickle=False)
    return {
        "format": "jsonl+offsets",
        "n_docs": len(ids),
        "files": {"jsonl": JSONL, "offsets": OFFSETS, "ids": IDS},
        "sha256": {OFFSETS: _sha256(directory / OFFSETS), IDS: _sha256(directory / IDS)},
    }


class DocStore:
    """Read-only access to the metadata written by :func:`write_docmeta`."""

    def __init__(self, directory: str | Path, fragment: dict):
        self.directory = Path(directory)
        try:
            files = fragment["files"]
            self._jsonl = self.directory / files["jsonl"]
            for name, digest in fragment.get("sha256", {}).items():
                if _sha256(self.directory / name) != digest:
                    raise SparseEngineError(f"document metadata file {name} in {self.directory} is corrupt (checksum)")
            self.offsets = np.load(self.directory / files["offsets"], allow_pickle=False)
            self.ids = np.load(self.directory / files["ids"], allow_pickle=False)
        except (KeyError, TypeError) as exc:
            raise SparseEngineError(f"index manifest in {self.directory} has a bad 'docs' entry ({exc})") from exc
        except OSError as exc:
            raise SparseEngineError(f"cannot read document metadata in {self.directory}: {exc}") from exc
        n = int(fragment.get("n_docs", -1))
        if len(self.ids) != n or len(self.offsets) != n + 1:
            raise SparseEngineError(f"document metadata in {self.directory} does not hold {n} documents")
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def id_of(self, doc: int) -> str:
        return str(self.ids[doc])

    def index_of(self, doc_id: str) -> int:
        if self._index is None:
            self._index = {str(d): i for i, d in enumerate(self.ids.tolist())}
        try:
            return self._index[str(doc_id)]
        except KeyError:
            raise SparseEngineError(f"no document with id '{doc_id}' in the index") from None

    def get(self, doc: int) -> DocMeta:
        if not 0 <= doc < len(self):
            raise SparseEngineError(f"document index {doc} out of range (the index has {len(self)} documents)")
        start, end = int(self.offsets[doc]), int(self.offsets[doc + 1])
        with open(self._jsonl, "rb") as f:
            f.seek(start)
            row = json.loads(f.read(end - start))
        return DocMeta(row["id"], row["path"], row.get("captions", []))

    def get_by_id(self, doc_id: str) -> DocMeta:
        return self.get(self.index_of(doc_id))
