"""PostingStore: per-dim posting lists with uint8 impacts, plus the forward doc->dims rows.

impact = ceil(weight / scale) in 1..255, with scale = (largest weight) / 255: an impact is an
*upper bound* of its weight, so the traversal can prune on impacts and stay exact. Posting lists
are impact-descending within a dim (ties by doc ascending): the early-termination traversal reads
the best postings first. The forward CSR (dims ascending per doc) keeps the exact weights (as
float32 ``weight / scale``): it scores candidates, checks vetoes, and feeds explanations and the
Lucene writer (which takes ``round(weight / scale)``, Lucene's integer impacts).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import kernels
from .errors import SparseEngineError

FORMAT = "posting-store/2"
ARRAYS = {  # name -> dtype
    "post_ptr": np.int64, "post_docs": np.int32, "post_imps": np.uint8, "max_imp": np.uint8,
    "fwd_ptr": np.int64, "fwd_dims": np.int32, "fwd_w": np.float32,
}  # fmt: skip
FULL_HASH_BYTES = 16 << 20  # arrays up to this size are hashed whole; bigger ones sampled
SAMPLE_BYTES = 1 << 20  # head, middle and tail samples of a big array
HEADROOM = 1.0 + 1e-6  # the largest weight / scale stays just under 255 despite float rounding


def choose_scale(data: np.ndarray) -> float:
    """Scale from the data: the largest weight maps to impact 255.

    Impacts only bound scores (the exact weights score), so an outlier costs pruning, not
    correctness. (A scale at the 99.9th percentile, clipping the top weights, cut recall@10 to
    0.62 on the speed benchmark's Zipf data when impacts scored.)
    """
    top = float(data.max()) if data.size else 0.0
    return top / 255.0 * HEADROOM if top > 0 else 1.0


def _checked_csr(vectors) -> sp.csr_matrix:
    if not sp.issparse(vectors):
        raise SparseEngineError(f"PostingStore.build needs a scipy.sparse matrix, got {type(vectors).__name__}")
    if vectors.ndim != 2:
        raise SparseEngineError("PostingStore.build needs a 2-d (documents x dims) matrix")
    csr = sp.csr_matrix(vectors, dtype=np.float32)
    if not np.isfinite(csr.data).all():
        raise SparseEngineError("document vectors contain NaN or infinite weights")
    if (csr.data < 0).any():
        raise SparseEngineError("document vectors contain negative weights: impacts must be >= 0")
    if not csr.has_canonical_format or (csr.data == 0).any():
        csr = csr.copy()  # the arrays may be the caller's: never reorder them in place
        csr.sum_duplicates()
        csr.eliminate_zeros()
    return csr


class PostingStore:
    """Posting lists (doc ids int32, impacts uint8) per dim and the forward rows per doc."""

    def __init__(self, arrays: dict[str, np.ndarray], dim: int, n_docs: int, scale: float):
        self.arrays = arrays
        self.dim, self.n_docs, self.scale = int(dim), int(n_docs), float(scale)
        for name in ARRAYS:
            setattr(self, name, arrays[name])

    @property
    def nnz(self) -> int:
        return int(self.fwd_dims.shape[0])

    def list_lengths(self) -> np.ndarray:
        """Number of postings of every dim (document frequency)."""
        return np.diff(self.post_ptr)

    @classmethod
    def build(cls, vectors: sp.spmatrix, scale: float | None = None) -> "PostingStore":
        """Quantise a (documents x dims) non-negative CSR and invert it."""
        csr = _checked_csr(vectors)
        n_docs, dim = csr.shape
        if scale is None:
            scale = choose_scale(csr.data)
        elif not (np.isfinite(scale) and scale > 0):
            raise SparseEngineError(f"scale must be a positive number, got {scale}")
        scaled = (csr.data / np.float64(scale)).astype(np.float32)
        if scaled.size and float(scaled.max()) > 255.0 * HEADROOM:
            raise SparseEngineError(
                f"scale {scale} is too small: the largest weight would be impact {float(scaled.max()):.0f} > 255"
            )
        imps = np.clip(np.ceil(scaled), 1, 255).astype(np.uint8)
        fwd_ptr = csr.indptr.astype(np.int64)
        fwd_dims = csr.indices.astype(np.int32)
        post_ptr = np.zeros(dim + 1, np.int64)
        post_docs = np.empty(len(imps), np.int32)
        post_imps = np.empty(len(imps), np.uint8)
        kernels.jit.build_postings(fwd_ptr, fwd_dims, imps, dim, post_ptr, post_docs, post_imps)
        lengths = np.diff(post_ptr)
        max_imp = np.zeros(dim, np.uint8)
        max_imp[lengths > 0] = post_imps[post_ptr[:-1][lengths > 0]]  # first = largest
        arrays = dict(post_ptr=post_ptr, post_docs=post_docs, post_imps=post_imps, max_imp=max_imp,
                      fwd_ptr=fwd_ptr, fwd_dims=fwd_dims, fwd_w=scaled)  # fmt: skip
        return cls(arrays, dim, n_docs, float(scale))

    # -- access --------------------------------------------------------------------------------

    def doc_vector(self, doc: int) -> tuple[np.ndarray, np.ndarray]:
        """(dims int32, float32 weights) of one document."""
        if not 0 <= int(doc) < self.n_docs:
            raise SparseEngineError(f"document index {doc} is out of range (the store has {self.n_docs})")
        lo, hi = int(self.fwd_ptr[doc]), int(self.fwd_ptr[doc + 1])
        dims = np.array(self.fwd_dims[lo:hi], dtype=np.int32)
        return dims, (np.asarray(self.fwd_w[lo:hi], dtype=np.float32) * np.float32(self.scale))

    def quantised_csr(self, dtype=np.float32) -> sp.csr_matrix:
        """The documents' weights as the nearest integer impacts 1..255 (Lucene's), (n_docs x dim) CSR."""
        imps = np.clip(np.rint(np.asarray(self.fwd_w)), 1, 255).astype(dtype)
        return sp.csr_matrix((imps, np.asarray(self.fwd_dims), np.asarray(self.fwd_ptr)), shape=(self.n_docs, self.dim))

    def warm(self) -> None:
        """Read every array once so a memory-mapped store's pages are resident (page cache and
        this process's page tables): the first queries then do not pay for page faults."""
        for name in ARRAYS:
            arr = np.asarray(self.arrays[name]).reshape(-1).view(np.uint8)
            for lo in range(0, arr.size, 1 << 26):
                int(arr[lo : lo + (1 << 26) : 4096].sum())  # one byte per page faults it in

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory) -> dict:
        """Write one .npy per array into ``directory``; return the manifest fragment."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        entries = {}
        for name in ARRAYS:
            arr = np.ascontiguousarray(self.arrays[name])
            np.save(directory / f"{name}.npy", arr, allow_pickle=False)
            entries[name] = {"file": f"{name}.npy", "dtype": arr.dtype.str, "shape": list(arr.shape),
                             **_checksum(arr)}  # fmt: skip
        return {"format": FORMAT, "dim": self.dim, "n_docs": self.n_docs, "nnz": self.nnz,
                "scale": self.scale, "impacts": "ceil(weight / scale), descending per dim", "arrays": entries}  # fmt: skip

    @classmethod
    def load(cls, directory, fragment: dict) -> "PostingStore":
        """Memory-map the arrays written by ``save`` and check them against ``fragment``."""
        directory = Path(directory)
        try:
            if fragment.get("format") != FORMAT:
                raise SparseEngineError(f"store format {fragment.get('format')!r} is not {FORMAT!r}")
            dim, n_docs, nnz = int(fragment["dim"]), int(fragment["n_docs"]), int(fragment["nnz"])
            scale, entries = float(fragment["scale"]), fragment["arrays"]
            expected = {"post_ptr": (dim + 1,), "post_docs": (nnz,), "post_imps": (nnz,),
                        "max_imp": (dim,), "fwd_ptr": (n_docs + 1,), "fwd_dims": (nnz,),
                        "fwd_w": (nnz,)}  # fmt: skip
            arrays = {name: _load_array(directory, entries[name], name, ARRAYS[name], expected[name])
                      for name in ARRAYS}  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SparseEngineError(f"store manifest fragment is malformed ({exc!r})") from None
        for ptr, total, name in ((arrays["post_ptr"], nnz, "post_ptr.npy"), (arrays["fwd_ptr"], nnz, "fwd_ptr.npy")):
            if ptr[0] != 0 or ptr[-1] != total or (np.diff(ptr) < 0).any():
                raise SparseEngineError(f"store file {directory / name} holds inconsistent offsets")
        return cls(arrays, dim, n_docs, scale)


def _checksum(arr: np.ndarray) -> dict:
    """sha256 of the whole array when small, else of its head, middle and tail samples."""
    raw = memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    if raw.nbytes <= FULL_HASH_BYTES:
        return {"sha256": hashlib.sha256(raw).hexdigest()}
    mid = raw.nbytes // 2
    h = hashlib.sha256()
    for lo in (0, mid - SAMPLE_BYTES // 2, raw.nbytes - SAMPLE_BYTES):
        h.update(raw[lo : lo + SAMPLE_BYTES])
    return {"sha256_sampled": h.hexdigest(), "bytes": raw.nbytes}


def _load_array(directory: Path, entry: dict, name: str, dtype, shape: tuple) -> np.ndarray:
    path = directory / entry["file"]
    if os.path.basename(entry["file"]) != entry["file"]:
        raise SparseEngineError(f"store array {name} names a file outside the store: {entry['file']}")
    if not path.is_file():
        raise SparseEngineError(f"store file {path} is missing")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SparseEngineError(f"store file {path} cannot be read ({exc})") from None
    if arr.dtype != np.dtype(dtype) or np.dtype(entry["dtype"]) != np.dtype(dtype):
        raise SparseEngineError(f"store file {path} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if tuple(arr.shape) != shape or tuple(entry["shape"]) != shape:
        raise SparseEngineError(f"store file {path} has shape {tuple(arr.shape)}, expected {shape}")
    if _checksum(arr) != {k: entry[k] for k in ("sha256", "sha256_sampled", "bytes") if k in entry}:
        raise SparseEngineError(f"store file {path} fails its checksum (corrupted or replaced)")
    return arr
