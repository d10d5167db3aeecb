"""Search entry points over a PostingStore: exact (early termination), exhaustive, approximate, batch.

Modes:
- ``"exact"`` (default): score-at-a-time over the impact-ordered lists with a max-score bound;
  the same top-k and scores as ``"exhaustive"``, usually after reading a small part of the
  postings. Below ``EXHAUSTIVE_BELOW`` documents it runs the exhaustive kernel instead (the
  same results, bit for bit: on 5,000 real documents reading everything is ~2x faster than
  bounding it, bench/results/speed_coco.md);
- ``"exhaustive"``: term-at-a-time over every posting of the query dims (the baseline);
- ``"approx"``: the early-termination loop stopping once the k-th score beats ``APPROX_FACTOR``
  times the bound, returning the docs scored by then (faster, may miss documents; its recall
  is measured in bench/speed.py).

Results: (doc indices int64, scores float32) sorted by score descending, ties by doc index
ascending; score = sum of q_w * impact * scale; only documents scoring > 0 are returned.
"""
from __future__ import annotations

import math
import threading

import numba
import numpy as np

from . import kernels
from .errors import SparseEngineError
from .query_spec import QuerySpec
from .store import PostingStore

APPROX_FACTOR = 0.8
EXHAUSTIVE_BELOW = 20_000  # documents: under this, "exact" reads every posting (same results)
MODES = ("exact", "exhaustive", "approx")
_FACTORS = {"exact": 1.0, "approx": APPROX_FACTOR, "exhaustive": 1.0}
# Early-termination counters summed over all searches (postings read, docs seen, docs scored
# exactly, bound checks): bench/speed.py reports them; reset with STATS[:] = 0.
STATS = np.zeros(4, np.int64)


class _Workspace(threading.local):
    """Per-thread reusable buffers for single searches on one store (left zeroed by the kernels),
    one set per kind, so alternating modes does not reallocate."""

    def get(self, store: PostingStore, exhaustive: bool) -> dict:
        key = (id(store), store.n_docs, store.dim)
        if getattr(self, "key", None) != key:
            self.key, self.buffers = key, {}
        if exhaustive not in self.buffers:
            n, buf = store.n_docs, {}
            if exhaustive:
                buf["acc"] = np.zeros(n, np.float64)
            else:
                buf["part"], buf["seen_by"] = kernels.partial_workspace(n)
            buf["seen"] = np.zeros(n + 1, np.int32)  # + 1: see kernels.saat_topk
            buf["qvec"], buf["dflag"] = np.zeros(store.dim, np.float64), np.zeros(store.dim, np.uint8)
            self.buffers[exhaustive] = buf
        return self.buffers[exhaustive]


_WS = _Workspace()


