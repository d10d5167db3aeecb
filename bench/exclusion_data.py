"""Exclusion-query benchmark data (seed paper): COCO val2017 label pairs and caption documents.

A query "A without B" exists for every ordered label pair (A, B), A != B, such that at least one
image holds both; its relevant images hold A and not B. The hard subset keeps P(B|A) >= 0.3.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparse_engine.errors import SparseEngineError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "coco-val2017"
EXPECTED_PAIRS = 3215
EXPECTED_HARD = 189
HARD_COOCCURRENCE = 0.3


@dataclass
class ExclusionQuery:
    include: list[str]
    exclude: list[str]
    relevant: set[str]  # doc ids (12-digit COCO ids)
    qid: str = ""
    hard: bool = False
    cooccurrence: float = 0.0  # P(B|A) for label pairs

    @property
    def text(self) -> str:
        return " ".join(self.include) + "".join(f" -{b}" for b in self.exclude)


@dataclass
class CocoCollection:
    """The 5,000 val2017 images: ids in a fixed order, captions and object labels per image."""

    doc_ids: list[str]
    captions: list[list[str]]
    labels: list[set[str]]
    categories: list[str]
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {d: i for i, d in enumerate(self.doc_ids)}


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise SparseEngineError(f"benchmark data not found: {path} (see ../shared/data/README.md)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SparseEngineError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc


def load_coco(data_dir: str | Path = DEFAULT_DATA) -> CocoCollection:
    """Read labels_val2017.json and captions_val2017.json into one aligned collection."""
    data_dir = Path(data_dir)
    labels = _read_json(data_dir / "labels_val2017.json")
    caps = _read_json(data_dir / "captions_val2017.json")
    by_image: dict[str, list[str]] = defaultdict(list)
    for ann in caps["annotations"]:
        by_image[f"{int(ann['image_id']):012d}"].append(ann["caption"].strip())
    doc_ids = sorted(labels["images"])
    missing = [d for d in doc_ids if not by_image.get(d)]
    if missing:
        raise SparseEngineError(f"{len(missing)} labelled images have no caption, e.g. {missing[0]}")
    return CocoCollection(
        doc_ids=doc_ids,
        captions=[by_image[d] for d in doc_ids],
        labels=[set(labels["images"][d]) for d in doc_ids],
        categories=list(labels["categories"]),
    )


def label_pair_queries(coll: CocoCollection, hard_threshold: float = HARD_COOCCURRENCE) -> list[ExclusionQuery]:
    """Ordered pairs (A, B) that co-occur in some image and with some image of A alone; relevant = A and not B."""
    cats = coll.categories
    onehot = np.zeros((len(coll.doc_ids), len(cats)), dtype=np.int32)
    col = {c: j for j, c in enumerate(cats)}
    for i, labs in enumerate(coll.labels):
        for lab in labs:
            onehot[i, col[lab]] = 1
    co = onehot.T @ onehot  # co[a, b] = images with both
    queries = []
    for a, name_a in enumerate(cats):
        if co[a, a] == 0:
            continue
        has_a = onehot[:, a] == 1
        for b, name_b in enumerate(cats):
            if a == b or co[a, b] == 0:
                continue
            rel = np.flatnonzero(has_a & (onehot[:, b] == 0))
            if len(rel) == 0:  # A never appears without B: nothing to retrieve (one such pair)
                continue
            p_b_given_a = float(co[a, b] / co[a, a])
            queries.append(ExclusionQuery(
                include=[name_a], exclude=[name_b], relevant={coll.doc_ids[i] for i in rel},
                qid=f"{name_a.replace(' ', '_')}--{name_b.replace(' ', '_')}",
                hard=p_b_given_a >= hard_threshold, cooccurrence=p_b_given_a,
            ))
    return queries


def load_query_file(path: str | Path, coll: CocoCollection) -> list[ExclusionQuery]:
    """JSON lines {"include": [...], "exclude": [...], "relevant": [doc ids]} (12-digit COCO ids)."""
    path = Path(path)
    if not path.exists():
        raise SparseEngineError(f"query file not found: {path}")
    queries = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SparseEngineError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("include"), list) or not obj["include"]:
            raise SparseEngineError(f"{path}:{lineno}: needs a non-empty list 'include'")
        exclude, relevant = obj.get("exclude", []), obj.get("relevant")
        if not isinstance(exclude, list) or not isinstance(relevant, list):
            raise SparseEngineError(f"{path}:{lineno}: 'exclude' and 'relevant' must be lists")
        rel = {f"{int(r):012d}" if str(r).isdigit() else str(r) for r in relevant}
        unknown = sorted(rel - coll.index.keys())
        if unknown:
            raise SparseEngineError(f"{path}:{lineno}: unknown doc id {unknown[0]} (use 12-digit COCO ids)")
        queries.append(ExclusionQuery(
            include=[str(t) for t in obj["include"]], exclude=[str(t) for t in exclude], relevant=rel,
            qid=str(obj.get("id", f"q{lineno}")), hard=bool(obj.get("hard", False)),
        ))
    if not queries:
        raise SparseEngineError(f"{path}: no queries")
    return queries


def check_counts(queries: list[ExclusionQuery]) -> tuple[int, int]:
    """The seed paper's query set has 3,215 pairs and 189 hard ones; say so loudly if not."""
    n, n_hard = len(queries), sum(q.hard for q in queries)
    if (n, n_hard) != (EXPECTED_PAIRS, EXPECTED_HARD):
        raise SparseEngineError(
            f"label-pair query set has {n} pairs / {n_hard} hard, expected {EXPECTED_PAIRS} / {EXPECTED_HARD}"
        )
    return n, n_hard
