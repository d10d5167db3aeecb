"""numpy / scipy reference twins of the kernels in kernels.py (the tests compare both on random input)."""
from __future__ import annotations

import numpy as np


def reference_postings(indptr, indices, imps, n_dims):
    """(post_ptr, post_docs, post_imps) by lexsort: dim, then impact descending, then doc."""
    docs = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    order = np.lexsort((docs, -imps.astype(np.int64), indices))
    ptr = np.zeros(n_dims + 1, np.int64)
    np.cumsum(np.bincount(indices, minlength=n_dims), out=ptr[1:])
    return ptr, docs[order].astype(np.int32), imps[order]


def reference_topk(impacts, scale, dims, weights, veto_dims, veto_thr, must_dims, k):
    """Exact top-k with scipy from a (n_docs x dim) CSR of weights / scale; (docs, scores)."""
    q = np.zeros(impacts.shape[1], np.float64)
    np.add.at(q, dims, weights)
    x = impacts.astype(np.float64)
    scores = x @ q
    alive = scores > 0
    if len(veto_dims) and veto_thr < np.inf:
        alive &= ~((x[:, veto_dims].toarray() * scale) > veto_thr).any(axis=1)
    if len(must_dims):
        alive &= np.diff(x[:, must_dims].tocsr().indptr) > 0
    docs = np.flatnonzero(alive)
    order = np.lexsort((docs, -scores[docs]))[:k]
    return docs[order].astype(np.int64), (scores[docs[order]] * scale).astype(np.float32)
