"""Caption masks: which SPINE dims a caption's words switch on.

``SpineTable`` holds what inference needs of SPINE: the vocabulary, each word's sparse code (CSR)
and the dims' labels. A caption's vector is the L2-normalised mean of the codes of its
in-vocabulary words (d-dim, sparse); its *mask* is that vector binarised with ``> 0``. A caption
with no known word gets an empty row (and so an all-False mask).

Stored as ``spine.safetensors`` (CSR arrays: indptr int64, indices int32, data fp16; no pickle)
plus ``vocab.json`` (the words, in row order).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError
from .base import unit_rows
from .spine import tokenize

SPINE_FILE = "spine.safetensors"
VOCAB_FILE = "vocab.json"


def vocabulary_hash(vocab: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()


class SpineTable:
    def __init__(self, vocab: Sequence[str], codes: sp.csr_matrix):
        codes = sp.csr_matrix(codes, dtype=np.float32)
        if codes.shape[0] != len(vocab):
            raise SparseEngineError(f"SPINE table mismatch: {len(vocab)} words but {codes.shape[0]} code rows")
        self.vocab = list(vocab)
        self.codes = codes
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    @property
    def vocab_hash(self) -> str:
        return vocabulary_hash(self.vocab)

    def word_rows(self, texts: Sequence[str]) -> sp.csr_matrix:
        """(n_texts × vocab) counts of each text's in-vocabulary words."""
        rows, cols = [], []
        for i, text in enumerate(texts):
            for tok in tokenize(text if isinstance(text, str) else ""):
                j = self.index.get(tok)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        data = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(texts), len(self.vocab)), dtype=np.float32)

    def caption_vectors(self, texts: Sequence[str]) -> sp.csr_matrix:
        """L2-normalised mean SPINE code of each text's known words (float32 CSR, n × d)."""
        counts = self.word_rows(texts)
        out = unit_rows(counts @ self.codes)  # the mean's 1/n vanishes in the normalisation
        out.eliminate_zeros()
        return out

    def caption_masks(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Binary (bool CSR) masks: the dims where the caption vector is > 0."""
        vec = self.caption_vectors(texts)
        return sp.csr_matrix((np.ones(vec.nnz, dtype=bool), vec.indices, vec.indptr), shape=vec.shape)

    def word_dims(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """(dims, activations) of one word, strongest first; empty when the word is unknown."""
        i = self.index.get(word.lower())
        if i is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        row = self.codes[i]
        order = np.argsort(-row.data, kind="stable")
        return row.indices[order].astype(np.int32), row.data[order]

    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        directory = Path(directory)
        codes = self.codes
        save_file(
            {"indptr": codes.indptr.astype(np.int64), "indices": codes.indices.astype(np.int32),
             "data": codes.data.astype(np.float16), "shape": np.array(codes.shape, dtype=np.int64)},
            str(directory / SPINE_FILE),
        )
        (directory / VOCAB_FILE).write_text(json.dumps(self.vocab), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "SpineTable":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        directory = Path(directory)
        try:
            arrays = load_file(str(directory / SPINE_FILE))
            vocab = json.loads((directory / VOCAB_FILE).read_text(encoding="utf-8"))
            shape = tuple(int(v) for v in arrays["shape"])
            codes = sp.csr_matrix(
                (arrays["data"].astype(np.float32), arrays["indices"], arrays["indptr"]), shape=shape
            )
        except (OSError, KeyError, ValueError, SafetensorError, json.JSONDecodeError) as exc:
            raise SparseEngineError(f"cannot read the SPINE table in '{directory}': {exc}") from exc
        if not isinstance(vocab, list):
            raise SparseEngineError(f"'{directory / VOCAB_FILE}' is not a list of words")
        return cls(vocab, codes)
