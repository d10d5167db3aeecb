"""Search a Lucene impact index (built by ``lucene_index.py``) through Anserini's Java classes.

Query weights are integers (``integer_query``), so on integer vectors a Lucene score is exactly the
dot product the numba store computes.

Exclusion, two ways:
- ``"overfetch"`` (default): fetch ``k * m`` candidates, drop those whose forward weight on an
  excluded dim exceeds ``veto_impact`` (checked in the forward index saved next to the Lucene
  index, or in one the caller passes: the numba store's exact weights / scale make the check
  exact, a float ``veto_impact`` included), refetch with a larger ``m`` when fewer than ``k``
  survive; past ``fetch_limit`` hits (reading each hit through JNI costs ~15 us) fall back to
  one ``MUST_NOT`` query.
  Negative query weights (exclusion by subtraction: Lucene has no negative boosts) and +terms are
  applied the same way: candidates are fetched by the positive part and rescored (or filtered)
  from the forward index. Both only lower scores or drop documents, so once the k-th rescored
  score reaches the last fetched (positive-only) score, no document further down can enter: the
  top-k is exact.
- ``"mustnot"``: one Lucene ``BooleanQuery`` with a ``MUST_NOT`` clause per excluded dim (with
  ``veto_impact > 0``: ``MUST_NOT (term AND FunctionRangeQuery(termfreq > veto_impact))``); it
  tests Lucene's own integer impacts, so a float threshold is rounded down to an integer.
"""
from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .errors import SparseEngineError
from .lucene_index import (FIELD, FORWARD_FILE, ID_FIELD, IDS_FILE, INDEX_SUBDIR, MAX_IMPACT, build_lucene_index,
                           start_jvm, term, write_json_vectors)  # fmt: skip

EXCLUSION_METHODS = ("overfetch", "mustnot")
__all__ = ["LuceneImpactSearcher", "build_lucene_index", "forward_weights", "integer_query", "write_json_vectors"]

# ---------------------------------------------------------------------------------------------
# searching


def _split_terms(dims: Iterable[int], int_weights: Iterable[float]) -> tuple[dict[int, int], dict[int, int]]:
    """Merge duplicate dims and check the weights are integers; (positive terms, |negative| terms)."""
    dims, weights = np.ravel(np.asarray(dims)), np.ravel(np.asarray(int_weights))
    if dims.shape != weights.shape:
        raise SparseEngineError("query dims and weights must have the same length")
    merged: dict[int, int] = {}
    for d, w in zip(dims.tolist(), weights.tolist()):
        if w != round(w):
            raise SparseEngineError(f"Lucene query weights must be integers (dim {d}: {w})")
        merged[int(d)] = merged.get(int(d), 0) + int(w)
    positive = {d: w for d, w in merged.items() if w > 0}
    return positive, {d: -w for d, w in merged.items() if w < 0}


