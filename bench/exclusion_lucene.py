"""Numba store vs Lucene on the main SR method: same planned queries, same integer weights.

Lucene takes positive integer query weights, so both backends are given the planner's weights
quantised to 1..255 (negative weights, i.e. subtraction, cannot go to Lucene and are left out of
both); the veto becomes an integer impact bound. Reported: the largest metric difference and the
share of queries whose top 10 is identical.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np
import scipy.sparse as sp

from sparse_engine.errors import SparseEngineError


def integer_query(dims: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = weights > 0
    dims, weights = dims[keep], weights[keep]
    if not len(weights):
        return dims.astype(np.int32), np.zeros(0, np.float32)
    ints = np.clip(np.round(weights / weights.max() * 255), 1, 255).astype(np.float32)
    return dims.astype(np.int32), ints


def compare_backends(bench, sb, strategy: str = "veto", k: int = 10, **plan_options) -> dict:
    from sparse_engine.lucene_backend import LuceneImpactSearcher, build_lucene_index
    from sparse_engine.traverse import search

    store = sb.build_store()
    specs = sb.plan_specs(strategy=strategy, **plan_options)
    impacts = sb.docs.copy()
    impacts.data = np.round(impacts.data / sb.scale).astype(np.float32)
    impacts = sp.csr_matrix(impacts)
    n = len(specs)
    numba_rank = np.full((n, k), -1, np.int64)
    lucene_rank = np.full((n, k), -1, np.int64)
    queries, vetoes = [], set()
    for spec in specs:
        dims, ints = integer_query(spec.dims, spec.weights)
        veto_impact = 255 if not np.isfinite(spec.veto_threshold) else int(np.floor(spec.veto_threshold / sb.scale))
        vetoes.add(veto_impact)
        queries.append((dims, ints, spec.veto_dims, veto_impact))
    if len(vetoes) > 1:
        raise SparseEngineError("the planner gave different veto thresholds per query: cannot batch on Lucene")
    veto_impact = vetoes.pop() if vetoes else 255
    t0 = time.perf_counter()
    for i, (dims, ints, veto_dims, _) in enumerate(queries):
        # impact > veto_impact  <=>  dequantised weight > (veto_impact + 0.5) * scale
        idx, _ = search(store, dims, ints, k=k, veto_dims=veto_dims, veto_threshold=(veto_impact + 0.5) * sb.scale)
        idx = np.asarray(idx)[:k]
        numba_rank[i, :len(idx)] = idx
    numba_s = time.perf_counter() - t0
    pos = {d: i for i, d in enumerate(bench.coll.doc_ids)}
    with tempfile.TemporaryDirectory(prefix="exclusion-lucene-") as tmp:
        t0 = time.perf_counter()
        build_lucene_index(tmp, bench.coll.doc_ids, impacts)
        build_s = time.perf_counter() - t0
        searcher = LuceneImpactSearcher(tmp)
        t0 = time.perf_counter()
        results = searcher.batch_search([(d, w, v) for d, w, v, _ in queries], k=k, veto_impact=veto_impact)
        lucene_s = time.perf_counter() - t0
        searcher.close()
    for i, (ids, _) in enumerate(results):
        idx = [pos[d] for d in ids[:k]]
        lucene_rank[i, :len(idx)] = idx
    a_all, a_hard, _ = bench.evaluate(numba_rank)
    b_all, b_hard, _ = bench.evaluate(lucene_rank)
    diff = max(max(abs(a_all[m] - b_all[m]) for m in a_all), max(abs(a_hard[m] - b_hard[m]) for m in a_hard))
    same = float(np.mean([set(x) == set(y) for x, y in zip(numba_rank, lucene_rank)]))
    return {"strategy": strategy, "numba AP@10": round(a_all["AP@10"], 4), "lucene AP@10": round(b_all["AP@10"], 4),
            "max metric difference": round(float(diff), 5), "queries with identical top-10 set": round(same, 4),
            "veto impact": veto_impact, "numba seconds": round(numba_s, 2),
            "lucene build seconds": round(build_s, 1), "lucene search seconds": round(lucene_s, 2)}
