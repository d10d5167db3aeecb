"""Search an index: load and check it, plan queries, traverse, explain.

``Searcher(index_dir, backend="numba"|"lucene")``: ``.search(query, k)``, ``.batch_search(queries, k,
threads)``, ``.explain(query, doc_id)``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .docmeta import DocStore
from .encoders.base import SparseEncoder
from .errors import SparseEngineError
from .explain import Explanation, contributions, explain_doc, label_text
from .indexer import FORMAT_VERSION, MANIFEST, recover_and_clean
from .planner import PlanOptions, plan_query
from .query_parser import parse_query
from .query_spec import QuerySpec
from .words import WordChannel

N_CONCEPTS = 3  # top contributing dims shown per result


@dataclass
class SearchResult:
    rank: int
    doc_id: str
    score: float
    path: str
    captions: list[str]
    concepts: list[tuple[int, float, list[str]]]  # (dim, contribution, labels), largest first

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "doc_id": self.doc_id,
            "score": self.score,
            "path": self.path,
            "captions": self.captions,
            "concepts": [{"dim": d, "contribution": c, "labels": lab} for d, c, lab in self.concepts],
        }

    @property
    def concept_text(self) -> str:
        return ", ".join(label_text(lab, 2) for _, _, lab in self.concepts)


def read_manifest(index_dir: str | Path) -> dict:
    """The index's manifest, checked for presence and format version."""
    index_dir = Path(index_dir)
    if not index_dir.exists():
        recover_and_clean(index_dir)  # a build killed between its two renames left INDEX.old-*
    path = index_dir / MANIFEST
    if not index_dir.is_dir():
        raise SparseEngineError(f"no index at '{index_dir}': build one with `sparse-engine index DIR --index {index_dir}`")
    if not path.exists():
        raise SparseEngineError(f"'{index_dir}' is not a sparse-engine index (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SparseEngineError(f"cannot read {path}: {exc}") from exc
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise SparseEngineError(
            f"index '{index_dir}' has format version {version}, this sparse-engine reads {FORMAT_VERSION}: rebuild it"
        )
    for key in ("encoder", "n_docs", "store", "docs"):
        if key not in manifest:
            raise SparseEngineError(f"index manifest {path} lacks '{key}': rebuild the index")
    return manifest


def check_encoder(manifest: dict, encoder: SparseEncoder, index_dir: Path) -> None:
    want = manifest["encoder"]
    if encoder.name != want.get("name"):
        raise SparseEngineError(f"index '{index_dir}' was built with encoder '{want.get('name')}', not '{encoder.name}'")
    if (encoder.checkpoint_hash or "") != (want.get("checkpoint_hash") or ""):
        raise SparseEngineError(
            f"encoder '{encoder.name}' checkpoint hash {encoder.checkpoint_hash[:12] or '-'} differs from the index's "
            f"{(want.get('checkpoint_hash') or '-')[:12]}: rebuild the index"
        )
    if int(encoder.dim) != int(want.get("dim", -1)):
        raise SparseEngineError(f"encoder '{encoder.name}' has {encoder.dim} dims but index '{index_dir}' has {want.get('dim')}")


class Searcher:
    """Query an index built by :func:`sparse_engine.indexer.build_index`."""

    def __init__(self, index_dir: str | Path, backend: str = "numba", encoder: SparseEncoder | None = None,
                 options: PlanOptions | None = None):  # fmt: skip
        from .store import PostingStore

        self.index_dir = Path(index_dir)
        self.manifest = read_manifest(self.index_dir)
        if backend not in ("numba", "lucene"):
            raise SparseEngineError(f"unknown backend '{backend}': choose numba or lucene")
        if backend not in self.manifest.get("backends", ["numba"]):
            raise SparseEngineError(f"index '{self.index_dir}' has no {backend} backend: rebuild it with --backend both")
        self.backend = backend
        self.store = PostingStore.load(self.index_dir / "postings", self.manifest["store"])
        self.docs = DocStore(self.index_dir, self.manifest["docs"])
        n = int(self.manifest["n_docs"])
        if self.store.n_docs != n or len(self.docs) != n:
            raise SparseEngineError(f"index '{self.index_dir}' is inconsistent: manifest says {n} documents")
        self.words = WordChannel.load(self.index_dir, self.manifest["words"]) if "words" in self.manifest else None
        n_words = self.words.n_terms if self.words is not None else 0
        if self.store.dim != int(self.manifest["encoder"]["dim"]) + n_words:
            raise SparseEngineError(f"index '{self.index_dir}' store has {self.store.dim} dims, manifest says otherwise")
        if encoder is None:
            from .encoders import create_encoder

            enc = self.manifest["encoder"]
            encoder = create_encoder(enc.get("spec") or enc["name"])
        check_encoder(self.manifest, encoder, self.index_dir)
        self.encoder = encoder
        self.options = (options or PlanOptions()).checked()
        self._labels: list[list[str]] | None = None
        self._lucene = None

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def labels(self) -> list[list[str]]:
        if self._labels is None:
            words = self.words.labels() if self.words is not None else []
            self._labels = self.encoder.dim_labels() + words
        return self._labels

    def plan(self, query: str, cache: dict | None = None, **plan_overrides) -> QuerySpec:
        options = self.options.with_overrides(**plan_overrides) if plan_overrides else self.options
        return plan_query(parse_query(query), self.encoder, self.store, options, cache, self.words)

    def _results(self, spec: QuerySpec, docs: np.ndarray, scores: np.ndarray) -> list[SearchResult]:
        out = []
        for rank, (doc, score) in enumerate(zip(np.asarray(docs).tolist(), np.asarray(scores).tolist()), 1):
            meta = self.docs.get(int(doc))
            dims, weights = self.store.doc_vector(int(doc))
            parts = contributions(spec, dims, weights, self.labels)[:N_CONCEPTS]
            concepts = [(c.dim, c.contribution, c.labels) for c in parts]
            out.append(SearchResult(rank, meta.id, float(score), meta.path, meta.captions, concepts))
        return out

    # -- lucene ----------------------------------------------------------------------------------

    def _lucene_search(self, spec: QuerySpec, k: int) -> tuple[np.ndarray, np.ndarray]:
        from .lucene_backend import LuceneImpactSearcher, forward_weights, integer_query

        if self._lucene is None:
            # The store's exact weights / scale: vetoes and subtractions are checked exactly.
            self._lucene = LuceneImpactSearcher(self.index_dir / "lucene", forward=forward_weights(self.store))
        if not np.any(spec.weights > 0):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        int_w, qscale = integer_query(spec.weights)
        thr = spec.veto_threshold
        veto_impact = 255 if math.isinf(thr) else min(255.0, thr / self.store.scale)
        ids, scores = self._lucene.search(spec.dims, int_w, k=k, exclude_dims=spec.veto_dims, veto_impact=veto_impact,
                                          must_dims=spec.must_dims)  # fmt: skip
        docs = np.array([self.docs.index_of(i) for i in ids], dtype=np.int64)
        return docs, np.asarray(scores, dtype=np.float64) * qscale * self.store.scale

    # -- public API ------------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, **plan_overrides) -> list[SearchResult]:
        """Top-``k`` documents for ``query`` (e.g. ``"dog -frisbee"``)."""
        if k < 1:
            raise SparseEngineError("k must be at least 1")
        spec = self.plan(query, **plan_overrides)
        if self.backend == "lucene":
            docs, scores = self._lucene_search(spec, k)
        else:
            from . import traverse

            docs, scores = traverse.search(self.store, spec, k=k)
        return self._results(spec, docs, scores)

    def batch_search(self, queries: Sequence[str], k: int = 10, threads: int = 2, **plan_overrides) -> list[list[SearchResult]]:
        """Plan every query, then run them together (numba: in parallel over ``threads``)."""
        cache: dict = {}  # terms repeated across the batch are searched once ("paper" strategies)
        specs = [self.plan(q, cache, **plan_overrides) for q in queries]
        if self.backend == "lucene":
            return [self._results(s, *self._lucene_search(s, k)) for s in specs]
        from . import traverse

        found = traverse.batch_search(self.store, specs, k, threads)
        return [self._results(s, docs, scores) for s, (docs, scores) in zip(specs, found)]

    def explain(self, query: str, doc_id: str, **plan_overrides) -> Explanation:
        """Per-dim contributions of document ``doc_id`` to ``query``'s score (with dim labels)."""
        spec = self.plan(query, **plan_overrides)
        doc = self.docs.index_of(doc_id)
        meta = self.docs.get(doc)
        dims, weights = self.store.doc_vector(doc)
        return explain_doc(spec, meta.id, meta.path, dims, weights, self.labels)

    def close(self) -> None:
        if self._lucene is not None:
            self._lucene.close()
            self._lucene = None
