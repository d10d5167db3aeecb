"""Read image captions from the three formats the project meets.

* ``captions.csv`` (Flickr8k): a header ``image,caption``, one caption per line;
* a COCO captions JSON: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``;
* ``metadata.jsonl``: one JSON object per line with ``file`` and ``captions`` (a list or one string).

All return ``{image key: [captions]}`` in first-seen order. The image key is the file name as the
source names it (COCO: ``file_name`` when the JSON lists images, else the numeric id as text).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable

from ..errors import SparseEngineError
from .base import flatten_sets

Captions = dict[str, list[str]]
FORMATS = ("csv", "coco", "jsonl")


def read_captions(path: str | Path, fmt: str | None = None) -> Captions:
    """Read a captions file; ``fmt`` is csv|coco|jsonl, guessed from the suffix when omitted."""
    path = Path(path)
    if not path.is_file():
        raise SparseEngineError(f"captions file '{path}' does not exist or is not a file")
    fmt = fmt or guess_format(path)
    readers = {"csv": read_csv_captions, "coco": read_coco_captions, "jsonl": read_jsonl_captions}
    if fmt not in readers:
        raise SparseEngineError(f"unknown captions format '{fmt}': choose one of {', '.join(FORMATS)}")
    captions = readers[fmt](path)
    if not captions:
        raise SparseEngineError(f"captions file '{path}' holds no captions")
    return captions


def guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "coco"
    raise SparseEngineError(
        f"cannot tell the captions format of '{path.name}': use a .csv (image,caption), "
        "a COCO captions .json or a metadata .jsonl"
    )


def _add(out: Captions, key: object, caption: object) -> None:
    if isinstance(caption, str) and caption.strip() and key not in (None, ""):
        out.setdefault(str(key), []).append(caption.strip())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SparseEngineError(f"cannot read captions file '{path}': {exc}") from exc


def read_csv_captions(path: Path) -> Captions:
    text = _read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    fields = set(reader.fieldnames or [])
    if not {"image", "caption"} <= fields:
        raise SparseEngineError(f"captions file '{path}' needs the columns image,caption (found: {', '.join(sorted(fields)) or 'none'})")
    out: Captions = {}
    try:
        for row in reader:
            _add(out, row.get("image"), row.get("caption"))
    except csv.Error as exc:
        raise SparseEngineError(f"captions file '{path}' is not valid CSV: {exc}") from exc
    return out


def _load_json(path: Path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise SparseEngineError(f"captions file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno}") from exc


def read_coco_captions(path: Path) -> Captions:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise SparseEngineError(f"'{path}' is not a COCO captions JSON: no 'annotations' list")
    names = {img.get("id"): img.get("file_name") for img in data.get("images", []) if isinstance(img, dict)}
    out: Captions = {}
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise SparseEngineError(f"'{path}': a COCO annotation lacks 'image_id'")
        image_id = ann["image_id"]
        _add(out, names.get(image_id) or image_id, ann.get("caption"))
    return out


def read_jsonl_captions(path: Path) -> Captions:
    out: Captions = {}
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SparseEngineError(f"'{path}' line {lineno} is not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict) or "file" not in row:
            raise SparseEngineError(f"'{path}' line {lineno} has no 'file' field")
        caps = row.get("captions", [])
        for caption in [caps] if isinstance(caps, str) else caps:
            _add(out, row["file"], caption)
    return out


def flatten(captions: Captions) -> tuple[list[str], list[int]]:
    """All captions in one list and, for each, the index of its image (in dict order)."""
    texts, owner = flatten_sets(list(captions.values()))
    return texts, owner.tolist()


def all_texts(captions: Captions) -> Iterable[str]:
    for caps in captions.values():
        yield from caps
