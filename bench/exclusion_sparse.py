"""Sparse methods of the exclusion benchmark (SR, SpLiCE, VDR-style), batched over all queries.

Two routes over the same quantised documents:
- ``via_planner``: the engine's own path (planner.plan_query -> traverse.batch_search over a
  PostingStore), the numbers the engine ships;
- matrix forms of the strategies (scores = queries @ dequantised docs.T, numpy), used for the
  K/t/threshold grids and for the variants the planner does not have yet. Tests check that both
  routes give the same top 10 on the strategies they share.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from bench.exclusion_data import CocoCollection, ExclusionQuery
from bench.exclusion_methods import topk_rows


def quantise_like_store(docs: sp.csr_matrix) -> tuple[sp.csr_matrix, float]:
    """The PostingStore's quantisation: impact = round(w / scale) clipped to 1..255; dequantised back.

    Uses the real PostingStore when it exists, so the matrix route scores exactly what the store does.
    """
    try:
        from sparse_engine.store import PostingStore
    except ImportError:
        PostingStore = None
    if PostingStore is not None:
        store = PostingStore.build(docs)
        scale = float(store.scale)
    else:
        scale = float(docs.data.max() / 255.0) if docs.nnz else 1.0
    q = docs.copy().astype(np.float32)
    q.data = np.clip(np.round(q.data / scale), 1, 255).astype(np.float32) * scale
    return q.tocsr(), scale


class SparseBench:
    """One sparse encoder's documents and query-term vectors, with every exclusion strategy."""

    def __init__(self, encoder, coll: CocoCollection, queries: Sequence[ExclusionQuery], pooling: str = "mean",
                 docs: sp.csr_matrix | None = None):
        self.encoder, self.coll, self.queries, self.pooling = encoder, coll, list(queries), pooling
        raw = docs if docs is not None else encoder.encode_caption_sets(coll.captions, pooling=pooling)
        self.raw_docs = sp.csr_matrix(raw, dtype=np.float32)
        self.docs, self.scale = quantise_like_store(self.raw_docs)
        self._docs_t = self.docs.T.tocsr()
        terms = sorted({t for q in self.queries for t in q.include + q.exclude})
        self._term = {t: i for i, t in enumerate(terms)}
        self.term_vecs = sp.csr_matrix(encoder.encode_text(terms), dtype=np.float32)
        self._inc = self._sum_terms([q.include for q in self.queries])
        self._exc = self._sum_terms([q.exclude for q in self.queries])
        self._sa = None

    def _sum_terms(self, lists: list[list[str]]) -> sp.csr_matrix:
        rows, cols = [], []
        for i, terms in enumerate(lists):
            for t in terms:
                rows.append(i)
                cols.append(self._term[t])
        pick = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(lists), len(self._term)))
        return (pick @ self.term_vecs).tocsr()

    def stats(self) -> dict:
        nnz = np.diff(self.docs.indptr)
        qnnz = np.diff(self._inc.indptr)
        return {"dim": int(self.docs.shape[1]), "doc_nnz_mean": float(nnz.mean()),
                "query_nnz_mean": float(qnnz.mean()), "scale": self.scale, "pooling": self.pooling}

    # -- scores -----------------------------------------------------------------------------
    def include_scores(self) -> np.ndarray:
        if self._sa is None:
            self._sa = np.asarray((self._inc @ self._docs_t).todense(), dtype=np.float32)
        return self._sa

    def exclude_scores(self) -> np.ndarray:
        return np.asarray((self._exc @ self._docs_t).todense(), dtype=np.float32)

    def veto_mask(self, threshold: float, dim_share: float = 0.0) -> np.ndarray:
        """Documents to drop: weight > threshold on a veto dim of the excluded terms.

        A veto dim is a dim of e(B) whose weight is at least ``dim_share`` of e(B)'s largest
        weight (0 = every dim of e(B)). Returns a dense bool (n_queries, n_docs) array.
        """
        exc = self._exc.copy()
        if dim_share > 0:
            row_max = np.maximum.reduceat(exc.data, exc.indptr[:-1]) if exc.nnz else np.zeros(0)
            owner = np.repeat(np.arange(exc.shape[0]), np.diff(exc.indptr))
            has = np.diff(exc.indptr) > 0
            full_max = np.zeros(exc.shape[0], np.float32)
            full_max[has] = row_max[has]
            exc.data = np.where(exc.data >= dim_share * full_max[owner], 1.0, 0.0).astype(np.float32)
        else:
            exc.data = np.ones_like(exc.data)
        exc.eliminate_zeros()
        over = self._docs_t.copy()
        over.data = (over.data > threshold).astype(np.float32)
        over.eliminate_zeros()
        return np.asarray((exc @ over).todense()) > 0

    # -- strategies (matrix form) -----------------------------------------------------------
    def a_only(self, k: int = 10) -> np.ndarray:
        return topk_rows(self._only_positive(self.include_scores()), k)

    def subtract(self, k: int = 10, weight: float = 1.0) -> np.ndarray:
        """Dimension subtraction: score with e(A) - w·e(B)."""
        s = self.include_scores() - weight * self.exclude_scores()
        return topk_rows(np.where(self.include_scores() > 0, s, -np.inf), k)

    def veto(self, k: int = 10, threshold: float = 0.0, dim_share: float = 0.0,
             subtract: float = 0.0) -> np.ndarray:
        """Document veto on the excluded terms' dims (optionally plus subtraction)."""
        s = self.include_scores()
        if subtract:
            s = s - subtract * self.exclude_scores()
        s = np.where(self.veto_mask(threshold, dim_share), -np.inf, s)
        return topk_rows(np.where(self.include_scores() > 0, s, -np.inf), k)

    def d1_minus_d2(self, k: int = 10, top_k_docs: int = 100, coverage: float = 0.5) -> np.ndarray:
        """Set difference: A's ranking minus D2, B's top ``top_k_docs`` documents scoring at least
        ``coverage`` of B's best score."""
        sb = self.exclude_scores()
        best = sb.max(axis=1, keepdims=True)
        top_b = topk_rows(sb, top_k_docs)
        d2 = np.zeros_like(sb, dtype=bool)
        rows = np.repeat(np.arange(len(sb)), top_b.shape[1])
        d2[rows, top_b.ravel()] = True
        d2 &= (sb >= coverage * best) & (best > 0)
        s = np.where(d2, -np.inf, self._only_positive(self.include_scores()))
        return topk_rows(s, k)

    @staticmethod
    def _only_positive(s: np.ndarray) -> np.ndarray:
        return np.where(s > 0, s, -np.inf)

    # -- the engine's own path --------------------------------------------------------------
    def build_store(self):
        from sparse_engine.store import PostingStore

        if getattr(self, "_store", None) is None:
            self._store = PostingStore.build(self.raw_docs)
        return self._store

    def plan_specs(self, **options) -> list:
        from sparse_engine.planner import PlanOptions, plan_query
        from sparse_engine.query_parser import ParsedQuery

        store = self.build_store()
        opts = PlanOptions(**options)
        return [plan_query(ParsedQuery(include=list(q.include), exclude=list(q.exclude), must=[]),
                           self.encoder, store, opts) for q in self.queries]

    def via_planner(self, k: int = 10, threads: int = 2, **options) -> np.ndarray:
        from sparse_engine.traverse import batch_search

        store = self.build_store()
        results = batch_search(store, self.plan_specs(**options), k, threads)
        out = np.full((len(self.queries), k), -1, dtype=np.int64)
        for i, res in enumerate(results):
            idx = np.asarray(res[0] if isinstance(res, tuple) else res, dtype=np.int64)[:k]
            out[i, :len(idx)] = idx
        return out
