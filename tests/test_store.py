"""PostingStore: quantisation, impact-ordered lists, forward rows, save/load (mmap) and its checks."""
import json

import numpy as np
import pytest
import scipy.sparse as sp

from sparse_engine import store as store_mod
from sparse_engine.errors import SparseEngineError
from sparse_engine.store import PostingStore, choose_scale


def random_docs(n_docs=500, dim=60, seed=0):
    rng = np.random.default_rng(seed)
    x = sp.random(n_docs, dim, density=0.1, random_state=rng, format="csr", dtype=np.float32)
    x.data = rng.lognormal(0, 0.8, x.nnz).astype(np.float32)
    keep = np.ones(n_docs, np.float32)
    keep[3] = 0  # a document without any dim
    x = sp.csr_matrix(sp.diags(keep) @ x)
    x.eliminate_zeros()
    x.sort_indices()
    return x


@pytest.fixture(scope="module")
def docs():
    return random_docs()


@pytest.fixture(scope="module")
def built(docs):
    return PostingStore.build(docs)


def test_impacts_bound_the_exact_forward_weights(docs, built):
    s = built
    assert (s.dim, s.n_docs, s.nnz) == (docs.shape[1], docs.shape[0], docs.nnz)
    np.testing.assert_allclose(s.fwd_w * s.scale, docs.data, rtol=1e-6)  # exact weights kept
    np.testing.assert_array_equal(s.fwd_dims, docs.indices)
    assert s.post_imps.max() == 255  # the largest weight sets the scale
    csc = docs.tocsc()
    for d in range(s.dim):  # every impact is the ceiling of its weight: an upper bound, never 0
        lo, hi = s.post_ptr[d], s.post_ptr[d + 1]
        weights = csc[s.post_docs[lo:hi], d].toarray().ravel()
        assert np.all(s.post_imps[lo:hi] * s.scale >= weights)
        assert np.all((s.post_imps[lo:hi] - 1) * s.scale < weights) and np.all(s.post_imps[lo:hi] >= 1)
    q = s.quantised_csr()  # Lucene's nearest-integer impacts
    assert q.shape == docs.shape and q.dtype == np.float32
    np.testing.assert_allclose(q.toarray() * s.scale, docs.toarray(), atol=s.scale)
    dims, weights = s.doc_vector(7)
    np.testing.assert_array_equal(dims, docs[7].indices)
    np.testing.assert_allclose(weights, docs[7].data, rtol=1e-6)
    assert s.doc_vector(3)[0].size == 0
    with pytest.raises(SparseEngineError, match="scale .* is too small"):
        PostingStore.build(docs, scale=s.scale / 2)


def test_posting_lists_are_impact_descending_with_doc_ties(docs, built):
    s = built
    csc = sp.csr_matrix((np.ceil(np.asarray(s.fwd_w)), s.fwd_dims, s.fwd_ptr), shape=(s.n_docs, s.dim)).tocsc()
    for d in range(s.dim):
        lo, hi = s.post_ptr[d], s.post_ptr[d + 1]
        docs_d, imps_d = s.post_docs[lo:hi], s.post_imps[lo:hi].astype(int)
        order = np.lexsort((csc[:, d].indices, -csc[:, d].data))
        np.testing.assert_array_equal(docs_d, csc[:, d].indices[order])
        np.testing.assert_array_equal(imps_d, csc[:, d].data[order])
        assert s.max_imp[d] == (imps_d.max() if imps_d.size else 0)


def test_scale_maps_the_largest_weight_to_255():
    even = np.linspace(0.1, 1.0, 10_000).astype(np.float32)
    assert 255 * choose_scale(even) == pytest.approx(1.0, rel=1e-5)
    skewed = np.random.default_rng(0).lognormal(0, 0.8, 100_000).astype(np.float32)
    assert 255 * choose_scale(skewed) == pytest.approx(skewed.max(), rel=1e-5)
    assert choose_scale(np.zeros(0, np.float32)) == 1.0


def test_build_leaves_input_alone_and_merges_duplicates():
    coo = sp.coo_matrix((np.array([1.0, 2.0, 0.0, 3.0], np.float32), ([0, 0, 1, 1], [5, 5, 2, 1])), shape=(2, 8))
    csr = coo.tocsr(copy=True)
    csr.has_canonical_format = False
    raw = sp.csr_matrix((np.array([2.0, 0.0, 1.0], np.float32), np.array([3, 1, 0]), np.array([0, 3, 3])), shape=(2, 4))
    before = raw.data.copy(), raw.indices.copy()
    s = PostingStore.build(raw, scale=1.0)
    np.testing.assert_array_equal(raw.data, before[0])
    np.testing.assert_array_equal(raw.indices, before[1])  # not sorted in place
    np.testing.assert_array_equal(s.doc_vector(0)[0], [0, 3])  # explicit zero dropped
    s2 = PostingStore.build(coo, scale=1.0)
    np.testing.assert_array_equal(s2.doc_vector(0)[1], [3.0])  # duplicates summed


