"""Each kernel: the njit copy against its plain-Python body against a numpy/scipy reference."""
import numpy as np
import pytest
import scipy.sparse as sp

from sparse_engine import kernels, kernels_reference
from sparse_engine.store import PostingStore

JIT, PLAIN = kernels.jit, kernels


def random_impacts(n_docs=300, dim=40, density=0.15, seed=0, zipf=True):
    """Integer weights up to 234 (many ties); Zipf-like dim popularity when ``zipf``."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, dim + 1) ** (0.9 if zipf else 0.0)
    mask = rng.random((n_docs, dim)) < density * dim * p / p.sum()
    values = rng.integers(1, 40, size=(n_docs, dim)) * 6  # multiples of 6: many equal scores
    return sp.csr_matrix(np.where(mask, values, 0).astype(np.float32))


@pytest.fixture(scope="module")
def store():
    # Scale 1: weight / scale are exact integers, so every path's sums are exact (ties included).
    return PostingStore.build(random_impacts(), scale=1.0)


def forward_csr(s):
    """The store's exact weights / scale, as the reference kernels take them."""
    return sp.csr_matrix((np.asarray(s.fwd_w, np.float64), s.fwd_dims, s.fwd_ptr), shape=(s.n_docs, s.dim))


def random_query(rng, dim, negative=True, veto=True, must=False):
    """Canonical kernel inputs (ascending unique dims), weights multiples of 1/4: exact sums."""
    dims = np.sort(rng.choice(dim, int(rng.integers(1, 8)), replace=False)).astype(np.int32)
    weights = rng.integers(1, 12, dims.size) / 4.0
    if negative:
        weights[rng.random(dims.size) < 0.3] *= -1
    veto_dims = np.unique(rng.choice(dim, int(rng.integers(1, 3)))).astype(np.int32) if veto else np.zeros(0, np.int32)
    thr = float(rng.choice([np.inf, 0.0, 10.0, 40.0])) if veto else np.inf
    must_dims = np.unique(rng.choice(dim, int(rng.integers(1, 3)))).astype(np.int32) if must else np.zeros(0, np.int32)
    return dims, weights.astype(np.float64), veto_dims, thr, must_dims


def run_exhaustive(mod, s, q, k):
    qvec, dflag, acc, seen = np.zeros(s.dim), np.zeros(s.dim, np.uint8), np.zeros(s.n_docs), np.zeros(s.n_docs, np.int32)
    out_d, out_s = np.empty(k, np.int64), np.empty(k, np.float32)
    n = mod.exhaustive_topk(s.post_ptr, s.post_docs, s.post_imps, s.fwd_ptr, s.fwd_dims, s.fwd_w, s.scale,
                            *q[:3], q[3], q[4], qvec, dflag, acc, seen, out_d, out_s)  # fmt: skip
    assert not (acc.any() or qvec.any() or dflag.any())  # workspace handed back zeroed
    return out_d[:n], out_s[:n]


def run_saat(mod, s, q, k, factor=1.0):
    qvec, dflag = np.zeros(s.dim), np.zeros(s.dim, np.uint8)
    guard = np.full(s.n_docs + 2, -7, np.int32)  # the kernel may use n_docs + 1 slots, never more
    (acc, mask), seen = mod.partial_workspace(s.n_docs), guard[: s.n_docs + 1]
    out_d, out_s, stats = np.empty(k, np.int64), np.empty(k, np.float32), np.zeros(4, np.int64)
    n = mod.saat_topk(s.post_ptr, s.post_docs, s.post_imps, s.fwd_ptr, s.fwd_dims, s.fwd_w, s.scale,
                      *q[:3], q[3], q[4], factor, qvec, dflag, acc, mask, seen, out_d, out_s, stats)  # fmt: skip
    assert not (qvec.any() or dflag.any() or acc.any() or mask.any())
    assert guard[-1] == -7
    assert stats[0] <= sum(np.diff(s.post_ptr)[q[0][q[1] > 0]])  # never reads past the lists
    return out_d[:n], out_s[:n]


def test_heap_keeps_best_k_with_ties_by_doc():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, 200).astype(np.float64)  # heavy ties
    docs = rng.permutation(200)
    for mod in (JIT, PLAIN):
        hs, hd, size = np.empty(15), np.empty(15, np.int64), 0
        for s, d in zip(scores, docs):
            size = mod.heap_push(hs, hd, size, s, d)
        out_d, out_s = np.empty(15, np.int64), np.empty(15, np.float32)
        assert mod.heap_finish(hs, hd, size, 2.0, out_d, out_s) == 15
        order = np.lexsort((docs, -scores))[:15]
        np.testing.assert_array_equal(out_d, docs[order])
        np.testing.assert_array_equal(out_s, scores[order] * 2.0)


