"""Dense baselines of the exclusion benchmark, all batched over the whole query set.

Documents are the mean of each image's caption embeddings (L2-normalised); a label's query text is
the label name itself. Every method returns an (n_queries, k) int64 array of doc indices, best
first, padded with -1 when fewer than k documents qualify.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench.exclusion_data import ExclusionQuery


def pool_dense(rows: np.ndarray, owner: np.ndarray, n_docs: int) -> np.ndarray:
    """Mean of each document's caption rows, L2-normalised (a doc with no rows stays zero)."""
    docs = np.zeros((n_docs, rows.shape[1]), dtype=np.float32)
    np.add.at(docs, owner, rows)
    norms = np.linalg.norm(docs, axis=1, keepdims=True)
    return docs / np.where(norms > 0, norms, 1.0)


def topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best columns of each row, best first; ties by lower index; -inf never returned."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    out = np.full((n_rows, k), -1, dtype=np.int64)
    if k == 0:
        return out
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n_cols else None
    kth = np.take_along_axis(scores, part, 1).min(axis=1) if part is not None else np.full(n_rows, -np.inf)
    for i, row in enumerate(scores):
        # Every column tied with the k-th score competes, so ties go to the lower doc index.
        cand = np.flatnonzero(row >= kth[i]) if part is not None else np.arange(n_cols)
        cand = cand[np.lexsort((cand, -row[cand]))][:k]
        cand = cand[row[cand] > -np.inf]
        out[i, :len(cand)] = cand
    return out


class DenseBench:
    """Embeds the query terms once and runs every dense baseline as matrix products."""

    def __init__(self, encoder, docs: np.ndarray, queries: Sequence[ExclusionQuery]):
        self.encoder, self.docs, self.queries = encoder, docs, list(queries)
        terms = sorted({t for q in self.queries for t in q.include + q.exclude})
        self._term = {t: i for i, t in enumerate(terms)}
        self._emb = encoder.embed_text(terms) if terms else np.zeros((0, docs.shape[1]), np.float32)

    def _terms_vec(self, lists: list[list[str]]) -> np.ndarray:
        out = np.zeros((len(lists), self.docs.shape[1]), dtype=np.float32)
        for i, terms in enumerate(lists):
            if terms:
                out[i] = self._emb[[self._term[t] for t in terms]].sum(axis=0)
        return out

    def include_vecs(self) -> np.ndarray:
        return self._terms_vec([q.include for q in self.queries])

    def exclude_vecs(self) -> np.ndarray:
        return self._terms_vec([q.exclude for q in self.queries])

    def a_only(self, k: int = 10) -> np.ndarray:
        return topk_rows(self.include_vecs() @ self.docs.T, k)

    def avg_emb(self, k: int = 10, weight: float = 1.0) -> np.ndarray:
        """AvgEmb: e(A) - w·e(B)."""
        return topk_rows((self.include_vecs() - weight * self.exclude_vecs()) @ self.docs.T, k)

    def slq(self, k: int = 10) -> np.ndarray:
        """Single language query: the whole request as one sentence."""
        texts = [slq_text(q) for q in self.queries]
        return topk_rows(self.encoder.embed_text(texts) @ self.docs.T, k)

    def content_exclusion(self, k: int = 10, m: int = 10, tau: float = 0.7, pool: int = 300,
                          chunk: int = 256) -> np.ndarray:
        """Yoshikawa & Tajima (2024): drop A's results that look like B's top-m results.

        A candidate (among A's top ``pool``) is dropped when its cosine similarity to any of
        the top ``m`` documents retrieved for B reaches ``tau``.
        """
        inc, exc = self.include_vecs(), self.exclude_vecs()
        out = np.full((len(self.queries), k), -1, dtype=np.int64)
        for s in range(0, len(self.queries), chunk):
            sa = inc[s:s + chunk] @ self.docs.T
            cand = np.sort(topk_rows(sa, pool), axis=1)  # position order = doc order: ties by index
            has_b = np.linalg.norm(exc[s:s + chunk], axis=1) > 0
            btop = topk_rows(exc[s:s + chunk] @ self.docs.T, m)
            cv, bv = self.docs[cand], self.docs[btop]  # (q, pool, d), (q, m, d)
            sim = np.einsum("qpd,qmd->qpm", cv, bv).max(axis=2)
            keep = (sim < tau) | ~has_b[:, None]
            cand_scores = np.where(keep, np.take_along_axis(sa, cand, 1), -np.inf)
            order = topk_rows(cand_scores, k)
            picked = np.take_along_axis(cand, np.maximum(order, 0), 1)
            out[s:s + chunk] = np.where(order >= 0, picked, -1)
        return out


def slq_text(q: ExclusionQuery) -> str:
    text = "images of " + " and ".join(q.include)
    if q.exclude:
        text += " without " + " or ".join(q.exclude)
    return text


def keyword_reference(captions: Sequence[Sequence[str]], queries: Sequence[ExclusionQuery], k: int = 10) -> np.ndarray:
    """Not a retrieval method but a reference: what the captions' own words can tell.

    A document scores by how often its captions name A (each word of A or its plural, weighted by
    inverse document frequency); a document whose captions name B (likewise) is dropped. The labels
    behind the benchmark are objects in the pixels, so this bounds what caption-space methods can
    see of an object nobody mentions.
    """
    import scipy.sparse as sp

    from sparse_engine.encoders.spine import tokenize

    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, caps in enumerate(captions):
        for cap in caps:
            for tok in tokenize(cap):
                rows.append(i)
                cols.append(vocab.setdefault(tok, len(vocab)))
    counts = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(captions), max(len(vocab), 1)))
    counts.sum_duplicates()
    df = np.asarray((counts > 0).sum(axis=0)).ravel() / max(len(captions), 1)
    idf = np.log(1.0 / (df + 1e-4)).astype(np.float32)

    def forms(term: str) -> list[int]:
        return [vocab[f] for t in tokenize(term) for f in (t, t + "s", t + "es") if f in vocab]

    def term_matrix(lists: list[list[str]], weights: np.ndarray) -> sp.csr_matrix:
        r, c = [], []
        for i, terms in enumerate(lists):
            for j in {j for t in terms for j in forms(t)}:
                r.append(i)
                c.append(j)
        return sp.csr_matrix((weights[c] if c else np.zeros(0, np.float32), (r, c)), shape=(len(lists), counts.shape[1]))

    scores = np.asarray((term_matrix([q.include for q in queries], idf) @ counts.T).todense(), dtype=np.float32)
    named_b = np.asarray((term_matrix([q.exclude for q in queries], np.ones_like(idf)) @ counts.T).todense()) > 0
    return topk_rows(np.where(named_b | (scores <= 0), -np.inf, scores), k)
