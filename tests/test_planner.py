import logging

import numpy as np
import pytest
from helpers import CONCEPTS, TOY_DOCS, ToyEncoder, toy_store

from sparse_engine import traverse
from sparse_engine.errors import SparseEngineError
from sparse_engine.planner import PlanOptions, coverage_dims, plan_query
from sparse_engine.query_parser import parse_query

DIM = {c: i for i, c in enumerate(CONCEPTS)}
ENC = ToyEncoder()


@pytest.fixture(scope="module")
def store_and_vectors():
    return toy_store(ENC)


def ids(docs) -> list[str]:
    return [TOY_DOCS[int(d)][0] for d in docs]


def brute_top_docs_dims(vectors, query_vec, k, coverage):
    """The paper's step computed independently: dense dot products, top-k, coverage of the sum."""
    dense = vectors.toarray()
    scores = dense @ query_vec
    hit = np.flatnonzero(((dense != 0) & (query_vec != 0)).any(axis=1))
    top = hit[np.lexsort((hit, -scores[hit]))][:k]
    return set(coverage_dims(dense[top].sum(axis=0), coverage).tolist())


def test_coverage_dims():
    mag = np.array([0.0, 5.0, 1.0, 3.0, 1.0])
    assert coverage_dims(mag, 0.5).tolist() == [1]
    assert coverage_dims(mag, 0.8).tolist() == [1, 3]
    assert coverage_dims(mag, 0.81).tolist() == [1, 2, 3]  # ties: lower dim first
    assert coverage_dims(mag, 1.0).tolist() == [1, 2, 3, 4]
    assert coverage_dims(np.zeros(4), 0.9).size == 0


def test_paper_scores_on_d1_minus_d2(store_and_vectors):
    store, vectors = store_and_vectors
    options = PlanOptions(strategy="paper", top_k_docs=3, coverage=0.5, keep_query_dims=False)
    spec = plan_query(parse_query("pizza -person"), ENC, store, options)
    a = ENC.encode_text(["pizza"]).toarray().ravel()
    b = ENC.encode_text(["person"]).toarray().ravel()
    d1 = brute_top_docs_dims(vectors, a, 3, 0.5)
    d2 = brute_top_docs_dims(vectors, b, 3, 0.5)
    assert DIM["person"] in d2 and DIM["pizza"] in d1
    assert set(spec.dims.tolist()) <= d1 - d2
    assert not set(spec.dims.tolist()) & d2
    assert spec.dims.tolist() == [DIM["pizza"], DIM["food"]]
    assert spec.veto_dims.size == 0 and np.isinf(spec.veto_threshold)
    # a wider coverage pulls the person's pizza into D2 as well: the paper's method then drops it
    wide = PlanOptions(strategy="paper", top_k_docs=3, coverage=0.8, keep_query_dims=False)
    pure = plan_query(parse_query("pizza -person"), ENC, store, wide)
    assert DIM["pizza"] not in pure.dims.tolist() and pure.dims.size
    # keep_query_dims keeps A's own main dims (not B's own), still removes the rest of D2
    kept = plan_query(parse_query("pizza -person"), ENC, store, wide.with_overrides(keep_query_dims=True))
    assert DIM["pizza"] in kept.dims.tolist() and DIM["person"] not in kept.dims.tolist()


