"""The caption-word channel: the words a document's captions use, as extra dims after the concepts.

Concepts blur on purpose ("car" leans towards "truck"); a caption's own words do not. An index
built from captions keeps, after the encoder's ``d`` concept dims, one dim per caption term of
the collection: each non-stopword word, and each two-word phrase ("dining table", "hot dog")
that two or more documents use. A document's word part is the share of its captions that use
the term times the term's inverse document frequency, L2-normalised and scaled by ``weight``
(λ); its concept part stays unit length. The planner gives a query term's own word dims (its
phrase, singular and plural) the weight λ too, so a score is

    cosine of the concepts + λ² · cosine of the caption words,

and the exclusion veto drops every document whose captions name an excluded term or one of its
*realizations* (the other words annotators use for the same thing, mined from the training
captions: encoders/realizations.py), so "-person" also drops "a man riding a horse". Measured
on the COCO exclusion benchmark (bench/README.md): the word veto is what lowers violation on the
hard pairs; the word part of the score adds precision on all pairs.

Stored in the index as ``words.json`` (the terms, in dim order), checked by its sha256.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .encoders.base import unit_rows
from .encoders.spine import STOPWORDS, tokenize
from .errors import SparseEngineError

WORDS_FILE = "words.json"
DEFAULT_WEIGHT = 0.8  # λ, chosen by the exclusion benchmark (bench/results/exclusion_results.md)
MIN_PHRASE_DOCS = 2  # two-word phrases used by fewer documents get no dim
# English plurals the -s/-es/-ies rules miss (morphology, not a synonym list).
IRREGULAR_PLURALS = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "foot": "feet",
    "tooth": "teeth", "mouse": "mice", "goose": "geese", "ox": "oxen", "knife": "knives",
    "leaf": "leaves", "wife": "wives", "life": "lives", "shelf": "shelves", "loaf": "loaves",
    "wolf": "wolves", "calf": "calves", "half": "halves", "scarf": "scarves", "thief": "thieves",
}  # fmt: skip
UNCHANGED_PLURALS = frozenset({"sheep", "fish", "deer", "moose", "aircraft", "series", "species"})


def caption_terms(text: str) -> tuple[set[str], set[str]]:
    """(words, two-word phrases) of one caption; stopwords are no terms and break phrases."""
    tokens = tokenize(text)
    content = [t if t not in STOPWORDS and len(t) > 1 else "" for t in tokens]
    words = {t for t in content if t}
    phrases = {f"{a} {b}" for a, b in zip(content, content[1:]) if a and b}
    return words, phrases


SINGULARS = {plural: word for word, plural in IRREGULAR_PLURALS.items()}


def plural_forms(word: str) -> list[str]:
    """``word`` and its plural, or a plural and its singular (a query term names a kind: "dog"
    also matches "dogs", and "dogs" "dog")."""
    if word in SINGULARS:
        return [word, SINGULARS[word]]
    if word.endswith("ies") and len(word) > 4:
        return [word, word[:-3] + "y"]
    if word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        return [word, word[:-1]] + ([word[:-2]] if word.endswith(("ses", "xes", "zes", "ches", "shes")) else [])
    if word in UNCHANGED_PLURALS:
        return [word]
    if word in IRREGULAR_PLURALS:
        return [word, IRREGULAR_PLURALS[word]]
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        return [word, word[:-1] + "ies"]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return [word, word + "es"]
    return [word, word + "s"]


def term_keys(term: str) -> list[str]:
    """The caption terms a query term matches: itself as a word or phrase, singular or plural
    (longer phrases have no word dims: they are matched by their concepts only)."""
    tokens = [t for t in tokenize(term) if t not in STOPWORDS]
    if not tokens or len(tokens) > 2:
        return []
    head = " ".join(tokens[:-1] + [""])
    return [f"{head}{form}" for form in plural_forms(tokens[-1])]


@dataclass
class WordChannel:
    """The collection's caption terms; term ``i`` is store dim ``offset + i``."""

    terms: list[str]
    offset: int
    weight: float = DEFAULT_WEIGHT
    index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.terms)}
        if not self.weight > 0:
            raise SparseEngineError(f"word weight must be positive, got {self.weight}")

    @property
    def n_terms(self) -> int:
        return len(self.terms)

    @classmethod
    def build(cls, caption_sets: Sequence[Sequence[str]], offset: int, weight: float = DEFAULT_WEIGHT) -> "WordChannel":
        """The terms of ``caption_sets``: every word, and the phrases of ``MIN_PHRASE_DOCS``+ documents."""
        words: set[str] = set()
        phrase_docs: dict[str, int] = {}
        for caps in caption_sets:
            doc_phrases: set[str] = set()
            for cap in caps:
                w, p = caption_terms(cap)
                words |= w
                doc_phrases |= p
            for p in doc_phrases:
                phrase_docs[p] = phrase_docs.get(p, 0) + 1
        phrases = {p for p, n in phrase_docs.items() if n >= MIN_PHRASE_DOCS}
        return cls(sorted(words | phrases), offset, weight)

    def doc_rows(self, caption_sets: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """(documents x terms): share of a document's captions using a term x its idf, unit rows."""
        rows, cols, vals = [], [], []
        for i, caps in enumerate(caption_sets):
            counts: dict[int, int] = {}
            for cap in caps:
                w, p = caption_terms(cap)
                for t in w | p:
                    j = self.index.get(t)
                    if j is not None:
                        counts[j] = counts.get(j, 0) + 1
            for j, n in counts.items():
                rows.append(i)
                cols.append(j)
                vals.append(n / len(caps))
        share = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(caption_sets), self.n_terms))
        df = np.bincount(share.indices, minlength=self.n_terms)
        idf = np.log((len(caption_sets) + 1.0) / (df + 1.0)).astype(np.float32)
        return unit_rows(share @ sp.diags(idf))

    def attach(self, concepts: sp.csr_matrix, caption_sets: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """[concept rows | weight x word rows]: the rows the store indexes."""
        if concepts.shape[1] != self.offset:
            raise SparseEngineError(f"concept rows have {concepts.shape[1]} dims, the word channel starts at {self.offset}")
        out = sp.hstack([concepts, self.weight * self.doc_rows(caption_sets)], format="csr").astype(np.float32)
        out.eliminate_zeros()
        return out

    def dims(self, terms: Iterable[str]) -> np.ndarray:
        """Store dims of the caption terms that ``terms`` (query terms or realizations) match."""
        found = {self.index[k] for t in terms for k in term_keys(t) if k in self.index}
        return np.array(sorted(found), dtype=np.int32) + np.int32(self.offset)

    def extend(self, concept_vec: np.ndarray, term: str) -> np.ndarray:
        """A query term's vector over the whole store: its concepts, then ``weight`` on its own terms."""
        out = np.zeros(self.offset + self.n_terms, dtype=np.float32)
        out[: self.offset] = concept_vec
        out[self.dims([term])] = self.weight
        return out

    def veto_dims(self, include: Sequence[str], exclude: Sequence[str], realizations) -> np.ndarray:
        """Word dims that drop a document: the excluded terms themselves, and their realizations
        unless those name an included term or one of its realizations ("truck -car" vetoes "car"
        and "vehicle", not "truck", which realizes "car" but is what is wanted)."""
        own = self.dims(include)
        wanted = np.union1d(own, self.dims([r for t in include for r in realizations(t)]))
        named = np.setdiff1d(self.dims(exclude), own)
        others = np.setdiff1d(self.dims([r for t in exclude for r in realizations(t)]), wanted)
        return np.union1d(named, others).astype(np.int32)

    def labels(self) -> list[list[str]]:
        return [[f'"{t}"'] for t in self.terms]

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: str | Path) -> dict:
        path = Path(directory) / WORDS_FILE
        path.write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")
        return {"file": WORDS_FILE, "n_terms": self.n_terms, "offset": self.offset, "weight": self.weight,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path, fragment: dict) -> "WordChannel":
        path = Path(directory) / str(fragment.get("file", WORDS_FILE))
        try:
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != fragment["sha256"]:
                raise SparseEngineError(f"index file {path} fails its checksum (corrupted or replaced)")
            terms = json.loads(raw.decode("utf-8"))
            channel = cls(terms, int(fragment["offset"]), float(fragment["weight"]))
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise SparseEngineError(f"cannot read the index's caption words {path}: {exc}") from None
        if channel.n_terms != int(fragment["n_terms"]) or not all(isinstance(t, str) for t in terms):
            raise SparseEngineError(f"index file {path} does not hold the {fragment['n_terms']} terms the manifest lists")
        return channel
