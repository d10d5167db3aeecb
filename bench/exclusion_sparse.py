"""Sparse methods of the exclusion benchmark (SR, SpLiCE, VDR-style), batched over all queries.

Documents are stored as the engine stores them (``sparse-engine index``: captions encoded, pooled,
L2-normalised, then the caption-word channel when ``word_weight`` > 0) and term vectors are the
planner's own (``planner.term_vectors``). Two routes:

- ``via_planner``: the engine's own path (planner.plan_query -> traverse.batch_search over a
  PostingStore), the numbers the engine ships;
- matrix forms of the strategies the planner shares (scores = queries @ docs.T, numpy), for the
  alpha / threshold / coverage grids. The veto dims come from the planner's own function, and
  tests check that both routes give the same top 10.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from bench.exclusion_data import CocoCollection, ExclusionQuery
from bench.exclusion_methods import topk_rows
from sparse_engine.encoders.base import unit_rows


class TermRows:
    """An encoder whose ``encode_text`` reads precomputed rows: planning 3,215 queries then
    costs no model call (the planner only encodes the queries' terms)."""

    def __init__(self, encoder, terms: list[str], rows: sp.csr_matrix):
        self.name, self.dim, self._encoder = encoder.name, encoder.dim, encoder
        self.realizations = encoder.realizations
        self._row = {t: i for i, t in enumerate(terms)}
        self._rows = rows

    def encode_text(self, texts):
        missing = [t for t in texts if t not in self._row]
        if missing:
            return self._encoder.encode_text(list(texts))
        return self._rows[[self._row[t] for t in texts]]

    def dim_labels(self):
        return self._encoder.dim_labels()


class SparseBench:
    """One sparse encoder's documents and query-term vectors, with every exclusion strategy."""

    def __init__(self, encoder, coll: CocoCollection, queries: Sequence[ExclusionQuery], pooling: str = "mean",
                 docs: sp.csr_matrix | None = None, word_weight: float = 0.0):
        from sparse_engine.planner import term_vectors
        from sparse_engine.words import WordChannel

        self.encoder, self.coll, self.queries, self.pooling = encoder, coll, list(queries), pooling
        raw = docs if docs is not None else encoder.encode_caption_sets(coll.captions, pooling=pooling)
        self.raw_docs = raw  # concept rows before normalising: another SparseBench can reuse them
        self.docs = unit_rows(raw)
        self.words = None
        if word_weight > 0:
            self.words = WordChannel.build(coll.captions, encoder.dim, word_weight)
            self.docs = self.words.attach(self.docs, coll.captions)
        self._docs_t = self.docs.T.tocsr()
        terms = sorted({t for q in self.queries for t in q.include + q.exclude})
        self._term = {t: i for i, t in enumerate(terms)}
        raw_terms = sp.csr_matrix(encoder.encode_text(terms), dtype=np.float32)
        self.terms = TermRows(encoder, terms, raw_terms)
        self.term_vecs = sp.csr_matrix(np.vstack(term_vectors(self.terms, terms, self.words)), dtype=np.float32)
        self._inc = self._sum_terms([q.include for q in self.queries])
        self._sa = None
        self._sb: dict[float, np.ndarray] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._cache: dict = {}  # the planner's per-term searches, shared by every exclude_scores call
        self._store = None

    def _sum_terms(self, lists: list[list[str]]) -> sp.csr_matrix:
        rows, cols = [], []
        for i, terms in enumerate(lists):
            for t in terms:
                rows.append(i)
                cols.append(self._term[t])
        pick = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(lists), len(self._term)))
        return (pick @ self.term_vecs).tocsr()

    def stats(self) -> dict:
        out = {"dim": int(self.docs.shape[1]), "doc_nnz_mean": float(np.diff(self.docs.indptr).mean()),
               "query_nnz_mean": float(np.diff(self._inc.indptr).mean()), "pooling": self.pooling}
        if self.words is not None:
            out |= {"caption_terms": self.words.n_terms, "word_weight": self.words.weight}
        return out

    # -- scores -----------------------------------------------------------------------------
    def include_scores(self) -> np.ndarray:
        if self._sa is None:
            self._sa = np.asarray((self._inc @ self._docs_t).todense(), dtype=np.float32)
        return self._sa

    def exclude_scores(self, context_weight: float = 0.0) -> np.ndarray:
        """Scores of what the planner subtracts per query: planner.exclusion_vector (e(B) +
        context_weight · c(B), A's own main concepts left out)."""
        from sparse_engine.planner import PlanOptions, exclusion_vector

        if context_weight not in self._sb:
            store, options, cache = self.build_store(), PlanOptions(context_weight=context_weight), self._cache
            rows = [exclusion_vector(store, a, negs, self.encoder.dim, options, cache)
                    for _, a, negs in self._query_vectors()]  # fmt: skip
            vecs = sp.csr_matrix(np.vstack(rows), dtype=np.float32)
            self._sb[context_weight] = np.asarray((vecs @ self._docs_t).todense(), dtype=np.float32)
        return self._sb[context_weight]

    def veto_mask(self, threshold: float, coverage: float, source: str = "words") -> np.ndarray:
        """(n_queries, n_docs) bool: the documents the planner's veto drops for each query (its
        caption words, or B's main concepts less A's over ``threshold``: planner.exclusion_veto)."""
        from sparse_engine.planner import PlanOptions, exclusion_veto

        key = (threshold, coverage, source, self.terms.realizations)
        if key in self._masks:
            return self._masks[key]
        options = PlanOptions(veto_coverage=coverage, veto_threshold=threshold, veto_source=source)
        picks: dict[float, tuple[list[int], list[int]]] = {}
        for i, a, negs in self._query_vectors():
            if not negs:
                continue
            q = self.queries[i]
            dims, thr = exclusion_veto(a, negs, q.include, q.exclude, self.terms, self.words, options)
            rows, cols = picks.setdefault(thr, ([], []))
            rows += [i] * len(dims)
            cols += dims.tolist()
        mask = np.zeros((len(self.queries), self.docs.shape[0]), dtype=bool)
        for thr, (rows, cols) in picks.items():
            pick = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(self.queries), self.docs.shape[1]))
            over = self._docs_t.copy()
            over.data = (over.data > thr).astype(np.float32)
            over.eliminate_zeros()
            mask |= np.asarray((pick @ over).todense()) > 0
        self._masks[key] = mask
        return mask

    def _query_vectors(self):
        """(query index, A's vector, each excluded term's vector), dense over the whole store as
        the planner takes them; densified a row at a time (the whole matrices span every caption term)."""
        for i, q in enumerate(self.queries):
            negs = [self.term_vecs[self._term[t]].toarray().ravel() for t in q.exclude]
            yield i, self._inc[i].toarray().ravel(), negs

    # -- strategies (matrix form) -----------------------------------------------------------
    def a_only(self, k: int = 10) -> np.ndarray:
        return topk_rows(self._only_positive(self.include_scores()), k)

    def subtract(self, k: int = 10, alpha: float = 1.0, context_weight: float = 0.0) -> np.ndarray:
        """Dimension subtraction: score with e(A) - alpha·(e(B) + w·c(B)) (only documents scoring > 0)."""
        return topk_rows(self._only_positive(self.include_scores() - alpha * self.exclude_scores(context_weight)), k)

    def veto(self, k: int = 10, threshold: float = 0.2, coverage: float = 0.5, alpha: float = 0.0,
             source: str = "words", context_weight: float = 0.0) -> np.ndarray:  # fmt: skip
        """Document veto on the planner's veto dims, ranked by e(A) - alpha·(e(B) + w·c(B))."""
        s = self.include_scores() - alpha * self.exclude_scores(context_weight) if alpha else self.include_scores()
        return topk_rows(np.where(self.veto_mask(threshold, coverage, source), -np.inf, self._only_positive(s)), k)

    @staticmethod
    def _only_positive(s: np.ndarray) -> np.ndarray:
        return np.where(s > 0, s, -np.inf)

    # -- the engine's own path --------------------------------------------------------------
    def build_store(self):
        from sparse_engine.store import PostingStore

        if self._store is None:
            self._store = PostingStore.build(self.docs)
        return self._store

    def plan_specs(self, **options) -> list:
        """One QuerySpec per query; a query the planner refuses (the paper's D1 \\ D2 can leave
        nothing to search for) gets an empty spec: no results, scored as such."""
        from sparse_engine.errors import SparseEngineError
        from sparse_engine.planner import PlanOptions, plan_query
        from sparse_engine.query_parser import ParsedQuery
        from sparse_engine.query_spec import QuerySpec

        store, opts, cache = self.build_store(), PlanOptions(**options), {}
        specs = []
        for q in self.queries:
            parsed = ParsedQuery(include=list(q.include), exclude=list(q.exclude), text=q.text)
            try:
                specs.append(plan_query(parsed, self.terms, store, opts, cache, self.words))
            except SparseEngineError:
                specs.append(QuerySpec(np.zeros(0, np.int32), np.zeros(0, np.float32), text=q.text))
        return specs

    def via_planner(self, k: int = 10, threads: int = 2, **options) -> np.ndarray:
        from sparse_engine.traverse import batch_search

        results = batch_search(self.build_store(), self.plan_specs(**options), k, threads)
        out = np.full((len(self.queries), k), -1, dtype=np.int64)
        for i, (docs, _) in enumerate(results):
            out[i, : len(docs[:k])] = docs[:k]
        return out