def test_build_postings_matches_lexsort():
    csr = random_impacts(seed=2)
    imps = csr.data.astype(np.uint8)
    ref = kernels_reference.reference_postings(csr.indptr, csr.indices, imps, csr.shape[1])
    for mod in (JIT, PLAIN):
        ptr, docs, out_imps = np.zeros(csr.shape[1] + 1, np.int64), np.empty(csr.nnz, np.int32), np.empty(csr.nnz, np.uint8)
        mod.build_postings(csr.indptr.astype(np.int64), csr.indices.astype(np.int32), imps, csr.shape[1], ptr, docs, out_imps)
        for got, want in zip((ptr, docs, out_imps), ref):
            np.testing.assert_array_equal(got, want)


def test_bounds_match_numpy_and_bound_the_scores():
    rng = np.random.default_rng(3)
    x = random_impacts(seed=4)
    x.data = (x.data * rng.uniform(0.5, 1.5, x.nnz)).astype(np.float32)  # real-valued weights
    s = PostingStore.build(x)
    dims, weights, _, _, _ = random_query(rng, s.dim, veto=False)
    ceil = sp.csr_matrix((np.ceil(np.asarray(s.fwd_w, np.float64)), s.fwd_dims, s.fwd_ptr), shape=x.shape)
    pos = weights > 0
    want = ceil[:, dims[pos]].toarray() @ weights[pos]
    assert np.all(want * s.scale >= x[:, dims[pos]].toarray() @ weights[pos] - 1e-4)
    for mod in (JIT, PLAIN):
        acc, seen = np.zeros(s.n_docs), np.zeros(s.n_docs, np.int32)
        n = mod.accumulate_bounds(s.post_ptr, s.post_docs, s.post_imps, dims, weights, acc, seen)
        np.testing.assert_allclose(acc, want)
        assert sorted(seen[:n].tolist()) == np.flatnonzero(want).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_topk_kernels_match_scipy(store, seed):
    s, rng = store, np.random.default_rng(10 + seed)
    impacts = forward_csr(s)
    for i in range(12):
        q = random_query(rng, s.dim, must=i % 3 == 0)
        k = int(rng.choice([1, 5, 10, 40]))
        want = kernels_reference.reference_topk(impacts, s.scale, *q, k)
        for got in (run_exhaustive(JIT, s, q, k), run_saat(JIT, s, q, k)):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
    q = random_query(rng, s.dim, must=True)  # the plain bodies are slow: one query each
    want = kernels_reference.reference_topk(impacts, s.scale, *q, 10)
    for got in (run_exhaustive(PLAIN, s, q, 10), run_saat(PLAIN, s, q, 10)):
        np.testing.assert_array_equal(got[0], want[0])


def test_saat_when_every_document_is_seen():
    x = sp.csr_matrix(np.array([[5.0, 1.0], [4.0, 2.0], [3.0, 3.0]], np.float32))
    s = PostingStore.build(x, scale=1.0)
    q = (np.array([0, 1], np.int32), np.array([1.0, 1.0]), np.zeros(0, np.int32), np.inf, np.zeros(0, np.int32))
    for mod in (JIT, PLAIN):
        docs, scores = run_saat(mod, s, q, 2)
        np.testing.assert_array_equal(docs, [0, 1])
        np.testing.assert_array_equal(scores, [6.0, 6.0])


def test_saat_approximate_returns_valid_sorted_hits(store):
    rng = np.random.default_rng(5)
    for _ in range(10):
        q = random_query(rng, store.dim)
        exact = kernels_reference.reference_topk(forward_csr(store), store.scale, *q, store.n_docs)
        docs, scores = run_saat(JIT, store, q, 10, factor=0.5)
        valid = dict(zip(exact[0].tolist(), exact[1].tolist()))
        assert all(valid[d] == sc for d, sc in zip(docs.tolist(), scores.tolist()))  # real scores of allowed docs
        assert np.all(np.diff(scores) <= 0)


def test_batch_kernel_equals_single_queries(store):
    s, rng = store, np.random.default_rng(7)
    queries = [random_query(rng, s.dim, must=i % 2 == 0) for i in range(9)]

    def flat(parts, dtype):
        ptr = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        return np.concatenate(parts).astype(dtype), ptr

    q_dims, q_ptr = flat([q[0] for q in queries], np.int32)
    q_w, _ = flat([q[1] for q in queries], np.float64)
    v_dims, v_ptr = flat([q[2] for q in queries], np.int32)
    m_dims, m_ptr = flat([q[4] for q in queries], np.int32)
    v_thr = np.array([q[3] for q in queries])
    for exhaustive in (False, True):
        out_d, out_s, out_n = np.zeros((9, 10), np.int64), np.zeros((9, 10), np.float32), np.zeros(9, np.int64)
        JIT.batch_topk(s.post_ptr, s.post_docs, s.post_imps, s.fwd_ptr, s.fwd_dims, s.fwd_w, s.scale,
                       q_ptr, q_dims, q_w, v_ptr, v_dims, v_thr, m_ptr, m_dims, 1.0, exhaustive, 4,
                       out_d, out_s, out_n, np.zeros((4, 4), np.int64))  # fmt: skip
        for i, q in enumerate(queries):
            want = kernels_reference.reference_topk(forward_csr(s), s.scale, *q, 10)
            np.testing.assert_array_equal(out_d[i, : out_n[i]], want[0])
            np.testing.assert_array_equal(out_s[i, : out_n[i]], want[1])
