import numpy as np
import pytest
import scipy.sparse as sp

from sparse_engine.encoders.masks import SpineTable
from sparse_engine.errors import SparseEngineError


@pytest.fixture()
def table():
    codes = sp.csr_matrix(np.array([
        [1.0, 0.5, 0, 0, 0, 0],   # dog
        [0, 0, 1.0, 0, 0, 0],     # frisbee
        [0, 0, 0, 0.8, 0, 1.0],   # pizza
    ], dtype=np.float32))  # fmt: skip
    return SpineTable(["dog", "frisbee", "pizza"], codes)


def test_caption_vectors_are_sparse_and_normalised(table):
    vec = table.caption_vectors(["A dog catches a frisbee.", "pizza", "nothing known here", ""])
    assert vec.shape == (4, 6) and vec.dtype == np.float32
    dense = vec.toarray()
    np.testing.assert_allclose(np.linalg.norm(dense[:2], axis=1), 1.0, rtol=1e-6)
    assert not dense[2:].any()
    assert set(np.flatnonzero(dense[0])) == {0, 1, 2}
    expected = np.array([1.0, 0.5, 1.0, 0, 0, 0]) / np.linalg.norm([1.0, 0.5, 1.0])
    np.testing.assert_allclose(dense[0], expected, rtol=1e-6)


def test_masks_are_binary_union_of_word_dims(table):
    masks = table.caption_masks(["DOG dog pizza", "frisbee"])
    assert masks.dtype == bool
    assert masks[0].indices.tolist() == [0, 1, 3, 5] and masks[1].indices.tolist() == [2]
    dims, acts = table.word_dims("Pizza")
    assert dims.tolist() == [5, 3] and acts.tolist() == pytest.approx([1.0, 0.8])
    assert table.word_dims("cat")[0].size == 0


def test_save_load_round_trip(table, tmp_path):
    table.save(tmp_path)
    back = SpineTable.load(tmp_path)
    assert back.vocab == table.vocab and back.vocab_hash == table.vocab_hash
    np.testing.assert_allclose(back.codes.toarray(), table.codes.toarray(), atol=1e-3)
    (tmp_path / "vocab.json").write_text("{broken")
    with pytest.raises(SparseEngineError, match="cannot read the SPINE table"):
        SpineTable.load(tmp_path)


def test_row_count_must_match():
    with pytest.raises(SparseEngineError, match="2 words but 1 code rows"):
        SpineTable(["a", "b"], sp.csr_matrix((1, 4), dtype=np.float32))
