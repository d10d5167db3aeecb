"""Realizations: the other words annotators use for the same thing, mined from training captions.

Captions of one image are independent descriptions of the same scene (Flickr8k has five per
image): where one annotator writes "a person on a bike", another writes "a man riding a
bicycle". Words that *replace* each other across the captions of an image, but rarely stand in
the same caption, name the same thing (the parallel-description idea of paraphrase mining,
Barzilay & McKeown 2001). For a word ``w`` and another word ``v``:

    replaces(w → v) = P(a caption without w says v, and the caption with w does not | a caption says w)
    together(w, v) = share of w's captions that also say v

``v`` is a realization of ``w`` when it replaced ``w`` at least ``min_pairs`` times, with
``replaces(w → v) ≥ min_share`` and ``replaces(v → w) ≥ min_share / 2`` (both ways: a word seen
once beside a "bird" in a confused caption set is no name for birds), and stood in the same
caption as ``w`` at most ``max_together`` times as often as it replaced it (a context word —
"riding" for "horse" — often does both). ``related_only`` then keeps the pairs the frozen dense
encoder also finds related (cosine ≥ ``MIN_COSINE``): the counts of a few hundred captions still
pair "bench" with "photo". Mined from Flickr8k: person → man, woman, boy, girl, snowboarder,
skier, biker, rider ...; bicycle → bike, biker, bicyclist; car → vehicle, truck, jeep.

The exclusion veto uses them (words.py): "-person" drops documents whose captions say "man".
Stored in a model directory as ``realizations.json``: ``{word: [[realization, share], ...]}``.
"""
from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError
from .spine import STOPWORDS, tokenize

REALIZATIONS_FILE = "realizations.json"
MIN_PAIRS = 10
MAX_TOGETHER = 0.1
MIN_SHARE = 0.01
MIN_COUNT = 3  # a word needs this many captions to be considered
MIN_COSINE = 0.35


def mine_realizations(captions: Mapping[str, Sequence[str]], min_pairs: int = MIN_PAIRS,
                      max_together: float = MAX_TOGETHER, min_share: float = MIN_SHARE,
                      min_count: int = MIN_COUNT) -> dict[str, list[tuple[str, float]]]:  # fmt: skip
    """``{word: [(realization, replaces share), ...]}``, strongest first, from image → captions."""
    counts = Counter(t for caps in captions.values() for cap in caps for t in set(tokenize(cap)))
    vocab = sorted(w for w, n in counts.items() if n >= min_count and w not in STOPWORDS and len(w) > 1)
    index = {w: i for i, w in enumerate(vocab)}
    n = len(vocab)
    rep_rows, rep_cols, tog_rows, tog_cols = [], [], [], []
    chances = np.zeros(n)  # ordered caption pairs (i, j) of one image with w in i and not in j
    for caps in captions.values():
        sets = [{index[t] for t in tokenize(cap) if t in index} for cap in caps]
        for words in sets:
            for a, b in itertools.permutations(words, 2):
                tog_rows.append(a)
                tog_cols.append(b)
        for i, j in itertools.permutations(range(len(sets)), 2):
            only_i, only_j = sets[i] - sets[j], sets[j] - sets[i]
            for a in only_i:
                chances[a] += 1
                rep_rows.extend([a] * len(only_j))
                rep_cols.extend(only_j)
    replaced = _counts(rep_rows, rep_cols, n)
    together = _counts(tog_rows, tog_cols, n)
    out: dict[str, list[tuple[str, float]]] = {}
    for a in range(n):
        lo, hi = replaced.indptr[a], replaced.indptr[a + 1]
        cols, pairs = replaced.indices[lo:hi], replaced.data[lo:hi]
        share = pairs / max(chances[a], 1.0)
        back = np.asarray(replaced[cols, a].todense()).ravel() / np.maximum(chances[cols], 1.0) if len(cols) else share
        both = np.asarray(together[a, cols].todense()).ravel() if len(cols) else np.zeros(0)
        ok = (pairs >= min_pairs) & (share >= min_share) & (back >= min_share / 2) & (both <= max_together * pairs)
        ok &= cols != a
        if ok.any():
            order = np.argsort(-share[ok], kind="stable")
            out[vocab[a]] = [(vocab[c], round(float(s), 4)) for c, s in zip(cols[ok][order], share[ok][order])]
    return out


def related_only(table: Mapping[str, Sequence[tuple[str, float]]], dense,
                 min_cosine: float = MIN_COSINE) -> dict[str, list[tuple[str, float]]]:  # fmt: skip
    """The pairs whose words ``dense`` (a DenseEncoder) embeds with cosine ≥ ``min_cosine``."""
    words = sorted(set(table) | {v for rs in table.values() for v, _ in rs})
    if not words:
        return {}
    x = np.asarray(dense.embed_text(words), dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    row = {w: i for i, w in enumerate(words)}
    out = {}
    for w, rs in table.items():
        kept = [(v, s) for v, s in rs if float(x[row[w]] @ x[row[v]]) >= min_cosine]
        if kept:
            out[w] = kept
    return out


def _counts(rows: list[int], cols: list[int], n: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)), shape=(n, n))
    m.sum_duplicates()
    return m


def save_realizations(directory: str | Path, table: Mapping[str, Sequence[tuple[str, float]]]) -> Path:
    path = Path(directory) / REALIZATIONS_FILE
    path.write_text(json.dumps({w: [list(r) for r in rs] for w, rs in table.items()}, ensure_ascii=False),
                    encoding="utf-8")  # fmt: skip
    return path


def load_realizations(directory: str | Path) -> dict[str, list[tuple[str, float]]]:
    """The model's realizations; an empty table for a model directory without the file."""
    path = Path(directory) / REALIZATIONS_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(w): [(str(v), float(s)) for v, s in rs] for w, rs in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise SparseEngineError(f"cannot read '{path}': {exc}") from None
