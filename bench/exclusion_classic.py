"""Classic retrieval in caption space: one held-out caption per image against the other captions.

caption -> image: the held-out caption is the query, documents are the images pooled from their
other captions; image -> caption: the pooled image is the query, the candidates are the 5,000
held-out captions. One relevant item per query, so AP@k equals RR@k; computed with ir-measures.
"""
from __future__ import annotations

import ir_measures
import numpy as np
import scipy.sparse as sp
from ir_measures import AP

from bench.exclusion_data import CocoCollection
from bench.exclusion_methods import pool_dense, topk_rows
from sparse_engine.encoders.base import flatten_sets

CUTOFFS = (1, 5, 10)


def split_captions(coll: CocoCollection) -> tuple[list[str], list[list[str]]]:
    """Hold out each image's first caption; the rest build the document."""
    return [c[0] for c in coll.captions], [c[1:] for c in coll.captions]


def ap_at(rankings: np.ndarray, k_list=CUTOFFS) -> dict[str, float]:
    """Query i's only relevant item is i."""
    qrels = {str(i): {str(i): 1} for i in range(len(rankings))}
    run = {str(i): {str(d): float(len(r) - j) for j, d in enumerate(r) if d >= 0} for i, r in enumerate(rankings)}
    measures = [AP @ k for k in k_list]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    return {f"AP@{k}": float(agg[AP @ k]) for k in k_list}


def _both_ways(queries_mat, docs_mat) -> dict[str, float]:
    scores = queries_mat @ docs_mat.T
    scores = np.asarray(scores.todense() if sp.issparse(scores) else scores, dtype=np.float32)
    out = {f"caption->image {k}": v for k, v in ap_at(topk_rows(scores, max(CUTOFFS))).items()}
    out |= {f"image->caption {k}": v for k, v in ap_at(topk_rows(scores.T.copy(), max(CUTOFFS))).items()}
    return out


def dense_classic(encoder, coll: CocoCollection) -> dict[str, float]:
    held, rest = split_captions(coll)
    flat, owner = flatten_sets(rest)
    docs = pool_dense(encoder.embed_text(flat), owner, len(rest))
    return _both_ways(encoder.embed_text(held), docs)


def sparse_classic(encoder, coll: CocoCollection, pooling: str = "mean") -> dict[str, float]:
    held, rest = split_captions(coll)
    docs = sp.csr_matrix(encoder.encode_caption_sets(rest, pooling=pooling), dtype=np.float32)
    return _both_ways(sp.csr_matrix(encoder.encode_text(held), dtype=np.float32), docs)
