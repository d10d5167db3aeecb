import numpy as np
import pytest

from sparse_engine.encoders import spine
from sparse_engine.encoders.captions_io import all_texts, read_captions
from sparse_engine.errors import SparseEngineError


@pytest.fixture(scope="module")
def flickr_texts(shared_data):
    caps = read_captions(shared_data / "flickr8k" / "captions.csv")
    return list(all_texts(dict(list(caps.items())[:200])))


def test_tokenize_and_vocabulary(flickr_texts):
    assert spine.tokenize("A dog's Frisbee, 2 dogs!") == ["a", "dog", "s", "frisbee", "dogs"]
    index, vectors = spine.load_glove()
    assert vectors.shape == (400000, 50) and "dog" in index
    vocab = spine.build_vocabulary(flickr_texts, index, min_count=2)
    assert vocab == sorted(vocab) and "dog" in vocab
    assert not set(vocab) & {"a", "the", "is", "of"}
    with pytest.raises(SparseEngineError, match="vocabulary is empty"):
        spine.build_vocabulary(["zzqx zzqx"], index)


def test_spine_trains_and_codes_are_sparse(flickr_texts):
    index, _ = spine.load_glove()
    vocab = spine.build_vocabulary(flickr_texts, index)
    x = spine.glove_matrix(vocab)
    cfg = spine.SpineConfig(dims=64, epochs=30, seed=1)
    model, history = spine.train_spine(x, cfg)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]
    codes = spine.spine_codes(model, x, threshold=cfg.code_threshold, max_dims=8)
    assert codes.shape == (len(vocab), 64)
    assert codes.data.min() > cfg.code_threshold and codes.data.max() <= 1.0
    per_word = np.diff(codes.indptr)
    assert per_word.max() <= 8
    report = spine.sparsity_report(codes)
    assert report["active_dims_per_word"] <= 8 and 0.0 <= report["share_fractional"] <= 1.0
    labels = spine.top_words(codes, vocab, 3, spine.pre_activations(model, x))
    assert len(labels) == 64 and all(len(words) <= 3 for words in labels)
    assert sum(bool(words) for words in labels) > 32  # most dims are alive
    # every labelled word really fires the dim it labels
    col = codes.tocsc()
    j = next(i for i, words in enumerate(labels) if words)
    assert vocab.index(labels[j][0]) in col.indices[col.indptr[j] : col.indptr[j + 1]]