def test_paper_keeps_a_when_b_docs_show_a(store_and_vectors):
    store, _ = store_and_vectors
    options = PlanOptions(strategy="paper", top_k_docs=2, coverage=0.8, keep_query_dims=False)
    pure = plan_query(parse_query("dog -frisbee"), ENC, store, options)
    assert DIM["dog"] not in pure.dims.tolist()  # the frisbee's top docs include the frisbee dog
    spec = plan_query(parse_query("dog -frisbee"), ENC, store, options.with_overrides(keep_query_dims=True))
    assert DIM["dog"] in spec.dims.tolist() and DIM["frisbee"] not in spec.dims.tolist()
    assert DIM["toy"] not in spec.dims.tolist()
    # dims removal alone still ranks the frisbee dog (it is a dog on grass); the veto drops it
    assert "d00" in ids(traverse.search(store, spec, k=3)[0])
    both = plan_query(parse_query("dog -frisbee"), ENC, store, options.with_overrides(strategy="paper+veto", keep_query_dims=True))
    found = ids(traverse.search(store, both, k=12)[0])
    assert found[0] in {"d01", "d02", "d11"} and "d00" not in found


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_paper_weight_modes(store_and_vectors):
    store, _ = store_and_vectors
    a = unit(ENC.encode_text(["pizza"]).toarray().ravel())
    q = plan_query(parse_query("pizza -person"), ENC, store, PlanOptions(strategy="paper", top_k_docs=3, coverage=0.5, paper_weights="query"))
    np.testing.assert_allclose(q.weights, a[q.dims], rtol=1e-6)
    d = plan_query(parse_query("pizza -person"), ENC, store, PlanOptions(strategy="paper", top_k_docs=3, coverage=0.5, paper_weights="docs"))
    assert not np.allclose(d.weights / d.weights.max(), a[d.dims] / a[d.dims].max())


def test_paper_error_when_nothing_left(store_and_vectors):
    store, _ = store_and_vectors
    with pytest.raises(SparseEngineError, match="nothing left to search for"):
        plan_query(parse_query('"hot dog" -bun'), ENC, store, PlanOptions(strategy="paper", top_k_docs=12, coverage=1.0))


def test_veto_drops_documents_with_b(store_and_vectors):
    store, vectors = store_and_vectors
    plain = plan_query(parse_query("dog"), ENC, store, PlanOptions(strategy="veto"))
    assert "d00" in ids(traverse.search(store, plain, k=12)[0])  # the dog with a frisbee
    spec = plan_query(parse_query("dog -frisbee"), ENC, store, PlanOptions(strategy="veto", veto_coverage=0.6))
    assert DIM["frisbee"] in spec.veto_dims.tolist()
    np.testing.assert_allclose(spec.weights, plain.weights)
    found = ids(traverse.search(store, spec, k=12)[0])
    assert found and "d00" not in found and "d06" not in found
    frisbee = vectors[:, DIM["frisbee"]].toarray().ravel()
    assert all(frisbee[[s for s, _, _ in TOY_DOCS].index(d)] == 0 for d in found)
    assert {"d01", "d02", "d11"} <= set(found)


def test_veto_threshold_keeps_weak_b(store_and_vectors):
    store, _ = store_and_vectors
    # "toy" is frisbee's second concept (0.5) and a ball's (0.4): a high threshold spares the ball dog
    strict = plan_query(parse_query("dog -frisbee"), ENC, store,
                        PlanOptions(strategy="veto", veto_coverage=1.0, veto_threshold=0.0))
    loose = plan_query(parse_query("dog -frisbee"), ENC, store,
                       PlanOptions(strategy="veto", veto_coverage=1.0, veto_threshold=0.45))
    assert "d11" not in ids(traverse.search(store, strict, k=12)[0])
    assert "d11" in ids(traverse.search(store, loose, k=12)[0])


def test_subtract_negative_weights(store_and_vectors):
    store, _ = store_and_vectors
    spec = plan_query(parse_query("dog -frisbee"), ENC, store, PlanOptions(strategy="subtract", alpha=2.0, context_weight=0.0))
    w = dict(zip(spec.dims.tolist(), spec.weights.tolist()))
    # term vectors are unit length: dog = (1, 0.4) / |.|, frisbee = (1, 0.5) / |.|
    assert w[DIM["dog"]] == pytest.approx(1 / np.hypot(1, 0.4))
    assert w[DIM["frisbee"]] == pytest.approx(-2.0 / np.hypot(1, 0.5))
    assert w[DIM["toy"]] == pytest.approx(-1.0 / np.hypot(1, 0.5))
    docs, scores = traverse.search(store, spec, k=12)
    found = ids(docs)
    assert "d01" in found and "d00" not in found[: found.index("d01")]  # frisbee dog pushed down
    assert np.all(scores > 0)