@pytest.mark.parametrize(
    "bad, message",
    [(sp.csr_matrix(np.array([[1.0, -0.5]])), "negative"), (sp.csr_matrix(np.array([[np.nan, 1.0]])), "NaN"),
     (np.ones((2, 2)), "scipy.sparse")],
)  # fmt: skip
def test_bad_vectors_are_refused(bad, message):
    with pytest.raises(SparseEngineError, match=message):
        PostingStore.build(bad)


def test_bad_scale_and_doc_index(built):
    with pytest.raises(SparseEngineError, match="scale"):
        PostingStore.build(random_docs(10, 5), scale=0.0)
    with pytest.raises(SparseEngineError, match="out of range"):
        built.doc_vector(built.n_docs)


def test_empty_collection():
    s = PostingStore.build(sp.csr_matrix((0, 12), dtype=np.float32))
    assert (s.n_docs, s.dim, s.nnz) == (0, 12, 0)
    assert s.list_lengths().sum() == 0


def test_save_load_round_trip_is_memory_mapped(tmp_path, built):
    fragment = built.save(tmp_path / "postings")
    fragment = json.loads(json.dumps(fragment))  # the fragment goes into manifest.json
    loaded = PostingStore.load(tmp_path / "postings", fragment)
    assert (loaded.dim, loaded.n_docs, loaded.scale) == (built.dim, built.n_docs, built.scale)
    for name in store_mod.ARRAYS:
        arr = getattr(loaded, name)
        assert isinstance(arr, np.memmap), name
        np.testing.assert_array_equal(arr, getattr(built, name))
    assert fragment["arrays"]["post_docs"]["dtype"] == "<i4"
    np.testing.assert_array_equal(loaded.doc_vector(9)[1], built.doc_vector(9)[1])
    loaded.warm()  # touches every page; arrays unchanged
    np.testing.assert_array_equal(loaded.post_docs, built.post_docs)


@pytest.fixture()
def saved(tmp_path, built):
    return tmp_path / "p", built.save(tmp_path / "p")


def test_missing_file_is_named(saved):
    directory, fragment = saved
    (directory / "fwd_w.npy").unlink()
    with pytest.raises(SparseEngineError, match="fwd_w.npy is missing"):
        PostingStore.load(directory, fragment)


def test_corrupted_bytes_fail_the_checksum(saved):
    directory, fragment = saved
    path = directory / "post_docs.npy"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(SparseEngineError, match="post_docs.npy fails its checksum"):
        PostingStore.load(directory, fragment)


def test_sampled_checksum_of_big_arrays(tmp_path, built, monkeypatch):
    monkeypatch.setattr(store_mod, "FULL_HASH_BYTES", 64)
    monkeypatch.setattr(store_mod, "SAMPLE_BYTES", 32)
    fragment = built.save(tmp_path / "p")
    assert "sha256_sampled" in fragment["arrays"]["fwd_dims"]
    PostingStore.load(tmp_path / "p", fragment)
    path = tmp_path / "p" / "fwd_dims.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # in the tail sample
    path.write_bytes(bytes(raw))
    with pytest.raises(SparseEngineError, match="fwd_dims.npy fails its checksum"):
        PostingStore.load(tmp_path / "p", fragment)


def test_wrong_dtype_or_shape_is_refused(saved):
    directory, fragment = saved
    np.save(directory / "max_imp.npy", np.zeros(fragment["dim"], np.int64))
    with pytest.raises(SparseEngineError, match="max_imp.npy has dtype int64"):
        PostingStore.load(directory, fragment)
    np.save(directory / "max_imp.npy", np.zeros(fragment["dim"] + 1, np.uint8))
    with pytest.raises(SparseEngineError, match="max_imp.npy has shape"):
        PostingStore.load(directory, fragment)


def test_wrong_fragment_is_refused(saved):
    directory, fragment = saved
    for change, message in (({"n_docs": fragment["n_docs"] + 1}, "fwd_ptr.npy has shape"),
                            ({"format": "other/9"}, "format"), ({"arrays": {}}, "malformed"),
                            ({"dim": "x"}, "malformed")):  # fmt: skip
        with pytest.raises(SparseEngineError, match=message):
            PostingStore.load(directory, {**fragment, **change})
    bad = json.loads(json.dumps(fragment))
    bad["arrays"]["fwd_dims"]["file"] = "../fwd_dims.npy"
    with pytest.raises(SparseEngineError, match="outside the store"):
        PostingStore.load(directory, bad)
