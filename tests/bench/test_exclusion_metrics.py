"""The benchmark's metrics against rankings computed by hand."""
import numpy as np
import pytest

from bench.exclusion_metrics import Judged, per_query_metrics, summarize


def _one(relevant, ranking, violating=None):
    pq = per_query_metrics([Judged("q", set(relevant), violating)], [ranking])
    return {k: float(v[0]) for k, v in pq.items()}


def test_perfect_ranking_scores_one():
    m = _one({"a", "b", "c"}, ["a", "b", "c"], violating=set())
    for name in ("MRR@1", "MRR@10", "AP@1", "AP@3", "AP@10", "nDCG@1", "nDCG@3", "nDCG@10"):
        assert m[name] == pytest.approx(1.0), name
    assert m["violation@10"] == 0.0


def test_hand_computed_mixed_ranking():
    # ranking: x a y b z ; relevant {a, b, c}; violating {x, z}
    m = _one({"a", "b", "c"}, ["x", "a", "y", "b", "z"], violating={"x", "z"})
    assert m["MRR@1"] == 0.0
    assert m["MRR@3"] == pytest.approx(0.5)
    assert m["MRR@10"] == pytest.approx(0.5)
    # AP normalised by relevant retrieved: top3 has a@2 -> 1/2; top10 has a@2, b@4 -> (1/2 + 2/4) / 2
    assert m["AP@1"] == 0.0
    assert m["AP@3"] == pytest.approx(0.5)
    assert m["AP@10"] == pytest.approx(0.5)
    # nDCG@10: DCG = 1/log2(3) + 1/log2(5); ideal with 3 relevant = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["nDCG@10"] == pytest.approx(dcg / ideal, abs=1e-4)
    assert m["nDCG@3"] == pytest.approx((1 / np.log2(3)) / ideal, abs=1e-4)
    assert m["violation@10"] == pytest.approx(2 / 5)


def test_ap_at_k_uses_only_the_top_k():
    # relevant at ranks 1, 3 and 11: rank 11 must not count in AP@10
    ranking = ["r1", "n1", "r2"] + [f"n{i}" for i in range(2, 9)] + ["r3"]
    m = _one({"r1", "r2", "r3"}, ranking)
    assert m["AP@10"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["AP@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["AP@1"] == pytest.approx(1.0)


def test_no_relevant_retrieved_and_unknown_violation():
    m = _one({"a"}, ["x", "y"])
    assert m["AP@10"] == 0.0 and m["MRR@10"] == 0.0 and m["nDCG@10"] == 0.0
    assert np.isnan(m["violation@10"])


def test_summarize_over_a_subset():
    judged = [Judged("q1", {"a"}, set()), Judged("q2", {"b"}, {"a"})]
    pq = per_query_metrics(judged, [["a"], ["a", "b"]])
    assert summarize(pq)["MRR@10"] == pytest.approx(0.75)
    hard = summarize(pq, np.array([False, True]))
    assert hard["MRR@10"] == pytest.approx(0.5)
    assert hard["violation@10"] == pytest.approx(0.5)


def test_rejects_misaligned_input():
    with pytest.raises(ValueError):
        per_query_metrics([Judged("q", {"a"}, None)], [])