def test_paper_plus_veto_has_both(store_and_vectors):
    store, _ = store_and_vectors
    spec = plan_query(parse_query("pizza -person"), ENC, store, PlanOptions(strategy="paper+veto", top_k_docs=3, coverage=0.5))
    assert DIM["person"] in spec.veto_dims.tolist() and DIM["person"] not in spec.dims.tolist()
    assert "d04" not in ids(traverse.search(store, spec, k=12)[0])


def test_multiple_includes_sum_and_must(store_and_vectors):
    store, _ = store_and_vectors
    spec = plan_query(parse_query("dog ball"), ENC, store, PlanOptions(strategy="veto"))
    w = dict(zip(spec.dims.tolist(), spec.weights.tolist()))
    dog, ball = np.hypot(1, 0.4), np.sqrt(1 + 0.4**2 + 0.2**2)  # the terms' norms: each counts once
    assert w[DIM["animal"]] == pytest.approx(0.4 / dog) and w[DIM["toy"]] == pytest.approx(0.4 / ball)
    assert w[DIM["dog"]] == pytest.approx(1 / dog) and w[DIM["ball"]] == pytest.approx(1 / ball)
    must = plan_query(parse_query("+dog ball"), ENC, store, PlanOptions(strategy="veto"))
    assert must.must_dims.tolist() == [DIM["dog"]]
    found = ids(traverse.search(store, must, k=12)[0])
    assert found and all("dog" in " ".join(c for s, _, c2 in TOY_DOCS if s == d for c in c2) or "puppy" in
                         " ".join(c for s, _, c2 in TOY_DOCS if s == d for c in c2) for d in found)  # fmt: skip
    assert "d03" not in found  # the cat with a ball has no dog


def test_unknown_words(store_and_vectors, caplog):
    store, _ = store_and_vectors
    with pytest.raises(SparseEngineError, match="no known concepts in 'zebra giraffe'"):
        plan_query(parse_query("zebra giraffe"), ENC, store)
    with pytest.raises(SparseEngineError, match="required term"):
        plan_query(parse_query("dog +zebra"), ENC, store)
    with caplog.at_level(logging.WARNING):
        spec = plan_query(parse_query("dog -zebra"), ENC, store, PlanOptions(strategy="paper"))
    assert "zebra" in caplog.text
    assert spec.veto_dims.size == 0 and DIM["dog"] in spec.dims.tolist()


def test_option_and_dim_errors(store_and_vectors):
    store, _ = store_and_vectors
    with pytest.raises(SparseEngineError, match="unknown strategy"):
        plan_query("dog", ENC, store, PlanOptions(strategy="magic"))
    with pytest.raises(SparseEngineError, match="coverage"):
        PlanOptions(coverage=0).checked()
    with pytest.raises(SparseEngineError, match="unknown planner option"):
        PlanOptions().with_overrides(nope=1)
    with pytest.raises(SparseEngineError, match="has 10 dims but the index has 18"):
        plan_query("dog", ToyEncoder("small", CONCEPTS[:10]), store)


# -- caption words ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def word_store():
    from helpers import toy_word_store

    return toy_word_store(ENC)


def word_ids(store, spec, k=12):
    return ids(traverse.search(store, spec, k=k)[0])


def test_word_veto_drops_documents_whose_captions_name_b(word_store):
    store, words = word_store
    spec = plan_query("dog -frisbee", ENC, store, PlanOptions(), words=words)
    assert spec.veto_threshold == 0.0
    assert set(spec.veto_dims.tolist()) == set(words.dims(["frisbee"]).tolist())
    got = word_ids(store, spec)
    assert "d00" not in got and "d06" not in got and {"d01", "d02", "d11"} <= set(got)