def _dims(store: PostingStore, dims, what: str) -> np.ndarray:
    arr = np.asarray(dims)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise SparseEngineError(f"{what} dims must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= store.dim)]
    if bad.size:
        raise SparseEngineError(f"{what} dimension {int(bad[0])} is out of range: the index has {store.dim} dims (0..{store.dim - 1})")
    return arr


def prepare(store: PostingStore, spec: QuerySpec):
    """Canonical kernel inputs: unique ascending dims with summed float64 weights, zero weights
    dropped, unique veto/must dims, the veto threshold as float64 (inf when there is none)."""
    dims = _dims(store, spec.dims, "query")
    weights = np.asarray(spec.weights, dtype=np.float64).reshape(-1)
    if weights.shape != dims.shape:
        raise SparseEngineError(f"query has {dims.size} dims but {weights.size} weights")
    if not np.isfinite(weights).all():
        raise SparseEngineError("query weights must be finite numbers")
    uniq, inverse = np.unique(dims, return_inverse=True)
    summed = np.bincount(inverse, weights=weights, minlength=uniq.size) if uniq.size else weights[:0]
    keep = summed != 0
    thr = float(spec.veto_threshold)
    if math.isnan(thr):
        raise SparseEngineError("veto threshold is NaN")
    veto = np.unique(_dims(store, spec.veto_dims, "veto")).astype(np.int32)
    must = np.unique(_dims(store, spec.must_dims, "must")).astype(np.int32)
    return uniq[keep].astype(np.int32), summed[keep].astype(np.float64), veto, thr, must


def _check(store: PostingStore, k: int, mode: str) -> int:
    if not isinstance(store, PostingStore):
        raise SparseEngineError(f"expected a PostingStore, got {type(store).__name__}")
    if mode not in MODES:
        raise SparseEngineError(f"unknown search mode {mode!r}: choose one of {', '.join(MODES)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SparseEngineError(f"k must be a positive integer, got {k!r}")
    return min(int(k), store.n_docs)


def _kernel_mode(store: PostingStore, mode: str) -> str:
    return "exhaustive" if mode == "exact" and store.n_docs < EXHAUSTIVE_BELOW else mode


def _spec(q_dims, q_weights, veto_dims, veto_threshold, must_dims) -> QuerySpec:
    if isinstance(q_dims, QuerySpec):
        if q_weights is not None:
            raise SparseEngineError("pass either a QuerySpec or dims + weights, not both")
        return q_dims
    if q_weights is None:
        raise SparseEngineError("query weights are missing")
    for name, dims in (("query", q_dims), ("veto", veto_dims), ("must", must_dims)):
        arr = np.asarray(dims)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise SparseEngineError(f"{name} dims must be integers, got {arr.dtype}")
    try:
        return QuerySpec(q_dims, q_weights, veto_dims, veto_threshold, must_dims)
    except ValueError as exc:
        raise SparseEngineError(f"bad query: {exc}") from None


def search(store: PostingStore, q_dims, q_weights=None, k: int = 10, veto_dims=(),
           veto_threshold: float = float("inf"), must_dims=(), mode: str = "exact"):  # fmt: skip
    """Top-k of one query: ``search(store, spec, k)`` or ``search(store, dims, weights, k, ...)``.

    Returns (doc indices int64, scores float32), best first, ties by doc index ascending.
    """
    if isinstance(q_dims, QuerySpec) and isinstance(q_weights, (int, np.integer)):
        q_weights, k = None, q_weights  # search(store, spec, 10): k given positionally
    spec = _spec(q_dims, q_weights, veto_dims, veto_threshold, must_dims)
    k = _check(store, k, mode)
    mode = _kernel_mode(store, mode)
    dims, weights, veto, thr, must = prepare(store, spec)
    out_docs, out_scores = np.empty(k, np.int64), np.empty(k, np.float32)
    if k == 0 or not (weights > 0).any():
        return out_docs[:0], out_scores[:0]
    s = store
    ws = _WS.get(store, mode == "exhaustive")
    if mode == "exhaustive":
        n = kernels.jit.exhaustive_topk(s.post_ptr, s.post_docs, s.post_imps, s.fwd_ptr, s.fwd_dims, s.fwd_w,
                                        s.scale, dims, weights, veto, thr, must, ws["qvec"], ws["dflag"],
                                        ws["acc"], ws["seen"], out_docs, out_scores)  # fmt: skip
    else:
        n = kernels.jit.saat_topk(s.post_ptr, s.post_docs, s.post_imps, s.fwd_ptr, s.fwd_dims,
                                  s.fwd_w, s.scale, dims, weights, veto, thr, must, _FACTORS[mode],
                                  ws["qvec"], ws["dflag"], ws["part"], ws["seen_by"], ws["seen"], out_docs,
                                  out_scores, STATS)  # fmt: skip
    return out_docs[:n], out_scores[:n]


def _flat(parts: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([len(p) for p in parts], out=ptr[1:])
    flat = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    return flat, ptr


def batch_search(store: PostingStore, specs: list[QuerySpec], k: int = 10, threads: int = 2,
                 mode: str = "exact") -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Run ``specs`` in parallel over ``threads`` numba threads; one (docs, scores) per spec."""
    k = _check(store, k, mode)
    mode = _kernel_mode(store, mode)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise SparseEngineError(f"threads must be a positive integer, got {threads!r}")
    specs = list(specs)
    for i, spec in enumerate(specs):
        if not isinstance(spec, QuerySpec):
            raise SparseEngineError(f"batch query {i} is a {type(spec).__name__}, not a QuerySpec")
    prepared = [prepare(store, spec) for spec in specs]
    nq = len(prepared)
    if nq == 0:
        return []
    q_dims, q_ptr = _flat([p[0] for p in prepared], np.int32)
    q_w, _ = _flat([p[1] for p in prepared], np.float64)
    v_dims, v_ptr = _flat([p[2] for p in prepared], np.int32)
    m_dims, m_ptr = _flat([p[4] for p in prepared], np.int32)
    v_thr = np.array([p[3] for p in prepared], np.float64)
    out_docs = np.zeros((nq, k), np.int64)
    out_scores = np.zeros((nq, k), np.float32)
    out_n = np.zeros(nq, np.int64)
    if k > 0:
        threads = min(int(threads), numba.config.NUMBA_NUM_THREADS)
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            s = store
            chunks = min(nq, threads * 4)
            stats = np.zeros((chunks, 4), np.int64)  # a few chunks per thread balance uneven queries
            kernels.jit.batch_topk(s.post_ptr, s.post_docs, s.post_imps, s.fwd_ptr, s.fwd_dims,
                                   s.fwd_w, s.scale, q_ptr, q_dims, q_w, v_ptr, v_dims, v_thr,
                                   m_ptr, m_dims, _FACTORS[mode], mode == "exhaustive", chunks,
                                   out_docs, out_scores, out_n, stats)  # fmt: skip
            STATS[:] += stats.sum(axis=0)
        finally:
            numba.set_num_threads(previous)
    return [(out_docs[i, : out_n[i]].copy(), out_scores[i, : out_n[i]].copy()) for i in range(nq)]
