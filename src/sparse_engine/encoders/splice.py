"""SpLiCE baseline: sparse non-negative concept decompositions of dense embeddings.

Bhalla et al. 2024, "Interpreting CLIP with Sparse Linear Concept Embeddings (SpLiCE)".
A dense embedding ``x`` is written as a sparse non-negative mix of concept embeddings::

    w* = argmin_{w >= 0}  ||x - C^T w||^2 + 2 * l1 * ||w||_1

``C`` (k x d) holds the concept words embedded by the *same* dense model.

Centring (as in SpLiCE): both sides are mean-centred and re-normalised before solving, because
raw embeddings of one modality share a large common direction that every concept would otherwise
"explain". SpLiCE subtracts the modality mean: concepts are centred by the mean of the concept
embeddings; text inputs by the mean of the training caption embeddings (Flickr8k captions by
default; never COCO val2017, which is the benchmark); image inputs by ``image_mean`` (an array or a
``.npy`` path) or, if none is given, by the mean of the batch being encoded (the collection, when
an index is built).

The solver is FISTA with adaptive restart, run on the whole batch at once in torch (CUDA when
present). Rows are independent: each row stops when its own update falls below ``tol``, so a row's
result does not depend on the rows it was batched with (up to float rounding).
"""
from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError
from .base import EncodeReport, SparseEncoder, clean_texts, flatten_sets

log = logging.getLogger(__name__)

DEFAULT_CAPTIONS = Path(__file__).resolve().parents[4] / "shared" / "data" / "flickr8k" / "captions.csv"

# Function words carry no visual concept; SpLiCE's vocabulary is content words only.
STOPWORDS = frozenset(
    """a an the and or but nor so yet of in on at to from by for with without within into onto upon over
    under above below about across after against along amid among around as before behind beneath beside
    besides between beyond down during except inside near off out outside past since than through
    throughout till toward towards until up via is are was were be been being am do does did doing have
    has had having will would shall should can could may might must it its itself this that these those
    there here he him his she her hers they them their theirs we us our you your i me my mine who whom
    whose which what where when while why how all any both each few more most other some such no not
    only own same too very just also then once again ever some one another else very really almost
    something someone anything everything nothing very s t re ve ll d""".split()
)


def caption_vocabulary(
    captions_csv: str | Path = DEFAULT_CAPTIONS, size: int = 3000, min_count: int = 5, min_len: int = 3
) -> list[str]:
    """The ``size`` most frequent content words of a captions.csv (``image,caption``), by frequency."""
    counts: Counter[str] = Counter()
    for caption in read_captions_csv(captions_csv):
        counts.update(re.findall(r"[a-z]+", caption.lower()))
    words = [
        w for w, n in counts.most_common()
        if n >= min_count and len(w) >= min_len and w not in STOPWORDS
    ]
    if not words:
        raise SparseEngineError(f"no concept words found in {captions_csv}")
    return words[:size]


