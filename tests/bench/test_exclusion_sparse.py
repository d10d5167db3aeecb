"""Matrix-form sparse strategies against brute force, with a tiny real bag-of-words encoder."""
import numpy as np
import pytest
import scipy.sparse as sp

from bench.exclusion_data import CocoCollection, ExclusionQuery
from bench.exclusion_sparse import SparseBench, quantise_like_store
from sparse_engine.encoders.base import SparseEncoder

VOCAB = ["dog", "cat", "frisbee", "park", "sofa", "beach", "ball"]


class BowEncoder(SparseEncoder):
    name, dim = "bow", len(VOCAB)

    def encode_text(self, texts):
        rows = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                if w in VOCAB:
                    rows[i, VOCAB.index(w)] += 1.0
        return sp.csr_matrix(rows)

    def dim_labels(self):
        return [[w] for w in VOCAB]


CAPTIONS = [["dog park", "dog"], ["dog frisbee", "frisbee dog park"], ["cat sofa"], ["dog cat", "cat"],
            ["frisbee beach"], ["dog ball park", "dog"], ["dog dog frisbee"]]


@pytest.fixture()
def bench():
    coll = CocoCollection([f"{i:012d}" for i in range(len(CAPTIONS))], CAPTIONS, [set()] * len(CAPTIONS), VOCAB)
    queries = [ExclusionQuery(["dog"], ["frisbee"], set()), ExclusionQuery(["cat"], ["dog"], set())]
    return SparseBench(BowEncoder(), coll, queries)


def test_quantisation_keeps_every_weight_within_half_a_step():
    docs = sp.random(30, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    q, scale = quantise_like_store(docs)
    assert q.nnz == docs.nnz
    assert np.abs(q.data - docs.data).max() <= scale / 2 + 1e-6
    assert np.allclose(q.data / scale, np.round(q.data / scale), atol=1e-4)


def test_a_only_and_subtract_match_brute_force(bench):
    docs = bench.docs.toarray()
    a, b = BowEncoder().encode_text(["dog"]).toarray()[0], BowEncoder().encode_text(["frisbee"]).toarray()[0]
    sa = docs @ a
    want = [d for d in np.lexsort((np.arange(len(sa)), -sa)) if sa[d] > 0][:3]
    assert list(bench.a_only(k=3)[0]) == want
    s = docs @ (a - b)
    want = [d for d in np.lexsort((np.arange(len(s)), -s)) if sa[d] > 0][:3]
    assert list(bench.subtract(k=3)[0]) == want


def test_veto_drops_every_document_with_the_excluded_concept(bench):
    got = bench.veto(k=7)
    dog_no_frisbee = [i for i, caps in enumerate(CAPTIONS)
                      if any("dog" in c for c in caps) and not any("frisbee" in c for c in caps)]
    assert sorted(d for d in got[0] if d >= 0) == dog_no_frisbee
    assert [d for d in got[1] if d >= 0] == [2]  # cat without dog: only the sofa image
    # a threshold above every weight vetoes nothing
    assert set(bench.veto(k=7, threshold=100.0)[0]) - {-1} == set(bench.a_only(k=7)[0]) - {-1}


def test_d1_minus_d2_removes_the_top_documents_of_b(bench):
    sb = bench.exclude_scores()[0]
    top_b = int(np.lexsort((np.arange(len(sb)), -sb))[0])
    got = set(bench.d1_minus_d2(k=7, top_k_docs=1, coverage=0.0)[0]) - {-1}
    assert top_b not in got and got == set(bench.a_only(k=7)[0]) - {-1, top_b}
    # coverage 1.0 keeps only B's exact best-scoring documents in D2
    strict = set(bench.d1_minus_d2(k=7, top_k_docs=7, coverage=1.0)[0]) - {-1}
    assert strict == set(bench.a_only(k=7)[0]) - {-1} - set(np.flatnonzero(sb == sb.max()))