def integer_query(weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Query weights as Lucene takes them: integers ±1..255 relative to the largest magnitude.

    Returns (integer weights, scale): a Lucene score times the scale (and the impacts' scale) is
    the float score.
    """
    weights = np.asarray(weights, dtype=np.float64)
    top = float(np.abs(weights).max()) if weights.size else 0.0
    if top <= 0:
        return np.zeros(weights.shape, dtype=np.int64), 1.0
    qscale = top / float(MAX_IMPACT)
    ints = np.sign(weights) * np.clip(np.rint(np.abs(weights) / qscale), 1, MAX_IMPACT)
    return ints.astype(np.int64), qscale


def forward_weights(store) -> sp.csr_matrix:
    """A PostingStore's exact weights / scale as a CSR: what ``LuceneImpactSearcher(forward=...)``
    checks vetoes and subtractions on."""
    return sp.csr_matrix((np.asarray(store.fwd_w), np.asarray(store.fwd_dims), np.asarray(store.fwd_ptr)),
                         shape=(store.n_docs, store.dim))  # fmt: skip


_LUCENE_CLASSES = {
    "Builder": "org.apache.lucene.search.BooleanQuery$Builder",
    "Occur": "org.apache.lucene.search.BooleanClause$Occur",
    "TermQuery": "org.apache.lucene.search.TermQuery",
    "BoostQuery": "org.apache.lucene.search.BoostQuery",
    "Term": "org.apache.lucene.index.Term",
    "BytesRef": "org.apache.lucene.util.BytesRef",
    "FRQ": "org.apache.lucene.queries.function.FunctionRangeQuery",
    "TFSource": "org.apache.lucene.queries.function.valuesource.TermFreqValueSource",
    "IndexSearcher": "org.apache.lucene.search.IndexSearcher",
    "Similarity": "io.anserini.search.similarity.ImpactSimilarity",
    "DirectoryReader": "org.apache.lucene.index.DirectoryReader",
    "FSDirectory": "org.apache.lucene.store.FSDirectory",
    "File": "java.io.File",
}


class LuceneImpactSearcher:
    """Search a Lucene impact index built by :func:`build_lucene_index`.

    ``forward`` optionally replaces the saved forward impacts used by over-fetch exclusion (any
    integer CSR with the same rows, e.g. the numba store's quantised doc vectors). Over-fetch
    grows its candidate list up to ``fetch_limit`` hits, then falls back to one MUST_NOT query.
    """

    def __init__(self, lucene_dir, forward: sp.csr_matrix | None = None, overfetch: int = 4,
                 fetch_limit: int = 1000):  # fmt: skip
        root = Path(lucene_dir)
        index_dir = root / INDEX_SUBDIR
        if not glob.glob(str(index_dir / "segments_*")):
            raise SparseEngineError(f"no Lucene index in {root} (build it with build_lucene_index)")
        jnius = start_jvm()
        self._jnius = jnius
        self.root = root
        self.doc_ids: list[str] = json.loads((root / IDS_FILE).read_text())
        self._row = {d: i for i, d in enumerate(self.doc_ids)}
        if forward is None:
            forward = sp.load_npz(root / FORWARD_FILE)
        self.forward = sp.csr_matrix(forward)
        if self.forward.shape[0] != len(self.doc_ids):
            raise SparseEngineError("forward impacts and Lucene doc ids disagree on the row count")
        self.overfetch = max(2, int(overfetch))
        self.fetch_limit = int(fetch_limit)
        self._simple = jnius.autoclass("io.anserini.search.SimpleImpactSearcher")(str(index_dir))
        self._HashMap = jnius.autoclass("java.util.HashMap")
        self._ArrayList = jnius.autoclass("java.util.ArrayList")
        self._Integer = jnius.autoclass("java.lang.Integer")
        self._boolean_parts = None  # built on first "mustnot" query
        self.stats = {"refetches": 0, "fallbacks": 0}

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    def close(self) -> None:
        self._simple.close()

    # -- plain top-k through SimpleImpactSearcher ---------------------------------------------

    def _jmap(self, terms: dict[int, int]):
        jmap = self._HashMap()
        for d, w in terms.items():
            jmap.put(term(d), self._Integer(w))
        return jmap

    def _plain(self, terms: dict[int, int], k: int) -> tuple[list[str], np.ndarray]:
        if not terms or k <= 0:
            return [], np.zeros(0, dtype=np.int64)
        hits = self._simple.search(self._jmap(terms), int(k))
        return [h.docid for h in hits], np.array([round(h.score) for h in hits], dtype=np.int64)

    # -- exclusion -----------------------------------------------------------------------------

    def _rescore(self, ids: list[str], scores: np.ndarray, exclude: np.ndarray, veto_impact: float,
                 negative: dict[int, int], must: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kept candidate positions best first, their final scores): candidates with forward weight
        > veto_impact on an excluded dim, or none on the ``must`` dims, dropped; negative weights
        subtracted."""
        rows = np.fromiter((self._row[i] for i in ids), dtype=np.int64, count=len(ids))
        fwd = self.forward[rows]
        keep = np.ones(len(ids), dtype=bool)
        if exclude.size:
            keep &= np.asarray((fwd[:, exclude] > veto_impact).sum(axis=1)).ravel() == 0
        if must.size:
            keep &= np.diff(fwd[:, must].tocsr().indptr) > 0
        final = np.asarray(scores, dtype=np.float64)
        if negative:
            dims = np.fromiter(negative, dtype=np.int64)
            weights = np.fromiter(negative.values(), dtype=np.float64)
            final = final - fwd[:, dims] @ weights
        idx = np.flatnonzero(keep & (final > 0))
        idx = idx[np.argsort(-final[idx], kind="stable")]  # ties keep Lucene's order
        return idx, final[idx]

    def _overfetch(self, terms, k, exclude, veto_impact, first=None, negative=None, must=None):
        negative = negative or {}
        must = np.zeros(0, np.int64) if must is None else must
        m = self.overfetch
        fetched = first
        while True:
            want = min(k * m, self.n_docs)
            ids, scores = fetched if fetched is not None else self._plain(terms, want)
            idx, final = self._rescore(ids, scores, exclude, veto_impact, negative, must) if ids else (np.zeros(0, int), [])
            complete = len(ids) < want or want >= self.n_docs  # every matching document was fetched
            # A document not fetched scores at most the last fetched positive score.
            if complete or (len(idx) >= k and final[k - 1] >= scores[-1]):
                return [ids[i] for i in idx[:k]], np.asarray(final[:k], dtype=np.float64)
            # Grow by the observed survival rate (with a margin), at least 4x.
            alive = max(len(idx), 1) / max(len(ids), 1)
            m = max(m * 4, min(int(np.ceil(1.5 / alive)), m * 64))
            fetched = None
            if min(k * m, self.n_docs) > self.fetch_limit and not negative and not must.size:
                # Each hit costs a few JNI calls: past the limit one MUST_NOT query is cheaper
                # (it can neither subtract nor require: such queries keep fetching).
                self.stats["fallbacks"] += 1
                return self._mustnot(terms, k, exclude, int(np.floor(veto_impact)))
            self.stats["refetches"] += 1

    def _boolean_query(self, terms: dict[int, int], exclude: np.ndarray, veto_impact: int):
        j = self._jnius
        if self._boolean_parts is None:
            p = {name: j.autoclass(cls) for name, cls in _LUCENE_CLASSES.items()}
            path = p["File"](str(self.root / INDEX_SUBDIR)).toPath()
            reader = p["DirectoryReader"].open(p["FSDirectory"].open(path))
            searcher = p["IndexSearcher"](reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
            searcher.setSimilarity(p["Similarity"]())
            p["searcher"] = searcher
            self._boolean_parts = p
        p = self._boolean_parts
        builder = p["Builder"]()
        for d, w in terms.items():
            tq = p["TermQuery"](p["Term"](FIELD, term(d)))
            bq = p["BoostQuery"](tq, float(w))
            builder.add(bq, p["Occur"].SHOULD)
        for d in exclude.tolist():
            tq = p["TermQuery"](p["Term"](FIELD, term(d)))
            if veto_impact <= 0:
                builder.add(tq, p["Occur"].MUST_NOT)
                continue
            # Lead with the term's postings; the range check only runs on those documents.
            source = p["TFSource"](
                FIELD, term(d), FIELD,
                p["BytesRef"](term(d), signature="(Ljava/lang/CharSequence;)V"),
            )  # fmt: skip
            rng = p["FRQ"](
                source, str(veto_impact), str(MAX_IMPACT), False, True,
                signature="(Lorg/apache/lucene/queries/function/ValueSource;"
                "Ljava/lang/String;Ljava/lang/String;ZZ)V",
            )  # fmt: skip
            inner = p["Builder"]()
            inner.add(tq, p["Occur"].FILTER)
            inner.add(rng, p["Occur"].FILTER)
            inner_q = inner.build()
            builder.add(inner_q, p["Occur"].MUST_NOT)
        return builder.build()

    def _mustnot(self, terms, k, exclude, veto_impact):
        p_query = self._boolean_query(terms, exclude, veto_impact)
        p = self._boolean_parts
        searcher = p["searcher"]
        top = searcher.search(p_query, int(k))
        stored = searcher.storedFields()
        ids, scores = [], []
        for hit in top.scoreDocs:
            ids.append(stored.document(hit.doc).get(ID_FIELD))
            scores.append(round(hit.score))
        return ids, np.array(scores, dtype=np.int64)

    # -- public API ----------------------------------------------------------------------------

    def search(self, dims, int_weights, k: int = 10, exclude_dims=(), exclusion: str = "overfetch",
               veto_impact: float = 0, must_dims=()) -> tuple[list[str], np.ndarray]:  # fmt: skip
        """Top-``k`` doc ids and scores; documents with forward weight > ``veto_impact`` on any
        ``exclude_dims``, or with none of ``must_dims``, are dropped. Negative weights are
        subtracted (over-fetch and rescore)."""
        if exclusion not in EXCLUSION_METHODS:
            choices = " or ".join(EXCLUSION_METHODS)
            raise SparseEngineError(f"unknown exclusion method '{exclusion}': choose {choices}")
        terms, negative = _split_terms(dims, int_weights)
        exclude = np.unique(np.asarray(list(exclude_dims), dtype=np.int64))
        must = np.unique(np.asarray(list(must_dims), dtype=np.int64))
        veto_impact = float(veto_impact)
        if not terms or k <= 0:
            return [], np.zeros(0, dtype=np.int64)
        if veto_impact >= MAX_IMPACT:
            exclude = exclude[:0]
        if exclude.size == 0 and not negative and not must.size:
            return self._plain(terms, k)
        if exclusion == "mustnot" and not negative and not must.size:
            return self._mustnot(terms, k, exclude, int(np.floor(veto_impact)))
        return self._overfetch(terms, k, exclude, veto_impact, negative=negative, must=must)

    def batch_search(self, queries: Sequence[tuple], k: int = 10, threads: int = 2,
                     exclusion: str = "overfetch", veto_impact: float = 0,
                     ) -> list[tuple[list[str], np.ndarray]]:  # fmt: skip
        """``queries``: ``(dims, int_weights)`` or ``(dims, int_weights, exclude_dims)`` tuples.

        Plain and over-fetching queries run through Anserini's multi-threaded batch search (one
        batch per fetch depth); ``"mustnot"`` queries with exclusions run one at a time.
        """
        if exclusion == "mustnot":
            return [self.search(q[0], q[1], k, q[2] if len(q) > 2 else (), exclusion, veto_impact) for q in queries]
        parsed = []
        for q in queries:
            exclude = np.unique(np.asarray(list(q[2]) if len(q) > 2 else [], dtype=np.int64))
            if veto_impact >= MAX_IMPACT:
                exclude = exclude[:0]
            parsed.append((*_split_terms(q[0], q[1]), exclude))
        results: list = [([], np.zeros(0, dtype=np.int64))] * len(parsed)
        deep = min(k * self.overfetch, self.n_docs)
        plain = [i for i, (t, neg, ex) in enumerate(parsed) if t and not ex.size and not neg]
        rescored = [i for i, (t, neg, ex) in enumerate(parsed) if t and (ex.size or neg)]
        for want, group in ((k, plain), (deep, rescored)):
            if not group or k <= 0:
                continue
            maps, qids = self._ArrayList(), self._ArrayList()
            for i in group:
                maps.add(self._jmap(parsed[i][0]))
                qids.add(str(i))
            got = self._simple.batch_search(maps, qids, int(want), int(threads))
            for i in group:
                hits = got.get(str(i))
                ids = [h.docid for h in hits] if hits is not None else []
                scores = np.array([round(h.score) for h in hits or []], dtype=np.int64)
                terms, negative, exclude = parsed[i]
                results[i] = (ids, scores) if want == k else self._overfetch(
                    terms, k, exclude, veto_impact, first=(ids, scores), negative=negative)
        return results
