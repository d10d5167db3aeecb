"""Compile a parsed query into a :class:`QuerySpec` (weighted dims + document veto).

Strategies for "A -B" (A = the include and must terms, B = the exclude terms):

- ``"paper"`` — the seed paper's multi-step method. For each side, encode the text, retrieve
  the top-K documents with it, and keep the dims that cover ``coverage`` of those documents'
  summed magnitude: D1 from A, D2 from B (the union over B's terms). Score on D1 \\ D2.
  Weights (``paper_weights``): ``"query"`` = A's own weights on D1 \\ D2 (dims of D1 that A
  does not carry score 0 and are dropped); ``"docs"`` = the mean vector of A's top-K docs on
  D1 \\ D2 (pseudo-relevance feedback); ``"both"`` (default) = the two, each L2-normalised,
  summed — A's weights keep the query on topic, the docs' weights add the concepts that the
  retrieved images of A actually carry. With ``keep_query_dims`` (default) A's own main dims stay
  in the query unless they are B's own main dims too: B's top documents often show A as well
  (frisbees are thrown to dogs), and the pure method then drops A itself ("dog -frisbee" would
  search for cats); set it False for the paper's method as published.
- ``"veto"`` — A's vector as the query, and a document veto. On an index with caption words
  (words.py) a document is dropped when one of its captions names B or one of B's
  realizations ("-person" also drops "a man riding a horse"), unless the word names A or one of
  A's too. Without caption words, or when no caption of the collection names B, a document is
  dropped when its weight on one of B's main dims exceeds ``veto_threshold``. B's main dims:
  those covering ``veto_coverage`` of B's own concept vector, less those covering
  ``veto_coverage`` of A's (a dim both terms lean on is A's too: vetoing it would drop A's own
  images).
- ``"subtract"`` — q = e(A) − alpha · b, b = e(B) + context_weight · c(B) less its part along
  e(A) (negative weights push B's images down). c(B), B's *context*: the unit mean concept vector
  of B's top-K documents (the paper's retrieval step, used softly): "-dining table" then also
  pushes down the plates and meals that tables carry. Removing b's part along A (orthogonal
  negation) keeps "sports -baseball" a query for sports, and "pizza -dining table" one for pizza.
- ``"veto+subtract"`` (default) — both: the subtraction ranks, the veto drops.
- ``"paper+veto"`` — the paper's query on D1 \\ D2 plus the veto of ``"veto"`` (on B's own
  main dims rather than D2: B's top documents often show A too, and a veto on D2 would drop them).

Term vectors are L2-normalised first (their concept part; a word channel adds its weight on the
term's own caption words), and indexes store L2-normalised concept rows (indexer.py), so
``alpha`` and ``veto_threshold`` mean the same on every collection: a threshold of 0.3 drops a
document that puts 0.3 of its unit length on one of B's main dims.

It works for any SparseEncoder and PostingStore (the exclusion benchmark uses it for SR, SpLiCE
and VDR-style encoders).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from .errors import SparseEngineError
from .query_parser import ParsedQuery, parse_query
from .query_spec import QuerySpec
from .words import WordChannel

log = logging.getLogger(__name__)

STRATEGIES = ("paper", "veto", "subtract", "veto+subtract", "paper+veto")
VETO_SOURCES = ("words", "concepts")
PAPER_WEIGHTS = ("query", "docs", "both")


@dataclass(frozen=True)
class PlanOptions:
    """Planner knobs.

    The defaults are the exclusion benchmark's choice (bench/exclusion.py, COCO val2017, 3,215
    "A -B" queries, sr-minilm, documents with caption words: bench/results/exclusion_results.md,
    "Caption-word grid"): veto+subtract with the word veto, alpha 1.0 and context weight 0.75
    (with the indexer's word weight 0.8) is the grid point with the largest smallest margin over
    the best dense baseline across all 20 metrics. ``veto_threshold`` 0.3 and ``veto_coverage`` 0.5
    only matter for the concept veto (no caption words). Change them here, and only here.
    """

    strategy: str = "veto+subtract"
    top_k_docs: int = 10  # K: documents retrieved per term to find its dims ("paper")
    coverage: float = 0.5  # t: keep the dims covering this share of the summed magnitude ("paper")
    veto_coverage: float = 0.5  # B's (and A's) main dims for the veto cover this share of its vector
    veto_threshold: float = 0.3  # document weight above which a veto dim drops the document
    alpha: float = 1.0  # "subtract", "veto+subtract": q = e(A) - alpha * (e(B) + context_weight * c(B))
    context_weight: float = 0.75  # weight of B's context c(B) (its top-K documents' concepts, less A's)
    paper_weights: str = "both"  # "query" | "docs" | "both" (see module docstring)
    keep_query_dims: bool = True  # "paper": A's own main dims are not removed unless B's own too
    orthogonal: bool = True  # "subtract": take away only the part of B (and its context) orthogonal to A
    must_coverage: float = 0.5  # +term: a result must be non-zero on one of the dims covering this share
    veto_source: str = "words"  # "words": caption words where the index has them (see exclusion_veto)

    def checked(self) -> "PlanOptions":
        if self.strategy not in STRATEGIES:
            raise SparseEngineError(f"unknown strategy '{self.strategy}': choose one of {', '.join(STRATEGIES)}")
        if self.veto_source not in VETO_SOURCES:
            raise SparseEngineError(f"unknown veto_source '{self.veto_source}': choose one of {', '.join(VETO_SOURCES)}")
        if self.paper_weights not in PAPER_WEIGHTS:
            raise SparseEngineError(
                f"unknown paper_weights '{self.paper_weights}': choose one of {', '.join(PAPER_WEIGHTS)}"
            )
        if not all(0.0 < c <= 1.0 for c in (self.coverage, self.veto_coverage, self.must_coverage)):
            raise SparseEngineError("coverage must be in (0, 1]")
        if self.top_k_docs < 1:
            raise SparseEngineError("top_k_docs must be at least 1")
        if self.alpha < 0 or self.veto_threshold < 0 or self.context_weight < 0:
            raise SparseEngineError("alpha, context_weight and veto_threshold must be non-negative")
        return self

    def with_overrides(self, **overrides) -> "PlanOptions":
        unknown = set(overrides) - set(self.__dataclass_fields__)
        if unknown:
            raise SparseEngineError(f"unknown planner option '{sorted(unknown)[0]}'")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None}).checked()


def coverage_dims(magnitude: np.ndarray, coverage: float) -> np.ndarray:
    """The fewest dims (largest first) whose magnitudes sum to ``coverage`` of the total."""
    magnitude = np.asarray(magnitude, dtype=np.float64)
    order = np.argsort(-magnitude, kind="stable")
    sorted_mag = magnitude[order]
    total = sorted_mag[sorted_mag > 0].sum()
    if total <= 0:
        return np.zeros(0, dtype=np.int32)
    cum = np.cumsum(sorted_mag)
    n = int(np.searchsorted(cum, coverage * total * (1 - 1e-9))) + 1
    n = min(n, int((sorted_mag > 0).sum()))
    return np.sort(order[:n]).astype(np.int32)


def encode_terms(encoder, terms: Sequence[str]) -> list[np.ndarray]:
    """One L2-normalised dense float32 vector per term (the encoder's sparse row, densified: dims are few)."""
    if not terms:
        return []
    rows = sp.csr_matrix(encoder.encode_text(list(terms)), dtype=np.float32)
    if rows.shape != (len(terms), encoder.dim):
        raise SparseEngineError(f"encoder '{encoder.name}' returned shape {rows.shape} for {len(terms)} texts")
    return [_unit(np.asarray(rows[i].toarray()).ravel()).astype(np.float32) for i in range(len(terms))]


def _nonzero(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dims = np.flatnonzero(vec).astype(np.int32)
    return dims, vec[dims].astype(np.float32)


def top_docs_magnitude(store, vec: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Sum of the vectors of the top-``k`` documents retrieved with ``vec`` (and how many were found)."""
    from . import traverse

    dims, weights = _nonzero(vec)
    docs, _ = traverse.search(store, dims, weights, k=k)
    total = np.zeros(store.dim, dtype=np.float64)
    if len(docs):
        lo, hi = store.fwd_ptr[docs], store.fwd_ptr[np.asarray(docs) + 1]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist())])
        np.add.at(total, np.asarray(store.fwd_dims[rows], np.int64), np.asarray(store.fwd_w[rows], np.float64))
        total *= store.scale
    return total, len(docs)


def term_dims(store, vec: np.ndarray, options: PlanOptions,
              cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """The paper's step for one term: (its dims from its top docs, the docs' mean vector, n docs).

    With no document matching (an empty or foreign collection) the term's own vector stands in.
    ``cache`` (a dict kept across one batch of queries on one store) saves repeating a term's search.
    """
    key = (vec.tobytes(), options.top_k_docs, options.coverage)
    if cache is not None and key in cache:
        return cache[key]
    total, n = top_docs_magnitude(store, vec, options.top_k_docs)
    if n == 0:
        out = coverage_dims(vec, options.coverage), vec.astype(np.float64), 0
    else:
        out = coverage_dims(total, options.coverage), total / n, n
    if cache is not None:
        cache[key] = out
    return out


def b_main_dims(neg_vecs: list[np.ndarray], coverage: float) -> np.ndarray:
    """B's own main dims: the union over the exclude terms of the dims covering ``coverage`` of their vectors."""
    out = np.zeros(0, dtype=np.int32)
    for vec in neg_vecs:
        out = np.union1d(out, coverage_dims(vec, coverage)).astype(np.int32)
    return out


def veto_dims_for(a: np.ndarray, neg_vecs: list[np.ndarray], options: PlanOptions) -> np.ndarray:
    """B's main dims less A's main dims (a dim A leans on too would veto A's own images)."""
    b_dims = b_main_dims(neg_vecs, options.veto_coverage)
    return np.setdiff1d(b_dims, coverage_dims(a, options.veto_coverage)).astype(np.int32)


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def _check_known(parsed: ParsedQuery, vectors: list[np.ndarray], terms: list[str], kind: str) -> None:
    for term, vec in zip(terms, vectors):
        if not np.any(vec > 0):
            if kind == "must":
                raise SparseEngineError(f"no known concepts in required term '+{term}': the encoder knows none of its words")
            log.warning("no known concepts in %s term '%s': ignored", kind, term)


def term_vectors(encoder, terms: Sequence[str], words: WordChannel | None = None) -> list[np.ndarray]:
    """Each term over the whole store: its unit concept vector, then (with a word channel) the
    channel's weight on its own caption terms."""
    vectors = encode_terms(encoder, terms)
    return [words.extend(v, t) for v, t in zip(vectors, terms)] if words is not None else vectors


def exclusion_vector(store, a: np.ndarray, neg_vecs: list[np.ndarray], n_concepts: int, options: PlanOptions,
                     cache: dict | None = None) -> np.ndarray:  # fmt: skip
    """What "subtract" takes away: e(B) + context_weight · c(B), where c(B) is the unit mean
    concept vector of each excluded term's top-K documents, summed. With ``orthogonal``, its part
    along A is removed first (Widdows' orthogonal negation, 2003): in "sports -baseball" baseball
    leans on the sports concepts, and subtracting that part would take away the query itself;
    what stays is what is baseball's own (bats, gloves, diamonds). The veto drops what names it."""
    out = np.sum(neg_vecs, axis=0, dtype=np.float64) if neg_vecs else np.zeros(store.dim)
    if options.context_weight > 0:
        for vec in neg_vecs:
            if np.any(vec > 0):
                centroid = np.array(term_dims(store, vec, options, cache)[1], dtype=np.float64)
                centroid[n_concepts:] = 0.0
                out += options.context_weight * _unit(centroid)
    if options.orthogonal:
        unit_a = _unit(np.asarray(a, dtype=np.float64))
        out -= max(float(out @ unit_a), 0.0) * unit_a
    return out


def exclusion_veto(a: np.ndarray, neg_vecs: list[np.ndarray], include: Sequence[str], exclude: Sequence[str],
                   encoder, words: WordChannel | None, options: PlanOptions) -> tuple[np.ndarray, float]:  # fmt: skip
    """(veto dims, threshold). With caption words (``veto_source="words"``): the word dims of the
    excluded terms and their realizations, threshold 0 (a caption naming one drops the
    document); else, or when no caption of the collection names them, B's main concepts less
    A's, over ``veto_threshold``. Vectors are the whole-store ones; concepts come first."""
    if words is not None and options.veto_source == "words":
        dims = words.veto_dims(include, exclude, encoder.realizations)
        if dims.size:
            return dims, 0.0
    d = encoder.dim
    return veto_dims_for(a[:d], [v[:d] for v in neg_vecs], options), options.veto_threshold


def plan_query(parsed: ParsedQuery | str, encoder, store, options: PlanOptions | None = None,
               cache: dict | None = None, words: WordChannel | None = None) -> QuerySpec:  # fmt: skip
    """Compile ``parsed`` (or a query string) into a QuerySpec for ``store``.

    ``cache``: a dict shared by a batch of queries on one store (the "paper" strategies' per-term
    searches are then done once per distinct term). ``words``: the index's caption-word channel
    (its dims follow the encoder's), or None for an index without one.
    """
    options = (options or PlanOptions()).checked()
    if isinstance(parsed, str):
        parsed = parse_query(parsed)
    n_words = words.n_terms if words is not None else 0
    if encoder.dim + n_words != store.dim:
        extra = f" + {n_words} caption words" if n_words else ""
        raise SparseEngineError(f"encoder '{encoder.name}' has {encoder.dim} dims{extra} but the index has {store.dim}")
    positive = parsed.positive
    vectors = term_vectors(encoder, positive + parsed.exclude, words)
    pos_vecs, neg_vecs = vectors[: len(positive)], vectors[len(positive) :]
    _check_known(parsed, [v for t, v in zip(positive, pos_vecs) if t in parsed.must], parsed.must, "must")
    _check_known(parsed, pos_vecs, positive, "include")
    _check_known(parsed, neg_vecs, parsed.exclude, "exclude")
    a = np.sum(pos_vecs, axis=0) if pos_vecs else np.zeros(store.dim, dtype=np.float32)
    if not np.any(a > 0):
        raise SparseEngineError(f"no known concepts in '{' '.join(positive)}': the encoder knows none of these words")

    must_dims = np.zeros(0, dtype=np.int32)
    for term, vec in zip(positive, pos_vecs):
        if term in parsed.must:
            must_dims = np.union1d(must_dims, coverage_dims(vec[: encoder.dim], options.must_coverage)).astype(np.int32)

    # Without exclude terms every strategy is the plain query (no pseudo-relevance drift).
    strategy = options.strategy if neg_vecs else "subtract"
    veto_dims, veto_threshold = np.zeros(0, dtype=np.int32), float("inf")
    if "veto" in strategy:
        # B's own main dims, not D2: B's top docs often show A too (frisbees are thrown to dogs),
        # so vetoing all of D2 would drop A's images along with B's.
        veto_dims, veto_threshold = exclusion_veto(a, neg_vecs, positive, parsed.exclude, encoder, words, options)
    if strategy in ("subtract", "veto+subtract"):
        q = a.astype(np.float64) - options.alpha * exclusion_vector(store, a, neg_vecs, encoder.dim, options, cache)
        dims = np.flatnonzero(q).astype(np.int32)
        weights = q[dims]
    elif strategy == "veto":
        dims, weights = _nonzero(a)
    else:  # "paper", "paper+veto"
        d1, centroid, _ = term_dims(store, a, options, cache)
        d2 = np.zeros(0, dtype=np.int32)
        for vec in neg_vecs:
            if np.any(vec > 0):
                d2 = np.union1d(d2, term_dims(store, vec, options, cache)[0])
        if options.keep_query_dims:
            # B's top docs often show A too (frisbees are thrown to dogs): A's own main dims
            # stay unless they are also B's own main dims.
            protected = np.setdiff1d(coverage_dims(a, options.coverage), b_main_dims(neg_vecs, options.coverage))
            d1, d2 = np.union1d(d1, protected), np.setdiff1d(d2, protected)
        keep = np.setdiff1d(d1, d2).astype(np.int32)
        if options.paper_weights == "query":
            q = a.astype(np.float64)
        elif options.paper_weights == "docs":
            q = centroid
        else:
            q = _unit(a.astype(np.float64)) + _unit(centroid)
        dims = keep[q[keep] > 0]
        weights = q[dims]
        if dims.size == 0:
            raise SparseEngineError(
                f"nothing left to search for in '{parsed.text}': every concept of "
                f"'{' '.join(positive)}' is also a concept of the excluded terms"
            )
    return QuerySpec(
        dims=dims,
        weights=np.asarray(weights, dtype=np.float32),
        veto_dims=np.asarray(veto_dims, dtype=np.int32),
        veto_threshold=veto_threshold if veto_dims.size else float("inf"),
        must_dims=must_dims,
        text=parsed.text,
    )
