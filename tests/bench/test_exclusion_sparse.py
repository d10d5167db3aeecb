"""Matrix-form sparse strategies against brute force and against the engine's planner, with a
tiny real bag-of-words encoder."""
import numpy as np
import pytest
import scipy.sparse as sp

from bench.exclusion_data import CocoCollection, ExclusionQuery
from bench.exclusion_sparse import SparseBench
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
            ["frisbee beach"], ["dog ball park", "dog"], ["dog dog frisbee"], ["dog park frisbee", "dog", "dog park"]]


@pytest.fixture()
def bench():
    coll = CocoCollection([f"{i:012d}" for i in range(len(CAPTIONS))], CAPTIONS, [set()] * len(CAPTIONS), VOCAB)
    queries = [ExclusionQuery(["dog"], ["frisbee"], set()), ExclusionQuery(["cat"], ["dog"], set()),
               ExclusionQuery(["dog", "park"], ["ball"], set())]
    return SparseBench(BowEncoder(), coll, queries)


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_documents_and_terms_are_unit_length_as_the_engine_stores_them(bench):
    np.testing.assert_allclose(np.linalg.norm(bench.docs.toarray(), axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(bench.term_vecs.toarray(), axis=1), 1.0, rtol=1e-6)


def test_a_only_and_subtract_match_brute_force(bench):
    docs = bench.docs.toarray()
    enc = BowEncoder()
    a, b = unit(enc.encode_text(["dog"]).toarray()[0]), unit(enc.encode_text(["frisbee"]).toarray()[0])
    sa = docs @ a
    want = [d for d in np.lexsort((np.arange(len(sa)), -sa)) if sa[d] > 0][:3]
    assert list(bench.a_only(k=3)[0]) == want
    s = docs @ (a - 0.5 * b)
    want = [d for d in np.lexsort((np.arange(len(s)), -s)) if s[d] > 0][:3]
    assert list(bench.subtract(k=3, alpha=0.5)[0]) == want


def test_veto_drops_every_document_with_the_excluded_concept(bench):
    got = bench.veto(k=8, threshold=0.0, coverage=1.0)
    dog_no_frisbee = [i for i, caps in enumerate(CAPTIONS)
                      if any("dog" in c for c in caps) and not any("frisbee" in c for c in caps)]
    assert sorted(d for d in got[0] if d >= 0) == dog_no_frisbee
    assert [d for d in got[1] if d >= 0] == [2]  # cat without dog: only the sofa image
    # a threshold above every (unit-length) weight vetoes nothing
    assert set(bench.veto(k=8, threshold=1.0)[0]) - {-1} == set(bench.a_only(k=8)[0]) - {-1}


@pytest.mark.parametrize("alpha, threshold", [(0.0, 0.0), (0.5, 0.3), (1.0, 0.1)])
def test_matrix_route_equals_the_planner(bench, alpha, threshold):
    """The grids (matrix form) choose the planner's defaults: both must rank alike."""
    strategy = "veto+subtract" if alpha else "veto"
    planner = bench.via_planner(k=8, strategy=strategy, alpha=alpha or 1.0, veto_threshold=threshold, veto_coverage=0.5,
                                context_weight=0.0)
    matrix = bench.veto(k=8, threshold=threshold, coverage=0.5, alpha=alpha)
    np.testing.assert_array_equal(planner, matrix)
    np.testing.assert_array_equal(bench.via_planner(k=8, strategy="subtract", alpha=0.75, context_weight=0.0),
                                  bench.subtract(k=8, alpha=0.75))  # fmt: skip


@pytest.fixture()
def word_bench():
    coll = CocoCollection([f"{i:012d}" for i in range(len(CAPTIONS))], CAPTIONS, [set()] * len(CAPTIONS), VOCAB)
    queries = [ExclusionQuery(["dog"], ["frisbee"], set()), ExclusionQuery(["cat"], ["dog"], set()),
               ExclusionQuery(["dog", "park"], ["ball"], set()), ExclusionQuery(["park"], ["dog"], set())]
    return SparseBench(BowEncoder(), coll, queries, word_weight=0.6)


@pytest.mark.parametrize("alpha, context", [(0.5, 0.0), (1.25, 0.5), (1.0, 2.0)])
def test_matrix_route_equals_the_planner_with_caption_words_and_context(word_bench, alpha, context):
    planner = word_bench.via_planner(k=8, strategy="veto+subtract", alpha=alpha, context_weight=context)
    matrix = word_bench.veto(k=8, threshold=0.3, coverage=0.5, alpha=alpha, context_weight=context)
    np.testing.assert_array_equal(planner, matrix)
    np.testing.assert_array_equal(word_bench.via_planner(k=8, strategy="subtract", alpha=alpha, context_weight=context),
                                  word_bench.subtract(k=8, alpha=alpha, context_weight=context))  # fmt: skip


def test_word_veto_drops_documents_whose_captions_name_the_excluded_term(word_bench):
    assert word_bench.docs.shape[1] == len(VOCAB) + word_bench.words.n_terms
    got = word_bench.veto(k=8, threshold=0.3, coverage=0.5, alpha=1.0)
    for row, q in zip(got, word_bench.queries):
        for d in row[row >= 0]:
            assert not any(q.exclude[0] in c.split() for c in CAPTIONS[d])
    assert [d for d in got[3] if d >= 0] == []  # every "park" caption set also says "dog"
