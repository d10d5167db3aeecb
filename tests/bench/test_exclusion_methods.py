"""Batched top-k and the dense baselines against brute force on small random data."""
import numpy as np

from bench.exclusion_data import ExclusionQuery
from bench.exclusion_methods import DenseBench, pool_dense, slq_text, topk_rows


def test_topk_rows_matches_a_full_sort_with_ties_by_index():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 5, size=(20, 40)).astype(np.float32)  # many ties
    s[0, :] = -np.inf
    s[1, 3] = 10
    got = topk_rows(s, 7)
    for i, row in enumerate(s):
        want = [j for j in sorted(range(40), key=lambda j: (-row[j], j)) if row[j] > -np.inf][:7]
        assert list(got[i][got[i] >= 0]) == want
    assert (got[0] == -1).all() and got[1, 0] == 3


class WordEncoder:
    """A real (tiny) dense text encoder: normalised hashed bag of words."""

    def embed_text(self, texts):
        out = np.zeros((len(texts), 16), np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, sum(map(ord, w)) % 16] += 1
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(n > 0, n, 1)


def test_dense_baselines_against_brute_force():
    enc = WordEncoder()
    caps = ["dog park", "dog frisbee", "cat sofa", "dog cat", "frisbee beach", "dog"]
    docs = pool_dense(enc.embed_text(caps), np.arange(6), 6)
    q = ExclusionQuery(["dog"], ["frisbee"], {"0"})
    db = DenseBench(enc, docs, [q])
    a, b = enc.embed_text(["dog"])[0], enc.embed_text(["frisbee"])[0]
    brute = lambda v: list(np.lexsort((np.arange(6), -(docs @ v)))[:3])  # noqa: E731
    assert list(db.a_only(3)[0]) == brute(a)
    assert list(db.avg_emb(3)[0]) == brute(a - b)
    assert slq_text(q) == "images of dog without frisbee"
    # content exclusion: B's top-1 doc is "frisbee beach"; anything as similar as it is dropped
    got = db.content_exclusion(k=6, m=1, tau=0.99, pool=6)[0]
    b_top = int(np.argmax(docs @ b))
    kept = [d for d in got if d >= 0]
    assert b_top not in kept
    assert all(docs[d] @ docs[b_top] < 0.99 for d in kept)
    assert kept == [d for d in brute_all(docs @ a) if docs[d] @ docs[b_top] < 0.99]


def brute_all(scores):
    return list(np.lexsort((np.arange(len(scores)), -scores)))


def test_keyword_reference_drops_documents_naming_b_and_counts_a():
    from bench.exclusion_methods import keyword_reference

    caps = [["two dogs play", "a dog"], ["a dog with a frisbee"], ["a cat"], ["a dog sleeps"], ["frisbees"]]
    got = keyword_reference(caps, [ExclusionQuery(["dog"], ["frisbee"], set()),
                                   ExclusionQuery(["hot dog"], ["cat"], set())], k=5)  # fmt: skip
    assert [d for d in got[0] if d >= 0] == [0, 3]  # doc 0 names dogs twice; doc 1 names a frisbee
    assert [d for d in got[1] if d >= 0] == [0, 1, 3]  # a phrase matches by its words; no cat document
