"""SpLiCE baseline: the batched non-negative sparse solver and the encoder over real MiniLM."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from sparse_engine.encoders.splice import SpliceEncoder, caption_vocabulary, read_captions_csv, solve_nonneg_lasso
from sparse_engine.errors import SparseEngineError


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    concepts = _unit_rows(rng, 300, 64)
    x = _unit_rows(rng, 40, 64)
    return x, concepts


def _objective(x, concepts, w, l1):
    return ((x - w @ concepts) ** 2).sum(1) + 2 * l1 * np.abs(w).sum(1)


def test_solution_is_nonnegative_and_optimal(problem):
    x, concepts = problem
    w = solve_nonneg_lasso(x, concepts, l1=0.05, tol=1e-7, max_iter=3000)
    assert w.shape == (40, 300) and w.dtype == np.float32
    assert (w >= 0).all() and (w > 0).any()
    # KKT conditions of the non-negative lasso: gradient = -l1 on the support, >= -l1 off it.
    grad = (w @ concepts - x) @ concepts.T
    on = w > 0
    assert np.allclose(grad[on], -0.05, atol=2e-3)
    assert (grad[~on] >= -0.05 - 2e-3).all()
    # Any feasible perturbation is no better.
    worse = np.clip(w + 0.01 * np.random.default_rng(1).standard_normal(w.shape), 0, None)
    assert (_objective(x, concepts, w, 0.05) <= _objective(x, concepts, worse, 0.05) + 1e-6).all()


def test_sparsity_falls_as_l1_grows(problem):
    x, concepts = problem
    nnz = [(solve_nonneg_lasso(x, concepts, l1=l1) > 0).sum(1).mean() for l1 in (0.01, 0.05, 0.15, 0.4)]
    assert all(a > b for a, b in zip(nnz, nnz[1:])), nnz
    assert (solve_nonneg_lasso(x, concepts, l1=100.0) == 0).all()


def test_recovers_a_known_nonnegative_combination(problem):
    _, concepts = problem
    truth = np.zeros((3, 300), dtype=np.float32)
    truth[0, [5, 77]] = [0.8, 0.4]
    truth[1, [12, 150, 299]] = [0.5, 0.3, 0.6]
    truth[2, [0]] = [1.0]
    x = truth @ concepts
    w = solve_nonneg_lasso(x, concepts, l1=0.002, tol=1e-7, max_iter=5000)
    for row_w, row_t in zip(w, truth):
        support = set(np.flatnonzero(row_t))
        assert set(np.argsort(-row_w)[: len(support)]) == support
        assert np.allclose(row_w[list(support)], row_t[list(support)], atol=0.05)
        assert row_w.sum() - row_w[list(support)].sum() < 0.05


def test_batch_equals_row_by_row(problem):
    x, concepts = problem
    # Solved to convergence: each row stops on its own, so batching must not change where it lands
    # (at the default tol a row stops within ~1e-4 of the optimum, and float32 rounding differs by batch shape).
    solve = partial(solve_nonneg_lasso, concepts=concepts, l1=0.05, tol=1e-7, max_iter=5000)
    batch = solve(x)
    rows = np.vstack([solve(x[i : i + 1]) for i in range(len(x))])
    chunked = solve(x, chunk=7)
    np.testing.assert_allclose(batch, rows, atol=1e-5)
    np.testing.assert_allclose(batch, chunked, atol=1e-5)


def test_solver_rejects_bad_input(problem):
    x, concepts = problem
    with pytest.raises(SparseEngineError, match="dimension"):
        solve_nonneg_lasso(x[:, :10], concepts, l1=0.1)
    with pytest.raises(SparseEngineError, match="l1"):
        solve_nonneg_lasso(x, concepts, l1=-1.0)


def test_caption_vocabulary_is_content_words(shared_data):
    words = caption_vocabulary(shared_data / "flickr8k" / "captions.csv", size=500)
    assert len(words) == 500 and len(set(words)) == 500
    assert words[0] == "dog"  # the most frequent content word of Flickr8k
    assert "the" not in words and "with" not in words and "frisbee" in words


def test_missing_captions_file_is_a_clear_error(tmp_path):
    with pytest.raises(SparseEngineError, match="not found"):
        read_captions_csv(tmp_path / "nope.csv")


@pytest.fixture(scope="module")
def splice(shared_data):
    """A real SpLiCE encoder over MiniLM: 400 Flickr8k concept words, mean of 300 Flickr8k captions."""
    from sparse_engine.encoders import create_dense_encoder

    captions = shared_data / "flickr8k" / "captions.csv"
    dense = create_dense_encoder("minilm")
    mean = dense.embed_text(read_captions_csv(captions)[:300]).mean(axis=0)
    vocab = caption_vocabulary(captions, size=400)
    return SpliceEncoder("minilm", dense=dense, vocab=vocab, text_mean=mean, captions=captions)


@pytest.mark.slow
def test_encoder_top_concepts_are_the_caption_words(splice):
    out = splice.encode_text(["a dog catching a frisbee", "", "two children playing in the snow"])
    assert out.shape == (3, splice.dim) == (3, 400)
    assert out.dtype == np.float32 and (out.data > 0).all()
    assert out[1].nnz == 0
    labels = splice.dim_labels()
    assert len(labels) == 400 and labels[0] == ["dog"]
    for row, expected in ((0, {"dog", "frisbee"}), (2, {"children", "snow"})):
        r = out[row]
        top = {labels[j][0] for j in r.indices[np.argsort(-r.data)[:4]]}
        assert expected <= top, top


@pytest.mark.slow
def test_encoder_l1_and_registry(splice, shared_data):
    from sparse_engine.encoders import create_encoder

    text = ["a man riding a surfboard on a wave"]
    loose = SpliceEncoder(dense=splice.dense, vocab=splice.vocab, text_mean=splice.text_mean, l1=0.05)
    tight = SpliceEncoder(dense=splice.dense, vocab=splice.vocab, text_mean=splice.text_mean, l1=0.3)
    assert loose.encode_text(text).nnz > tight.encode_text(text).nnz > 0
    assert loose.checkpoint_hash != tight.checkpoint_hash
    enc = create_encoder("splice:minilm", vocab=splice.vocab[:50], text_mean=splice.text_mean)
    assert enc.name == "splice:minilm" and enc.dim == 50 and not enc.has_images
    with pytest.raises(SparseEngineError, match="mean"):
        SpliceEncoder(dense=splice.dense, vocab=["dog"], text_mean=np.zeros(5))


@pytest.mark.slow
def test_caption_sets_decompose_each_documents_mean_embedding(splice):
    sets = [["a dog catching a frisbee", "a brown dog jumps for a frisbee"], [], ["two children playing in the snow"]]
    docs = splice.encode_caption_sets(sets)
    assert docs.shape == (3, splice.dim) and docs[1].nnz == 0
    emb = splice.dense.embed_text(sets[0]).mean(axis=0, keepdims=True)
    want = splice.decompose(emb / np.linalg.norm(emb), splice.text_mean)
    np.testing.assert_allclose(docs[0].toarray(), want.toarray(), atol=1e-5)
    np.testing.assert_allclose(docs[2].toarray(), splice.encode_text(sets[2]).toarray(), atol=1e-5)