def read_captions_csv(path: str | Path) -> list[str]:
    """Captions of a Flickr8k-style ``image,caption`` CSV."""
    path = Path(path)
    if not path.is_file():
        raise SparseEngineError(f"captions file not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "caption" not in reader.fieldnames:
            raise SparseEngineError(f"{path} has no 'caption' column (expected image,caption)")
        return [row["caption"] for row in reader if row.get("caption")]


def _centre(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32) - mean[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def solve_nonneg_lasso(
    x: np.ndarray,
    concepts: np.ndarray,
    l1: float,
    max_iter: int = 500,
    tol: float = 1e-4,
    chunk: int = 4096,
    device: str = "cpu",
) -> np.ndarray:
    """Batched ``argmin_{w>=0} ||x - C^T w||^2 + 2*l1*||w||_1`` for every row of ``x``.

    ``x``: (n, d), ``concepts``: (k, d). Returns dense (n, k) float32 with exact zeros.
    FISTA with gradient-based restart; a row stops once max |w_t - w_{t-1}| <= tol.
    """
    import torch

    x = np.asarray(x, dtype=np.float32)
    concepts = np.asarray(concepts, dtype=np.float32)
    if x.ndim != 2 or concepts.ndim != 2 or x.shape[1] != concepts.shape[1]:
        raise SparseEngineError(
            f"SpLiCE: embeddings {x.shape} and concepts {concepts.shape} do not share a dimension"
        )
    if l1 < 0:
        raise SparseEngineError(f"SpLiCE: l1 must be >= 0, got {l1}")
    C = torch.from_numpy(concepts).to(device)
    # Lipschitz constant of the smooth part's gradient (of 0.5||x - C^T w||^2): the largest
    # eigenvalue of C^T C (d x d, cheap) equals that of C C^T.
    lip = float(torch.linalg.eigvalsh((C.T @ C).double())[-1])
    step = 1.0 / max(lip, 1e-12)
    out = np.zeros((len(x), len(concepts)), dtype=np.float32)
    for start in range(0, len(x), chunk):
        X = torch.from_numpy(x[start : start + chunk]).to(device)
        out[start : start + len(X)] = _fista(X, C, l1, step, max_iter, tol).cpu().numpy()
    return out


def _fista(X, C, l1: float, step: float, max_iter: int, tol: float):
    import torch

    n, k = X.shape[0], C.shape[0]
    W = torch.zeros(n, k, dtype=X.dtype, device=X.device)
    Y = W.clone()
    t = torch.ones(n, dtype=X.dtype, device=X.device)
    CX = X @ C.T  # (n, k): the fixed part of the gradient
    active = torch.arange(n, device=X.device)
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        Ya, Wold = Y[active], W[active]
        grad = (Ya @ C) @ C.T - CX[active]
        Wn = torch.clamp(Ya - step * (grad + l1), min=0.0)
        delta = Wn - Wold
        # Restart momentum for rows where the step went "uphill" (O'Donoghue & Candes 2015).
        restart = ((Ya - Wn) * delta).sum(dim=1) > 0
        ta = t[active]
        tn = (1.0 + torch.sqrt(1.0 + 4.0 * ta * ta)) / 2.0
        beta = torch.where(restart, torch.zeros_like(ta), (ta - 1.0) / tn)
        tn = torch.where(restart, torch.ones_like(tn), tn)
        W[active] = Wn
        Y[active] = Wn + beta[:, None] * delta
        t[active] = tn
        done = delta.abs().amax(dim=1) <= tol
        active = active[~done]
    return W


class SpliceEncoder(SparseEncoder):
    """SpLiCE over any dense encoder: one dimension per concept word.

    ``vocab``: a list of concept words, or a path to a text file (one word a line); default: the
    ``vocab_size`` most frequent content words of ``captions`` (Flickr8k).
    ``text_mean``: mean used to centre text inputs (array or .npy path); default: the mean of the
    dense embeddings of ``captions``.
    """

    def __init__(
        self,
        dense_name: str = "minilm",
        l1: float = 0.1,
        vocab: Sequence[str] | str | Path | None = None,
        vocab_size: int = 3000,
        captions: str | Path = DEFAULT_CAPTIONS,
        text_mean: np.ndarray | str | Path | None = None,
        image_mean: np.ndarray | str | Path | None = None,
        dense=None,
        max_iter: int = 500,
        tol: float = 1e-4,
        device: str | None = None,
        **dense_kwargs,
    ):
        if dense is None:
            from .registry import create_dense_encoder

            dense = create_dense_encoder(dense_name or "minilm", **dense_kwargs)
        self.dense = dense
        self.l1 = float(l1)
        if self.l1 < 0:
            raise SparseEngineError(f"SpLiCE: l1 must be >= 0, got {l1}")
        self.max_iter, self.tol = int(max_iter), float(tol)
        self._captions = Path(captions)
        self._device = device
        self.vocab = self._load_vocab(vocab, vocab_size)
        self.dim = len(self.vocab)
        self.name = f"splice:{dense.name}"
        self._text_mean = self._load_mean(text_mean) if text_mean is not None else None
        self._image_mean = self._load_mean(image_mean) if image_mean is not None else None
        raw = self.dense.embed_text(self.vocab)
        self.concepts = _centre(raw, raw.mean(axis=0))
        self.checkpoint_hash = self._hash()

    # -- setup --------------------------------------------------------------------------------
    def _load_vocab(self, vocab, vocab_size: int) -> list[str]:
        if vocab is None:
            words = caption_vocabulary(self._captions, size=vocab_size)
        elif isinstance(vocab, (str, Path)):
            path = Path(vocab)
            if not path.is_file():
                raise SparseEngineError(f"SpLiCE vocabulary file not found: {path}")
            words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines()]
        else:
            words = [str(w).strip() for w in vocab]
        words = list(dict.fromkeys(w for w in words if w))  # de-duplicate, keep order
        if not words:
            raise SparseEngineError("SpLiCE vocabulary is empty")
        return words

    def _load_mean(self, mean) -> np.ndarray:
        if isinstance(mean, (str, Path)):
            if not Path(mean).is_file():
                raise SparseEngineError(f"SpLiCE mean file not found: {mean}")
            mean = np.load(mean, allow_pickle=False)
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        if mean.shape[0] != self.dense.dim:
            raise SparseEngineError(
                f"SpLiCE mean has {mean.shape[0]} values, the dense encoder has {self.dense.dim} dims"
            )
        return mean

    @property
    def text_mean(self) -> np.ndarray:
        """Mean embedding of the training captions (computed lazily; cached rows make it cheap)."""
        if self._text_mean is None:
            captions = read_captions_csv(self._captions)
            self._text_mean = self.dense.embed_text(captions).mean(axis=0).astype(np.float32)
        return self._text_mean

    def _hash(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.name}|l1={self.l1}|".encode())
        h.update("\n".join(self.vocab).encode())
        h.update(self._captions.name.encode() if self._text_mean is None else self._text_mean.tobytes())
        return h.hexdigest()[:16]

    # -- SparseEncoder ------------------------------------------------------------------------
    @property
    def has_images(self) -> bool:
        return bool(getattr(self.dense, "has_images", False))

    def dim_labels(self) -> list[list[str]]:
        return [[w] for w in self.vocab]

    def decompose(self, embeddings: np.ndarray, mean: np.ndarray) -> sp.csr_matrix:
        """SpLiCE weights of raw dense embeddings, centred by ``mean``; all-zero rows stay empty."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        keep = np.flatnonzero(np.abs(embeddings).sum(axis=1) > 0)
        out = np.zeros((len(embeddings), self.dim), dtype=np.float32)
        if len(keep):
            from .dense_text import pick_device

            x = _centre(embeddings[keep], mean)
            out[keep] = solve_nonneg_lasso(
                x, self.concepts, self.l1, self.max_iter, self.tol, device=pick_device(self._device)
            )
        result = sp.csr_matrix(out)
        result.eliminate_zeros()
        return result

    def encode_text(self, texts: Sequence[str]) -> sp.csr_matrix:
        texts, empty = clean_texts(texts)
        dense = self.dense.embed_text(texts)
        dense[empty] = 0.0
        return self.decompose(dense, self.text_mean)

    def encode_caption_sets(self, caption_sets: Sequence[Sequence[str]], pooling: str = "mean") -> sp.csr_matrix:
        """One row per document: SpLiCE decomposes the document's own embedding (the mean of its
        captions' embeddings), as it decomposes an image's, rather than pooling per-caption
        decompositions (5x fewer problems to solve on COCO)."""
        if pooling != "mean":
            return super().encode_caption_sets(caption_sets, pooling)
        flat, owner = flatten_sets(caption_sets)
        dense = np.zeros((len(caption_sets), self.dense.dim), dtype=np.float32)
        if flat:
            texts, empty = clean_texts(flat)
            rows = self.dense.embed_text(texts)
            rows[empty] = 0.0
            np.add.at(dense, owner, rows)
            norms = np.linalg.norm(dense, axis=1, keepdims=True)  # the L2-normalised mean, as the dense docs
            dense = dense / np.where(norms > 0, norms, 1.0)
        return self.decompose(dense, self.text_mean)

    def encode_images(self, paths: Sequence[str], report: EncodeReport | None = None) -> sp.csr_matrix:
        if not self.has_images:
            return super().encode_images(paths, report)
        dense = self.dense.embed_images(paths, report)
        mean = self._image_mean
        if mean is None:
            ok = dense[np.abs(dense).sum(axis=1) > 0]
            if len(ok) < 2:
                raise SparseEngineError(
                    "SpLiCE needs an image mean to centre images: pass image_mean=... or encode a collection"
                )
            log.info("SpLiCE: centring images by the mean of the %d images in this batch", len(ok))
            mean = ok.mean(axis=0)
        return self.decompose(dense, mean)
