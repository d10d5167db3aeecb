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


def test_quantisation_and_forward_rows(docs, built):
    s = built
    assert (s.dim, s.n_docs, s.nnz) == (docs.shape[1], docs.shape[0], docs.nnz)
    want = np.clip(np.rint(docs.data / np.float32(s.scale)), 1, 255)
    np.testing.assert_array_equal(s.fwd_imps, want)
    np.testing.assert_array_equal(s.fwd_dims, docs.indices)
    q = s.quantised_csr()
    assert q.shape == docs.shape and q.dtype == np.float32
    dense, top = docs.toarray(), 255 * s.scale
    np.testing.assert_allclose(q.toarray() * s.scale, np.minimum(dense, top), rtol=0.02, atol=s.scale)
    dims, weights = s.doc_vector(7)
    np.testing.assert_array_equal(dims, docs[7].indices)
    np.testing.assert_allclose(weights, q[7].data * np.float32(s.scale))
    assert s.doc_vector(3)[0].size == 0


def test_posting_lists_are_impact_descending_with_doc_ties(docs, built):
    s, csc = built, sp.csc_matrix(built.quantised_csr())
    for d in range(s.dim):
        lo, hi = s.post_ptr[d], s.post_ptr[d + 1]
        docs_d, imps_d = s.post_docs[lo:hi], s.post_imps[lo:hi].astype(int)
        order = np.lexsort((csc[:, d].indices, -csc[:, d].data))
        np.testing.assert_array_equal(docs_d, csc[:, d].indices[order])
        np.testing.assert_array_equal(imps_d, csc[:, d].data[order])
        assert s.max_imp[d] == (imps_d.max() if imps_d.size else 0)


def test_scale_keeps_the_largest_weights_and_clips_only_lone_outliers():
    even = np.linspace(0.1, 1.0, 10_000).astype(np.float32)
    assert 255 * choose_scale(even) == pytest.approx(1.0)  # the top weight is impact 255, unclipped
    skewed = np.random.default_rng(0).lognormal(0, 0.8, 100_000).astype(np.float32)
    assert 255 * choose_scale(skewed) == pytest.approx(skewed.max())
    lone = np.concatenate([np.ones(100_000, np.float32), [1000.0]]).astype(np.float32)
    assert 255 * choose_scale(lone) == pytest.approx(store_mod.OUTLIER_FACTOR * 1.0)  # not 1000: clipped
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
    (directory / "fwd_imps.npy").unlink()
    with pytest.raises(SparseEngineError, match="fwd_imps.npy is missing"):
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
