import numpy as np
import pytest

from sparse_engine.encoders import create_dense_encoder
from sparse_engine.encoders.captions_io import flatten
from sparse_engine.encoders.spine import SpineConfig
from sparse_engine.encoders.losses import info_nce
from sparse_engine.encoders.train import (TrainOptions, fit_spine, load_training_captions,
                                          positive_partners, sr_sparsity, train_sr)
from sparse_engine.errors import SparseEngineError


def test_positive_partners_pair_different_captions_of_one_image():
    owner = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    anchors, partners = positive_partners(owner, np.random.default_rng(0))
    assert sorted(anchors.tolist()) == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # image 1 has one caption: left out
    assert np.all(anchors != partners)
    assert np.all(owner[anchors] == owner[partners])


def test_info_nce_prefers_matching_rows():
    import torch

    a = torch.eye(4)
    assert float(info_nce(a, a, 0.1)) < float(info_nce(a, a.roll(1, dims=0), 0.1))


def test_options_and_captions_are_checked(tmp_path):
    with pytest.raises(SparseEngineError, match="--top-k must be positive"):
        TrainOptions(captions="x", out="y", top_k=0).check()
    with pytest.raises(SparseEngineError, match="--tau must be positive"):
        TrainOptions(captions="x", out="y", tau=0).check()
    single = tmp_path / "one.csv"
    single.write_text("image,caption\na.jpg,a dog\nb.jpg,a cat\n")
    with pytest.raises(SparseEngineError, match="no image with two captions"):
        load_training_captions(single)


@pytest.mark.slow
def test_sr_training_reduces_loss_and_is_sparse(shared_data):
    captions = load_training_captions(shared_data / "flickr8k" / "captions.csv", max_images=300)
    texts, owner = flatten(captions)
    opts = TrainOptions(captions="", out="", dims=64, top_k=8, epochs=3, device="cpu",
                        spine=SpineConfig(epochs=15, max_dims_per_word=6)).check()
    table, labels, report = fit_spine(texts, opts, "cpu")
    assert table.dim == 64 and len(labels) == 64
    assert report["last_loss"]["loss"] < report["first_loss"]["loss"]
    assert report["sparsity"]["active_dims_per_word"] <= 6
    x = create_dense_encoder("minilm", device="cpu").embed_text(texts)
    net, history, seconds = train_sr(x, np.asarray(owner), table, texts, opts, "cpu")
    assert len(history) == 3 and len(seconds) == 3
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["contrast"] < history[0]["contrast"]
    stats = sr_sparsity(net, x, table, texts, opts, "cpu")
    assert 0 < stats["sr_nnz_mean"] <= opts.top_k + stats["caption_mask_dims_mean"] + 1e-6


def test_soft_kl_matches_numpy():
    import torch

    from sparse_engine.encoders.losses import _soft_kl

    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 40)), rng.normal(size=(5, 40))

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    lt, ls = log_softmax(teacher / 0.05), log_softmax(student / 0.05)
    want = np.mean(np.sum(np.exp(lt) * (lt - ls), axis=1))
    got = float(_soft_kl(torch.from_numpy(teacher), torch.from_numpy(student), 0.05))
    assert got == pytest.approx(want, rel=1e-9) and got > 0
    assert float(_soft_kl(torch.from_numpy(teacher), torch.from_numpy(teacher + 3.0), 0.05)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_distillation_term_brings_the_sparse_similarities_closer_to_the_dense_model(shared_data):
    from sparse_engine.encoders.train import WordQueries

    captions = load_training_captions(shared_data / "flickr8k" / "captions.csv", max_images=200)
    texts, owner = flatten(captions)
    base = TrainOptions(captions="", out="", dims=64, top_k=8, epochs=4, device="cpu", lambda_word=0.0,
                        spine=SpineConfig(epochs=10, max_dims_per_word=6))
    table, _, report = fit_spine(texts, base.check(), "cpu")
    dense = create_dense_encoder("minilm", device="cpu")
    x = dense.embed_text(texts)
    vocab = table.vocab[: report["vocab_size"]]
    words = WordQueries.build(vocab, texts, table, dense.embed_text(vocab))
    opts = TrainOptions(**{**base.__dict__, "lambda_distill": 1.0, "distill_words": 64}).check()
    _, history, _ = train_sr(x, np.asarray(owner), table, texts, opts, "cpu", words=words)
    assert "distill" in history[0] and "word" not in history[0]
    assert 0.0 <= history[-1]["distill"] < history[0]["distill"]  # the KL to the dense similarities falls
    assert "distill" not in train_sr(x, np.asarray(owner), table, texts, base, "cpu", words=words)[1][0]


def test_word_queries_image_scope_shares_the_words_of_an_image_s_captions():
    import scipy.sparse as sp

    from sparse_engine.encoders.masks import SpineTable
    from sparse_engine.encoders.train import WordQueries

    words = ["cat", "dog", "man", "runs", "sleeps"]
    table = SpineTable(words, sp.csr_matrix(np.eye(5, 8, dtype=np.float32)))
    texts, owner = ["a dog runs", "a man", "a cat sleeps"], np.array([0, 0, 1])
    x = np.zeros((5, 3), np.float32)

    def used(q):
        return [sorted(words[j] for j in q.uses[i].indices) for i in range(len(texts))]

    assert used(WordQueries.build(words, texts, table, x)) == [["dog", "runs"], ["man"], ["cat", "sleeps"]]
    image = WordQueries.build(words, texts, table, x, owner=owner)
    assert used(image) == [["dog", "man", "runs"], ["dog", "man", "runs"], ["cat", "sleeps"]]
    picked = image.pick(np.array([1, 1, 1, 1, 1, 1, 1, 1]), np.random.default_rng(0))
    assert set(words[j] for j in picked) <= {"dog", "man", "runs"}
