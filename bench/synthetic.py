"""Seeded synthetic collection shaped like ours: N docs x 1,000 dims, ~50 non-zeros per doc.

- dim popularity is Zipf-like (p ~ 1 / rank^ZIPF over a shuffled dim order), so a few dims sit
  in most documents and most dims are rare, as with learned sparse concepts;
- weights are positive and skewed: log-normal, times a per-dim factor that gives popular dims
  smaller weights (the way common concepts carry less signal), so each doc has a few strong dims;
- queries: ~8 include dims (6..10) and 2..4 exclude dims, both drawn by popularity (disjoint),
  include weights log-normal; the exclusion is a document veto at the median document weight
  (a doc that clearly has an excluded concept is dropped). ``plain`` holds the same queries
  without the exclusion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from sparse_engine.query_spec import QuerySpec

ZIPF = 0.8
SIGMA = 0.8  # log-normal spread of the weights
CHUNK = 100_000  # documents generated at a time (bounded memory)


@dataclass
class Collection:
    docs: sp.csr_matrix  # float32, n_docs x dim, canonical (sorted, no duplicates)
    plain: list[QuerySpec]  # include dims only
    excl: list[QuerySpec]  # the same include dims + a veto on the exclude dims
    popularity: np.ndarray  # probability of each dim per draw


def popularity(dim: int, rng: np.random.Generator) -> np.ndarray:
    p = 1.0 / np.arange(1, dim + 1) ** ZIPF
    p = p[rng.permutation(dim)]
    return p / p.sum()


def make_docs(n_docs: int, dim: int, nnz: int, p: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """Documents with ~``nnz`` distinct dims each (drawn with replacement, duplicates merged)."""
    # Draw a little more than nnz so that, after merging repeats of popular dims, ~nnz remain.
    expected_unique = lambda m: float(np.sum(1 - (1 - p) ** m))  # noqa: E731
    draws = nnz
    while expected_unique(draws) < nnz and draws < 4 * nnz:
        draws += 1
    dim_factor = (p / p.max()) ** -0.25  # rarer dims weigh more
    parts = []
    for lo in range(0, n_docs, CHUNK):
        n = min(CHUNK, n_docs - lo)
        cols = rng.choice(dim, size=(n, draws), p=p).astype(np.int32)
        cols.sort(axis=1)
        keep = np.ones_like(cols, dtype=bool)
        keep[:, 1:] = cols[:, 1:] != cols[:, :-1]  # drop repeats (a doc has a dim once)
        counts = keep.sum(axis=1)
        indices = cols[keep]
        data = rng.lognormal(0.0, SIGMA, size=indices.size).astype(np.float32)
        data *= dim_factor[indices].astype(np.float32)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        parts.append(sp.csr_matrix((data, indices, indptr), shape=(n, dim)))
    docs = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
    docs.has_sorted_indices = True
    return docs


def make_queries(docs: sp.csr_matrix, p: np.ndarray, n_queries: int, rng: np.random.Generator):
    dim = docs.shape[1]
    threshold = float(np.median(docs.data)) if docs.nnz else 0.0
    plain, excl = [], []
    for _ in range(n_queries):
        n_inc, n_exc = int(rng.integers(6, 11)), int(rng.integers(2, 5))
        chosen = rng.choice(dim, size=n_inc + n_exc, replace=False, p=p)
        inc, exc = np.sort(chosen[:n_inc]), np.sort(chosen[n_inc:])
        w = rng.lognormal(0.0, SIGMA, size=n_inc).astype(np.float32)
        plain.append(QuerySpec(inc, w, text="synthetic"))
        excl.append(QuerySpec(inc, w, veto_dims=exc, veto_threshold=threshold, text="synthetic"))
    return plain, excl


def synthetic(n_docs: int, dim: int = 1000, nnz: int = 50, n_queries: int = 200, seed: int = 0) -> Collection:
    """The benchmark collection: same arguments, same vectors and queries."""
    rng = np.random.default_rng(seed)
    p = popularity(dim, rng)
    docs = make_docs(n_docs, dim, nnz, p, rng)
    plain, excl = make_queries(docs, p, n_queries, np.random.default_rng(seed + 1))
    return Collection(docs, plain, excl, p)
