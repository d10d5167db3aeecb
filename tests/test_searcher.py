import importlib.util
import json

import numpy as np
import pytest
from helpers import CONCEPTS, ToyEncoder, build_toy_index, captions_of

from sparse_engine.errors import SparseEngineError
from sparse_engine.searcher import SearchResult, Searcher


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return build_toy_index(tmp_path_factory.mktemp("searcher"))


@pytest.fixture(scope="module")
def searcher(index_dir):
    return Searcher(index_dir)


def test_search_returns_ranked_results(searcher):
    results = searcher.search("dog -frisbee", k=5, strategy="veto")
    assert results and all(isinstance(r, SearchResult) for r in results)
    assert [r.rank for r in results] == list(range(1, len(results) + 1))
    assert all(a.score >= b.score for a, b in zip(results, results[1:]))
    for r in results:
        assert not any("frisbee" in c for c in r.captions)
        assert r.captions == captions_of(r.doc_id)
        assert r.path.startswith("images/") and r.path.endswith(f"{r.doc_id}.jpg")
        assert r.concepts and r.concepts[0][2][0] in ("dog", "animal", '"dog"', '"dogs"')  # a concept or a caption word
    with_frisbee = [r.doc_id for r in searcher.search("dog", k=12)]
    assert "d00" in with_frisbee


def test_batch_matches_single(searcher):
    queries = ["dog -frisbee", "pizza -person", "cat", "+dog ball"]
    batch = searcher.batch_search(queries, k=4, threads=2, strategy="veto")
    for query, got in zip(queries, batch):
        single = searcher.search(query, k=4, strategy="veto")
        assert [r.doc_id for r in got] == [r.doc_id for r in single]
        np.testing.assert_allclose([r.score for r in got], [r.score for r in single], rtol=1e-5)


def test_explain_adds_up_to_the_score(searcher):
    top = searcher.search("cat ball", k=3)
    for r in top:
        expl = searcher.explain("cat ball", r.doc_id)
        assert expl.score == pytest.approx(r.score, rel=1e-4)
        assert not expl.excluded
        assert sum(c.contribution for c in expl.contributions) == pytest.approx(r.score, rel=1e-4)
        terms = searcher.words.terms
        assert all(c.labels[0] == (CONCEPTS[c.dim] if c.dim < len(CONCEPTS) else f'"{terms[c.dim - len(CONCEPTS)]}"')
                   for c in expl.contributions)  # fmt: skip
    vetoed = searcher.explain("dog -frisbee", "d00", strategy="veto")
    assert vetoed.excluded and '"frisbee"' in [c.labels[0] for c in vetoed.vetoed_by]  # its caption names a frisbee
    concepts_only = searcher.explain("dog -frisbee", "d00", strategy="veto", veto_source="concepts")
    assert concepts_only.excluded and "frisbee" in [c.labels[0] for c in concepts_only.vetoed_by]
    json.dumps(vetoed.to_dict())
    with pytest.raises(SparseEngineError, match="no document with id 'zz'"):
        searcher.explain("dog", "zz")


def test_user_errors(searcher):
    with pytest.raises(SparseEngineError, match="empty query"):
        searcher.search("")
    with pytest.raises(SparseEngineError, match="no known concepts"):
        searcher.search("zebra")
    with pytest.raises(SparseEngineError, match="k must be"):
        searcher.search("dog", k=0)


def test_missing_and_not_an_index(tmp_path):
    with pytest.raises(SparseEngineError, match="no index at"):
        Searcher(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SparseEngineError, match="not a sparse-engine index"):
        Searcher(tmp_path / "plain")


def _copy_with_manifest(index_dir, tmp_path, change):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(index_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_wrong_format_version(index_dir, tmp_path):
    out = _copy_with_manifest(index_dir, tmp_path, lambda m: m.update(format_version=99))
    with pytest.raises(SparseEngineError, match="format version 99"):
        Searcher(out)


def test_encoder_mismatches(index_dir):
    with pytest.raises(SparseEngineError, match="built with encoder 'toy:v1', not 'toy:v2'"):
        Searcher(index_dir, encoder=ToyEncoder("v2"))
    other_hash = ToyEncoder("v1")
    other_hash.checkpoint_hash = "0" * 64
    with pytest.raises(SparseEngineError, match="checkpoint hash"):
        Searcher(index_dir, encoder=other_hash)
    fewer = ToyEncoder("v1", CONCEPTS[:10])
    fewer.checkpoint_hash = ToyEncoder("v1").checkpoint_hash
    with pytest.raises(SparseEngineError, match="has 10 dims"):
        Searcher(index_dir, encoder=fewer)


def test_unknown_encoder_in_manifest(index_dir, tmp_path):
    def rename(m):
        m["encoder"].update(name="nosuch", spec="nosuch")

    out = _copy_with_manifest(index_dir, tmp_path, rename)
    with pytest.raises(SparseEngineError, match="unknown encoder 'nosuch'"):
        Searcher(out)


def test_lucene_backend_missing(index_dir):
    with pytest.raises(SparseEngineError, match="no lucene backend"):
        Searcher(index_dir, backend="lucene")


@pytest.mark.slow
def test_lucene_backend_agrees_with_numba(tmp_path):
    if importlib.util.find_spec("jnius") is None:  # importing jnius itself would start a JVM
        pytest.skip("the 'lucene' extra is not installed")
    index = build_toy_index(tmp_path, backends=("numba", "lucene"))
    numba_s, lucene_s = Searcher(index), Searcher(index, backend="lucene")
    try:
        # Lucene rounds query and document weights to integers 1..255: a score is exact to within
        # 2 %, or 0.005 for a low score summed over many small weights (B's context, caption words).
        tol = dict(rtol=0.02, atol=0.005)
        for strategy in ("veto", "subtract", "veto+subtract"):  # subtract: negative weights
            for query in ("dog", "pizza -person", "dog -frisbee", "cat ball"):
                want = numba_s.search(query, k=3, strategy=strategy)
                got = lucene_s.search(query, k=3, strategy=strategy)
                # Lucene breaks ties in its own order: compare scores, and each hit's numba score
                np.testing.assert_allclose([r.score for r in got], [r.score for r in want], **tol)
                for r in got:
                    expl = numba_s.explain(query, r.doc_id, strategy=strategy)
                    assert expl.score == pytest.approx(r.score, rel=tol["rtol"], abs=tol["atol"]) and not expl.excluded
                assert got and got[0].concepts
        for query in ("+dog ball", "+ball dog -cat"):  # "+term": over-fetch and filter
            want, got = numba_s.search(query, k=3), lucene_s.search(query, k=3)
            np.testing.assert_allclose([r.score for r in got], [r.score for r in want], **tol)
    finally:
        lucene_s.close()