def test_word_veto_uses_realizations_but_spares_a(word_store):
    store, words = word_store
    spec = plan_query("pizza -person", ENC, store, PlanOptions(), words=words)
    assert set(words.dims(["man", "person"]).tolist()) <= set(spec.veto_dims.tolist())
    assert word_ids(store, spec)[0] == "d05"  # d04's captions say "man" and "person"
    spared = plan_query("man -person", ENC, store, PlanOptions(strategy="veto"), words=words)
    assert not set(words.dims(["man"]).tolist()) & set(spared.veto_dims.tolist())


def test_concept_veto_when_asked_or_when_no_caption_names_b(word_store):
    store, words = word_store
    spec = plan_query("dog -frisbee", ENC, store, PlanOptions(veto_source="concepts"), words=words)
    assert spec.veto_threshold == PlanOptions().veto_threshold and (spec.veto_dims < ENC.dim).all()
    assert DIM["frisbee"] in spec.veto_dims
    unnamed = plan_query("pizza -woman", ENC, store, PlanOptions(), words=words)  # no caption says "woman"
    assert unnamed.veto_threshold == PlanOptions().veto_threshold and unnamed.veto_dims.tolist() == [DIM["person"]]


def test_caption_words_make_terms_the_encoder_does_not_know_searchable(word_store):
    store, words = word_store
    spec = plan_query("cheese", ENC, store, PlanOptions(), words=words)  # the toy encoder has no "cheese"
    assert word_ids(store, spec) == ["d05"]
    plain, _ = toy_store(ENC)
    with pytest.raises(SparseEngineError, match="no known concepts"):
        plan_query("cheese", ENC, plain, PlanOptions())
    with pytest.raises(SparseEngineError, match="caption words but the index has"):
        plan_query("dog", ENC, plain, PlanOptions(), words=words)


def test_context_subtracts_b_s_documents_but_not_a_itself(word_store):
    store, words = word_store
    opts = dict(strategy="subtract")
    base = plan_query("dog -frisbee", ENC, store, PlanOptions(context_weight=0.0, **opts), words=words)
    ctx = plan_query("dog -frisbee", ENC, store, PlanOptions(context_weight=1.0, **opts), words=words)
    a = words.extend(ENC.encode_text(["dog"]).toarray()[0] / np.linalg.norm(ENC.encode_text(["dog"]).toarray()), "dog")
    for spec in (base, ctx):  # orthogonal negation: the query's part along A is A
        q = np.zeros(store.dim)
        q[spec.dims] = spec.weights
        assert q @ a == pytest.approx(a @ a, rel=1e-5)
    w0, w1 = dict(zip(base.dims.tolist(), base.weights)), dict(zip(ctx.dims.tolist(), ctx.weights))
    assert w1[DIM["toy"]] < w0[DIM["toy"]]  # frisbee's documents carry "toy": pushed further down
    assert w1[DIM["grass"]] < w0.get(DIM["grass"], 0.0)  # and the grass they are played on
    with pytest.raises(SparseEngineError, match="non-negative"):
        PlanOptions(context_weight=-1).checked()


def test_orthogonal_negation_keeps_a_when_b_is_a_kind_of_a(store_and_vectors):
    """"dog -puppy": puppy lies almost along dog; plain subtraction would cancel the query."""
    store, _ = store_and_vectors
    opts = dict(strategy="subtract", context_weight=0.0)
    plain = plan_query("dog -puppy", ENC, store, PlanOptions(orthogonal=False, **opts))
    orth = plan_query("dog -puppy", ENC, store, PlanOptions(**opts))
    w_plain, w_orth = dict(zip(plain.dims.tolist(), plain.weights)), dict(zip(orth.dims.tolist(), orth.weights))
    assert w_plain[DIM["dog"]] < 0.2 * w_orth[DIM["dog"]]  # dog 0.8 vs puppy: almost nothing left
    # what goes is puppy's own part (more animal, less dog than "dog"): dog's weight rises, animal's falls
    assert w_orth[DIM["dog"]] > 1 / np.hypot(1, 0.4) and 0 < w_orth[DIM["animal"]] < 0.4 / np.hypot(1, 0.4)
    assert ids(traverse.search(store, orth, k=3)[0])[0] in {"d02", "d11", "d00"}  # a dog, not a cat
