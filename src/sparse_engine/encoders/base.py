"""The encoder interfaces the engine consumes.

A *dense* encoder maps text (and maybe pixels) to L2-normalised float32 rows.
A *sparse* encoder maps them to non-negative ``scipy.sparse.csr_matrix`` rows whose
dimensions are readable concepts (``dim_labels``).
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError

log = logging.getLogger(__name__)


@dataclass
class EncodeReport:
    """What happened to a batch of inputs: which were skipped, and why."""

    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    empty_texts: int = 0

    @property
    def n_failed(self) -> int:
        return len(self.failed)

    def failed_rows(self, inputs: Sequence[str]) -> set[int]:
        bad = {path for path, _ in self.failed}
        return {i for i, x in enumerate(inputs) if str(x) in bad}


class NoImageTowerError(SparseEngineError):
    def __init__(self, encoder_name: str):
        super().__init__(
            f"encoder '{encoder_name}' has no image tower: index captions (--by captions) "
            "or use an image encoder such as openclip:ViT-B-32/laion2b_s34b_b79k"
        )


class DenseEncoder(ABC):
    """A frozen dense model. Rows are L2-normalised float32."""

    name: str
    dim: int
    has_images: bool = False

    @abstractmethod
    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_images(self, paths: Sequence[str], report: EncodeReport | None = None) -> np.ndarray:
        raise NoImageTowerError(self.name)


class SparseEncoder(ABC):
    """The interface the engine consumes (keep exactly: see issue 2)."""

    name: str
    dim: int
    checkpoint_hash: str = ""

    @abstractmethod
    def encode_text(self, texts: Sequence[str]) -> sp.csr_matrix: ...

    def encode_images(self, paths: Sequence[str], report: EncodeReport | None = None) -> sp.csr_matrix:
        raise NoImageTowerError(self.name)

    @property
    def has_images(self) -> bool:
        return False

    @abstractmethod
    def dim_labels(self) -> list[list[str]]: ...

    def realizations(self, term: str) -> list[str]:
        """Other words annotators use for ``term`` (encoders/realizations.py); none by default."""
        return []

    def encode_caption_sets(self, caption_sets: Sequence[Sequence[str]], pooling: str = "mean") -> sp.csr_matrix:
        """One row per document from its captions: the mean (or max) of the captions' vectors.

        A document with no captions gets an empty row.
        """
        flat, owner = flatten_sets(caption_sets)
        if not flat:
            return sp.csr_matrix((len(caption_sets), self.dim), dtype=np.float32)
        rows = self.encode_text(flat).tocsr()
        return pool_rows(rows, owner, len(caption_sets), pooling)


def flatten_sets(sets: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """(every text in one list, the index of the set each came from)."""
    return [t for texts in sets for t in texts], np.repeat(np.arange(len(sets)), [len(t) for t in sets])


def pool_rows(rows: sp.csr_matrix, owner: np.ndarray, n_groups: int, pooling: str = "mean") -> sp.csr_matrix:
    """Pool CSR rows into groups (``owner[i]`` is row i's group) by mean or max."""
    if pooling == "mean":
        counts = np.bincount(owner, minlength=n_groups).astype(np.float32)
        assign = sp.csr_matrix(
            (1.0 / counts[owner], (owner, np.arange(len(owner)))), shape=(n_groups, len(owner)), dtype=np.float32
        )
        pooled = (assign @ rows).tocsr()
    elif pooling == "max":
        coo = rows.tocoo()
        groups = owner[coo.row]
        order = np.lexsort((coo.col, groups))
        g, c, v = groups[order], coo.col[order], coo.data[order]
        starts = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (c[1:] != c[:-1])])
        pooled = sp.csr_matrix(
            (np.maximum.reduceat(v, starts), (g[starts], c[starts])), shape=(n_groups, rows.shape[1])
        )
    else:
        raise SparseEngineError(f"unknown pooling '{pooling}': use mean or max")
    pooled = pooled.astype(np.float32)
    pooled.eliminate_zeros()
    return pooled


def clean_texts(texts: Sequence[str], report: EncodeReport | None = None) -> tuple[list[str], np.ndarray]:
    """Return the texts and a boolean mask of the empty/whitespace-only ones (warned about)."""
    texts = [t if isinstance(t, str) else "" for t in texts]
    empty = np.array([not t.strip() for t in texts], dtype=bool)
    if empty.any():
        log.warning("%d empty text(s) encoded as empty vectors", int(empty.sum()))
        if report is not None:
            report.empty_texts += int(empty.sum())
    return texts, empty


def unit_rows(rows: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (empty rows stay empty)."""
    rows = sp.csr_matrix(rows, dtype=np.float32)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ rows, dtype=np.float32)


def to_nonnegative_csr(dense: np.ndarray) -> sp.csr_matrix:
    """Dense activations → float32 CSR with negatives and exact zeros dropped."""
    dense = np.asarray(dense, dtype=np.float32)
    dense = np.where(dense > 0, dense, 0).astype(np.float32)
    out = sp.csr_matrix(dense)
    out.eliminate_zeros()
    return out
