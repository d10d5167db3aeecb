"""Why a document scored what it did: per-dim contributions with the dims' labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .query_spec import QuerySpec


@dataclass
class Contribution:
    dim: int
    query_weight: float
    doc_weight: float
    contribution: float  # query_weight * doc_weight (negative under "subtract")
    labels: list[str]

    @property
    def label(self) -> str:
        return label_text(self.labels)


@dataclass
class Explanation:
    query: str
    doc_id: str
    path: str
    score: float  # the sum of the contributions: what the numba backend scores
    contributions: list[Contribution]  # largest |contribution| first
    vetoed_by: list[Contribution] = field(default_factory=list)  # veto dims over the threshold
    missing_must: bool = False  # a +term's dims are all zero in the document
    excluded: bool = False  # vetoed or missing a must term: the search drops this document

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "doc_id": self.doc_id,
            "path": self.path,
            "score": self.score,
            "excluded": self.excluded,
            "missing_must": self.missing_must,
            "contributions": [c.__dict__ for c in self.contributions],
            "vetoed_by": [c.__dict__ for c in self.vetoed_by],
        }


def label_text(labels: list[str], n: int = 3) -> str:
    return "/".join(labels[:n]) if labels else "?"


def dim_labels_for(all_labels: list[list[str]] | None, dim: int) -> list[str]:
    if all_labels is None or dim >= len(all_labels):
        return [f"d{dim}"]
    return list(all_labels[dim]) or [f"d{dim}"]


def contributions(
    spec: QuerySpec, doc_dims: np.ndarray, doc_weights: np.ndarray, labels: list[list[str]] | None = None
) -> list[Contribution]:
    """The query dims the document shares, each with q_w * d_w, largest magnitude first."""
    doc = dict(zip(np.asarray(doc_dims).tolist(), np.asarray(doc_weights, dtype=np.float64).tolist()))
    out = []
    for dim, qw in zip(spec.dims.tolist(), spec.weights.astype(np.float64).tolist()):
        dw = doc.get(dim, 0.0)
        if dw != 0.0 and qw != 0.0:
            out.append(Contribution(dim, qw, dw, qw * dw, dim_labels_for(labels, dim)))
    out.sort(key=lambda c: (-abs(c.contribution), c.dim))
    return out


def explain_doc(
    spec: QuerySpec,
    doc_id: str,
    path: str,
    doc_dims: np.ndarray,
    doc_weights: np.ndarray,
    labels: list[list[str]] | None = None,
) -> Explanation:
    """Explain one document against a compiled query (veto and must checks included)."""
    parts = contributions(spec, doc_dims, doc_weights, labels)
    doc = dict(zip(np.asarray(doc_dims).tolist(), np.asarray(doc_weights, dtype=np.float64).tolist()))
    vetoed = [
        Contribution(d, 0.0, doc[d], 0.0, dim_labels_for(labels, d))
        for d in spec.veto_dims.tolist()
        if doc.get(d, 0.0) > spec.veto_threshold
    ]
    missing_must = bool(spec.must_dims.size) and not any(doc.get(d, 0.0) > 0 for d in spec.must_dims.tolist())
    return Explanation(
        query=spec.text,
        doc_id=doc_id,
        path=path,
        score=float(sum(c.contribution for c in parts)),
        contributions=parts,
        vetoed_by=vetoed,
        missing_must=missing_must,
        excluded=bool(vetoed) or missing_must,
    )
