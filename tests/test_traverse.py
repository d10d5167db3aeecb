"""traverse.search / batch_search: exactness of early termination, ordering, edge cases, errors."""
import numpy as np
import pytest
import scipy.sparse as sp

from sparse_engine import kernels_reference, traverse
from sparse_engine.errors import SparseEngineError
from sparse_engine.query_spec import QuerySpec
from sparse_engine.store import PostingStore


def zipf_docs(n_docs, dim, nnz, seed):
    """Zipf-like dim popularity, log-normal weights: the shape early termination must handle."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, dim + 1) ** 0.8
    p = p[rng.permutation(dim)] / p.sum()
    rows = np.repeat(np.arange(n_docs), nnz)
    cols = rng.choice(dim, n_docs * nnz, p=p)
    x = sp.csr_matrix((rng.lognormal(0, 0.8, rows.size).astype(np.float32), (rows, cols)), shape=(n_docs, dim))
    x.sum_duplicates()
    return x, p


@pytest.fixture(scope="module")
def zipf():
    docs, p = zipf_docs(20_000, 300, 25, seed=4)
    return PostingStore.build(docs), p


def queries(p, n, seed, negative=False, must=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        chosen = rng.choice(len(p), 12, replace=False, p=p)
        inc, exc = chosen[: rng.integers(2, 10)], chosen[9:]
        w = rng.lognormal(0, 0.8, inc.size).astype(np.float32)
        if negative:
            w[: rng.integers(0, 3)] *= -1
        thr = float(rng.choice([np.inf, 0.0, 1.0, 2.5]))
        out.append(QuerySpec(inc, w, veto_dims=exc, veto_threshold=thr,
                             must_dims=chosen[:2] if must and i % 2 else ()))  # fmt: skip
    return out


def reference(s, spec, k):
    """scipy on the store's exact weights (not the impacts: those only bound the scores)."""
    dims, w, veto, thr, must = traverse.prepare(s, spec)
    exact = sp.csr_matrix((np.asarray(s.fwd_w, np.float64), s.fwd_dims, s.fwd_ptr), shape=(s.n_docs, s.dim))
    return kernels_reference.reference_topk(exact, s.scale, dims, w, veto, thr, must, k)


@pytest.mark.parametrize("negative, must", [(False, False), (True, False), (False, True)])
def test_early_termination_is_exact_on_zipf_data(zipf, negative, must):
    s, p = zipf
    traverse.STATS[:] = 0
    specs = queries(p, 40, seed=int(negative) + 2 * int(must), negative=negative, must=must)
    for i, spec in enumerate(specs):
        k = (1, 10, 50)[i % 3]
        exact = traverse.search(s, spec, k=k)
        full = traverse.search(s, spec, k=k, mode="exhaustive")
        want = reference(s, spec, k)
        np.testing.assert_array_equal(exact[0], full[0])  # same sums in the same order: bit-identical
        np.testing.assert_array_equal(exact[1], full[1])
        np.testing.assert_array_equal(exact[0], want[0])  # real-valued weights: no ties to reorder
        np.testing.assert_allclose(exact[1], want[1], rtol=1e-6)  # scipy sums in another order
        assert exact[0].dtype == np.int64 and exact[1].dtype == np.float32
    total = sum(int(np.diff(s.post_ptr)[np.asarray(sp_.dims)[sp_.weights > 0]].sum()) for sp_ in specs)
    assert 0 < traverse.STATS[0] < 0.7 * total  # it did terminate early (the gain grows with N)


def test_scores_are_dequantised_dot_products_sorted_with_doc_ties(zipf):
    s, p = zipf
    spec = QuerySpec([int(np.argmax(p))], [1.0])  # one dim: many equal impacts -> ties
    docs, scores = traverse.search(s, spec, k=200)
    assert np.all(np.diff(scores) <= 0)
    for a in range(len(docs) - 1):
        if scores[a] == scores[a + 1]:
            assert docs[a] < docs[a + 1]
    d, w = s.doc_vector(int(docs[0]))
    assert scores[0] == pytest.approx(float(w[d == spec.dims[0]][0]), rel=1e-6)


def test_approx_mode_returns_real_hits_reading_less(zipf):
    s, p = zipf
    recall, read = [], {}
    for mode in ("approx", "exact"):
        traverse.STATS[:] = 0
        for spec in queries(p, 30, seed=9):
            docs, scores = traverse.search(s, spec, k=10, mode=mode)
            if mode == "approx":
                want = reference(s, spec, s.n_docs)
                valid = dict(zip(want[0].tolist(), want[1].tolist()))
                assert all(valid[d] == pytest.approx(sc, rel=1e-6) for d, sc in zip(docs.tolist(), scores.tolist()))
                assert np.all(np.diff(scores) <= 0)
                recall.append(len(set(docs.tolist()) & set(want[0][:10].tolist())) / max(1, min(10, len(want[0]))))
        read[mode] = int(traverse.STATS[0])
    assert read["approx"] < read["exact"]
    assert np.mean(recall) > 0.6  # ~0.8 here; ~0.96 of exact's top-10 at 1M docs (bench/speed.py)


