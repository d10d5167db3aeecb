"""Metrics of the exclusion benchmark: MRR, nDCG and AP at 1/3/10 through ir-measures, plus violation@10.

AP@k follows the seed paper's convention: average precision over the top k normalised by the number
of relevant documents *retrieved* in the top k (trec_eval's AP with the judgements restricted to the
retrieved top k). trec_eval's own AP@k divides by all relevant documents (thousands here for "person
without ..."), which would make every method score ~0.05; the reference numbers of the paper
(AvgEmb AP@10 0.924) are reproduced only with this normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass

import ir_measures
import numpy as np
from ir_measures import AP, RR, nDCG

CUTOFFS = (1, 3, 10)
METRIC_NAMES = [f"{m}@{k}" for m in ("MRR", "nDCG", "AP") for k in CUTOFFS] + ["violation@10"]


@dataclass
class Judged:
    """What the metrics need from a query: its id, its relevant doc ids, and which docs violate it."""

    qid: str
    relevant: set[str]
    violating: set[str] | None  # docs holding an excluded concept; None when unknown


def _run_dict(qids: list[str], rankings: list[list[str]], k: int) -> dict[str, dict[str, float]]:
    # Scores encode the rank so that ir-measures keeps our order (it sorts by score, ties by id).
    return {q: {d: float(len(r) - i) for i, d in enumerate(r[:k])} for q, r in zip(qids, rankings)}


def per_query_metrics(judged: list[Judged], rankings: list[list[str]]) -> dict[str, np.ndarray]:
    """One array per metric name, aligned with ``judged``. ``rankings[i]`` is doc ids, best first."""
    if len(judged) != len(rankings):
        raise ValueError("one ranking per query is needed")
    qids = [j.qid for j in judged]
    if len(set(qids)) != len(qids):
        raise ValueError("query ids must be unique")
    pos = {q: i for i, q in enumerate(qids)}
    out = {name: np.zeros(len(judged)) for name in METRIC_NAMES}
    full_qrels = {j.qid: {d: 1 for d in j.relevant} for j in judged}
    run = _run_dict(qids, rankings, max(CUTOFFS))
    measures = [RR @ k for k in CUTOFFS] + [nDCG @ k for k in CUTOFFS]
    names = {str(RR @ k): f"MRR@{k}" for k in CUTOFFS} | {str(nDCG @ k): f"nDCG@{k}" for k in CUTOFFS}
    for m in ir_measures.iter_calc(measures, full_qrels, run):
        out[names[str(m.measure)]][pos[m.query_id]] = m.value
    for k in CUTOFFS:
        top = _run_dict(qids, rankings, k)
        # Restricting judgements to the retrieved top k turns trec_eval's AP@k into the paper's AP@k.
        qrels = {q: {d: 1 for d in top[q] if d in full_qrels[q]} for q in qids}
        qrels = {q: r for q, r in qrels.items() if r}
        for m in ir_measures.iter_calc([AP @ k], qrels, top):
            out[f"AP@{k}"][pos[m.query_id]] = m.value
    for i, (j, ranking) in enumerate(zip(judged, rankings)):
        top10 = ranking[:10]
        if j.violating is None or not top10:
            out["violation@10"][i] = np.nan
        else:
            out["violation@10"][i] = sum(d in j.violating for d in top10) / len(top10)
    return out


def summarize(per_query: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean of each metric over the queries selected by ``mask`` (NaN-aware for violation)."""
    result = {}
    for name, values in per_query.items():
        v = values if mask is None else values[mask]
        result[name] = float(np.nanmean(v)) if len(v) and not np.all(np.isnan(v)) else float("nan")
    return result
