import json

import numpy as np
import pytest

from sparse_engine.docmeta import DocMeta, DocStore, write_docmeta
from sparse_engine.errors import SparseEngineError

DOCS = [
    DocMeta("000000000139", "images/000000000139.jpg", ["A woman in a kitchen.", "Ünïcode caption"]),
    DocMeta("a/b", "sub/a/b.png", []),
    DocMeta("x", "x.jpg", ["one", "two", "three"]),
]


def test_round_trip_by_index_and_id(tmp_path):
    fragment = write_docmeta(tmp_path, DOCS)
    assert fragment["n_docs"] == 3
    json.dumps(fragment)  # goes into manifest.json
    store = DocStore(tmp_path, fragment)
    assert len(store) == 3
    for i, doc in enumerate(DOCS):
        assert store.get(i) == doc
        assert store.get_by_id(doc.id) == doc
        assert store.index_of(doc.id) == i
        assert store.id_of(i) == doc.id


def test_offsets_point_at_lines(tmp_path):
    fragment = write_docmeta(tmp_path, DOCS)
    offsets = np.load(tmp_path / fragment["files"]["offsets"])
    data = (tmp_path / fragment["files"]["jsonl"]).read_bytes()
    assert offsets[-1] == len(data)
    assert json.loads(data[offsets[1] : offsets[2]])["id"] == "a/b"


def test_errors(tmp_path):
    fragment = write_docmeta(tmp_path, DOCS)
    store = DocStore(tmp_path, fragment)
    with pytest.raises(SparseEngineError, match="no document with id 'nope'"):
        store.get_by_id("nope")
    with pytest.raises(SparseEngineError, match="out of range"):
        store.get(3)
    with pytest.raises(SparseEngineError, match="duplicate document id"):
        write_docmeta(tmp_path / ".", [DOCS[0], DOCS[0]])


def test_corrupt_ids_detected(tmp_path):
    fragment = write_docmeta(tmp_path, DOCS)
    np.save(tmp_path / fragment["files"]["ids"], np.array(["p", "q", "r"]))
    with pytest.raises(SparseEngineError, match="corrupt"):
        DocStore(tmp_path, fragment)


def test_empty_collection(tmp_path):
    fragment = write_docmeta(tmp_path, [])
    assert len(DocStore(tmp_path, fragment)) == 0
