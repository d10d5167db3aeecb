"""The caption-word channel: terms, plural forms, document rows, veto dims, persistence."""
import json

import numpy as np
import pytest
import scipy.sparse as sp

from sparse_engine.errors import SparseEngineError
from sparse_engine.words import WordChannel, caption_terms, plural_forms, term_keys

DOCS = [["a dog on the grass", "the dog and a frisbee"], ["a hot dog with a bun"], ["hot dog stand", "a man"],
        ["two dogs"]]


def test_caption_terms_skip_stopwords_and_let_them_break_phrases():
    words, phrases = caption_terms("A dog and a frisbee on the green grass")
    assert words == {"dog", "frisbee", "green", "grass"}
    assert phrases == {"green grass"}  # "dog and a frisbee": the stopwords break the phrase


@pytest.mark.parametrize("word, forms", [
    ("dog", ["dog", "dogs"]), ("dogs", ["dogs", "dog"]), ("person", ["person", "people"]),
    ("people", ["people", "person"]), ("skis", ["skis", "ski"]), ("bus", ["bus", "buses"]),
    ("baby", ["baby", "babies"]), ("sheep", ["sheep"]), ("glass", ["glass", "glasses"]),
])  # fmt: skip
def test_plural_forms(word, forms):
    assert plural_forms(word) == forms


def test_term_keys_cover_words_and_two_word_phrases_only():
    assert term_keys("Dining Table") == ["dining table", "dining tables"]
    assert term_keys("the dog") == ["dog", "dogs"]
    assert term_keys("big red fire truck") == [] and term_keys("the") == []


def test_build_keeps_phrases_of_two_documents_and_every_word():
    channel = WordChannel.build(DOCS, offset=5)
    assert "hot dog" in channel.terms and "dog stand" not in channel.terms  # 2 documents vs 1
    assert {"dog", "dogs", "grass", "frisbee", "bun", "man", "stand"} <= set(channel.terms)
    assert channel.terms == sorted(channel.terms) and channel.n_terms == len(set(channel.terms))


def test_doc_rows_are_caption_share_times_idf_unit_rows():
    channel = WordChannel.build(DOCS, offset=0)
    rows = channel.doc_rows(DOCS).toarray()
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
    idf = lambda df: np.log((len(DOCS) + 1) / (df + 1))  # noqa: E731
    # document 0: "dog" in 2 of 2 captions (3 documents say "dog": "hot dog" counts, "dogs" does
    # not), "frisbee" in 1 of 2 (1 document)
    d0 = rows[0]
    ratio = d0[channel.index["dog"]] / d0[channel.index["frisbee"]]
    assert ratio == pytest.approx((1.0 * idf(3)) / (0.5 * idf(1)), rel=1e-5)
    assert rows[3, channel.index["dog"]] == 0 and rows[3, channel.index["dogs"]] > 0


def test_attach_keeps_the_concepts_and_scales_the_words():
    channel = WordChannel.build(DOCS, offset=3, weight=0.6)
    concepts = sp.csr_matrix(np.eye(4, 3, dtype=np.float32))
    out = channel.attach(concepts, DOCS).toarray()
    assert out.shape == (4, 3 + channel.n_terms)
    np.testing.assert_array_equal(out[:, :3], concepts.toarray())
    np.testing.assert_allclose(np.linalg.norm(out[:, 3:], axis=1), 0.6, rtol=1e-5)
    with pytest.raises(SparseEngineError, match="word channel starts at 3"):
        channel.attach(sp.csr_matrix((4, 5), dtype=np.float32), DOCS)


def test_dims_extend_and_veto_dims():
    channel = WordChannel.build(DOCS, offset=10, weight=0.5)
    dog = channel.dims(["dog"])
    assert sorted(dog.tolist()) == sorted(10 + channel.index[t] for t in ("dog", "dogs"))
    assert channel.dims(["giraffe"]).size == 0
    vec = channel.extend(np.arange(10, dtype=np.float32), "hot dog")
    assert vec.shape == (10 + channel.n_terms,) and vec[10 + channel.index["hot dog"]] == 0.5
    assert vec[10 + channel.index["dog"]] == 0.0  # the phrase, not its words
    table = {"person": ["man"], "dog": ["frisbee"], "frisbee": ["dog"], "bun": ["dog"]}
    realizations = lambda t: table.get(t, [])  # noqa: E731
    veto = channel.veto_dims(["dog"], ["person"], realizations)
    assert veto.tolist() == [10 + channel.index["man"]]  # "person" itself names no caption term here
    dog = sorted(10 + channel.index[t] for t in ("dog", "dogs"))
    # the excluded term itself is always vetoed, even when it realizes the included one ...
    assert channel.veto_dims(["frisbee"], ["dog"], realizations).tolist() == dog
    # ... its realizations are not when they realize (or are) the included term
    assert channel.veto_dims(["dog"], ["bun"], realizations).tolist() == [10 + channel.index["bun"]]
    assert channel.veto_dims(["grass"], ["dog"], realizations).size == 3  # dog, dogs, frisbee


def test_save_load_round_trip_and_checks(tmp_path):
    channel = WordChannel.build(DOCS, offset=7, weight=0.6)
    fragment = channel.save(tmp_path)
    loaded = WordChannel.load(tmp_path, fragment)
    assert loaded.terms == channel.terms and loaded.offset == 7 and loaded.weight == 0.6
    path = tmp_path / fragment["file"]
    path.write_text(json.dumps(channel.terms[:-1]))
    with pytest.raises(SparseEngineError, match="fails its checksum"):
        WordChannel.load(tmp_path, fragment)
    with pytest.raises(SparseEngineError, match="does not hold the"):
        WordChannel.load(tmp_path, {**fragment, "sha256": __import__("hashlib").sha256(path.read_bytes()).hexdigest()})
    path.unlink()
    with pytest.raises(SparseEngineError, match="cannot read the index's caption words"):
        WordChannel.load(tmp_path, fragment)
    with pytest.raises(SparseEngineError, match="word weight must be positive"):
        WordChannel(["a"], 0, weight=0.0)
