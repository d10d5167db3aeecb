"""Numba store vs Lucene on our SR method: the same planned queries, through both backends.

The numba store scores the exact float weights; the Lucene index holds them as integer impacts
(``round(weight / scale)``, 1..255) and takes integer query weights (``integer_query``), with
vetoes and subtractions checked on the exact weights (over-fetch and rescore), as the engine's
``--backend lucene`` does. Reported: both AP@10s, the largest metric difference and the share of
queries whose top-10 set is the same.
"""
from __future__ import annotations

import math
import tempfile
import time

import numpy as np


def compare_backends(bench, sb, k: int = 10, **plan_options) -> dict:
    from sparse_engine.lucene_backend import (LuceneImpactSearcher, build_lucene_index, forward_weights,
                                              integer_query)  # fmt: skip
    from sparse_engine.planner import PlanOptions
    from sparse_engine.traverse import batch_search

    store = sb.build_store()
    specs = sb.plan_specs(**plan_options)
    n = len(specs)
    t0 = time.perf_counter()
    found = batch_search(store, specs, k, threads=2)
    numba_s = time.perf_counter() - t0
    numba_rank = np.full((n, k), -1, np.int64)
    for i, (docs, _) in enumerate(found):
        numba_rank[i, : len(docs)] = docs
    lucene_rank = np.full((n, k), -1, np.int64)
    pos = {d: i for i, d in enumerate(bench.coll.doc_ids)}
    with tempfile.TemporaryDirectory(prefix="exclusion-lucene-") as tmp:
        t0 = time.perf_counter()
        build_lucene_index(tmp, bench.coll.doc_ids, store.quantised_csr())
        build_s = time.perf_counter() - t0
        searcher = LuceneImpactSearcher(tmp, forward=forward_weights(store))
        t0 = time.perf_counter()
        for i, spec in enumerate(specs):
            ints, _ = integer_query(spec.weights)
            thr = spec.veto_threshold
            veto = 255.0 if math.isinf(thr) else min(255.0, thr / store.scale)
            ids, _ = searcher.search(spec.dims, ints, k, spec.veto_dims, veto_impact=veto, must_dims=spec.must_dims)
            lucene_rank[i, : len(ids)] = [pos[d] for d in ids]
        lucene_s = time.perf_counter() - t0
        searcher.close()
    a_all, a_hard, _ = bench.evaluate(numba_rank)
    b_all, b_hard, _ = bench.evaluate(lucene_rank)
    diff = max(max(abs(a_all[m] - b_all[m]) for m in a_all), max(abs(a_hard[m] - b_hard[m]) for m in a_hard))
    same = float(np.mean([set(x) == set(y) for x, y in zip(numba_rank, lucene_rank)]))
    return {"strategy": PlanOptions(**plan_options).strategy, "numba AP@10": round(a_all["AP@10"], 4),
            "lucene AP@10": round(b_all["AP@10"], 4), "max metric difference": round(float(diff), 5),
            "queries with identical top-10 set": round(same, 4), "numba seconds (batch, 2 threads)": round(numba_s, 2),
            "lucene build seconds": round(build_s, 1), "lucene search seconds (one at a time)": round(lucene_s, 2)}