@pytest.mark.parametrize("mode", ["exact", "exhaustive", "approx"])
def test_batch_matches_single_searches(zipf, mode):
    s, p = zipf
    specs = queries(p, 25, seed=11, negative=True, must=True)
    for threads in (1, 2):
        got = traverse.batch_search(s, specs, k=10, threads=threads, mode=mode)
        assert len(got) == len(specs)
        for spec, (docs, scores) in zip(specs, got):
            want = traverse.search(s, spec, k=10, mode=mode)
            np.testing.assert_array_equal(docs, want[0])
            np.testing.assert_array_equal(scores, want[1])
    assert traverse.batch_search(s, [], k=10) == []


@pytest.fixture(scope="module")
def small():
    x = sp.csr_matrix(np.array([[2.0, 0, 1.0, 0], [0, 3.0, 1.0, 0], [1.0, 1.0, 0, 0]], np.float32))
    return PostingStore.build(x, scale=1.0)  # dim 3 has no postings


def test_keyword_and_spec_forms_agree(small):
    by_spec = traverse.search(small, QuerySpec([0, 2], [1.0, 0.5]), 10)
    by_args = traverse.search(small, np.array([0, 2], np.int32), np.array([1.0, 0.5], np.float32), k=10)
    np.testing.assert_array_equal(by_spec[0], by_args[0])
    np.testing.assert_array_equal(by_spec[0], [0, 2, 1])
    np.testing.assert_allclose(by_spec[1], [2.5, 1.0, 0.5])


@pytest.mark.parametrize("mode", traverse.MODES)
def test_edge_cases(small, mode):
    def run(spec, k=10):
        return traverse.search(small, spec, k=k, mode=mode)[0].tolist()

    assert run(QuerySpec([3], [1.0])) == []  # empty posting list
    assert run(QuerySpec([0, 1], [1.0, 1.0]), k=100) == [1, 0, 2]  # k > n_docs
    assert run(QuerySpec([0], [1.0], veto_dims=[0, 1], veto_threshold=0.0)) == []  # all vetoed
    assert run(QuerySpec([0], [1.0], veto_dims=[0], veto_threshold=1.5)) == [2]  # veto above 1.5 only
    assert run(QuerySpec([2], [-1.0])) == []  # only negative weights: nothing scores > 0
    assert run(QuerySpec([0, 2], [1.0, -1.5])) == [2, 0]  # subtraction reorders: 0 -> 0.5, 1 -> -1.5
    assert run(QuerySpec([0, 1], [1.0, 1.0], must_dims=[2])) == [1, 0]
    assert run(QuerySpec([0, 0], [0.5, 0.5])) == [0, 2]  # duplicate dims merged
    assert run(QuerySpec([], [])) == []


@pytest.mark.parametrize(
    "call, message",
    [(lambda s: traverse.search(s, QuerySpec([1, 4], [1.0, 1.0])), "query dimension 4 is out of range"),
     (lambda s: traverse.search(s, QuerySpec([1], [1.0], veto_dims=[-1])), "veto dimension -1"),
     (lambda s: traverse.search(s, QuerySpec([1], [1.0], must_dims=[9])), "must dimension 9"),
     (lambda s: traverse.search(s, QuerySpec([1], [1.0]), k=0), "k must be a positive integer"),
     (lambda s: traverse.search(s, QuerySpec([1], [1.0]), mode="fast"), "unknown search mode"),
     (lambda s: traverse.search(s, QuerySpec([1], [np.nan])), "finite"),
     (lambda s: traverse.search(s, QuerySpec([1], [1.0], veto_dims=[1], veto_threshold=np.nan)), "NaN"),
     (lambda s: traverse.search(s, [1, 2], [1.0]), "bad query"),
     (lambda s: traverse.search(s, [1.5], [1.0]), "integers"),
     (lambda s: traverse.batch_search(s, [QuerySpec([1], [1.0]), "dog"], 10), "batch query 1"),
     (lambda s: traverse.batch_search(s, [QuerySpec([1], [1.0])], 10, threads=0), "threads")],
)  # fmt: skip
def test_bad_input_gives_one_line_errors(small, call, message):
    with pytest.raises(SparseEngineError, match=message) as info:
        call(small)
    assert "\n" not in str(info.value)


def test_empty_store():
    s = PostingStore.build(sp.csr_matrix((0, 5), dtype=np.float32))
    docs, scores = traverse.search(s, QuerySpec([1], [1.0]), k=10)
    assert docs.size == 0 and scores.size == 0
    assert [d.size for d, _ in traverse.batch_search(s, [QuerySpec([1], [1.0])], k=3)] == [0]


def test_small_collections_read_every_posting_with_the_same_results(small, zipf):
    spec = QuerySpec([0, 2], [1.0, 0.5])
    traverse.STATS[:] = 0
    got = traverse.search(small, spec, k=2)
    assert small.n_docs < traverse.EXHAUSTIVE_BELOW and traverse.STATS[0] == 0  # no bounded reading
    want = traverse.search(small, spec, k=2, mode="exhaustive")
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    s, p = zipf  # at the threshold and above: early termination
    assert s.n_docs >= traverse.EXHAUSTIVE_BELOW
    traverse.search(s, queries(p, 1, seed=1)[0], k=10)
    assert traverse.STATS[0] > 0
