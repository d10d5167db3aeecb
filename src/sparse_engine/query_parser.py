"""The query language: ``sports -basketball``, ``"hot dog" -bun``, ``+dog frisbee``.

- a bare word or a ``"quoted phrase"`` is an *include* term (what the images should show);
- ``-term`` / ``-"a phrase"`` is an *exclude* term (what they must not show);
- ``+term`` / ``+"a phrase"`` is a *must* term: included, and a result must be non-zero on
  at least one of its concepts.

A ``-`` or ``+`` inside a word (``t-shirt``) belongs to the word. Errors raise :class:`QueryError`
with one line naming the problem.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SparseEngineError


class QueryError(SparseEngineError):
    """The query text cannot be parsed (empty, only exclusions, dangling operator, ...)."""


@dataclass
class ParsedQuery:
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    must: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def positive(self) -> list[str]:
        """Terms whose vectors make up the query: include terms, then must terms."""
        return self.include + [t for t in self.must if t not in self.include]


def _read_term(text: str, i: int, op: str) -> tuple[str, int]:
    """Read one word or quoted phrase starting at ``text[i]``; return (term, next index)."""
    n = len(text)
    if i >= n or text[i].isspace():
        raise QueryError(f"dangling '{op}' at position {i - 1}: put a word or a \"phrase\" right after it")
    if text[i] in "+-" and op:
        raise QueryError(f"two operators in a row at position {i - 1}: use one of '+' or '-' per term")
    if text[i] == '"':
        end = text.find('"', i + 1)
        if end < 0:
            raise QueryError(f"unbalanced quote at position {i}: close the phrase with a second '\"'")
        phrase = " ".join(text[i + 1 : end].split())
        if not phrase:
            raise QueryError(f"empty phrase \"\" at position {i}")
        if end + 1 < n and not text[end + 1].isspace():
            raise QueryError(f"missing space after the phrase ending at position {end}")
        return phrase, end + 1
    j = i
    while j < n and not text[j].isspace():
        if text[j] == '"':
            raise QueryError(f"unexpected quote at position {j}: quote whole phrases, e.g. \"hot dog\"")
        j += 1
    return text[i:j], j


def parse_query(text: str) -> ParsedQuery:
    """Split a query into include, exclude and must terms (phrases stay one term, duplicates drop)."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("empty query: type what the images should show, e.g. \"dog -frisbee\"")
    parsed = ParsedQuery(text=text.strip())
    buckets = {"": parsed.include, "-": parsed.exclude, "+": parsed.must}
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        op = text[i] if text[i] in "+-" else ""
        term, i = _read_term(text, i + len(op), op)
        bucket = buckets[op]
        if term.lower() not in (t.lower() for t in bucket):
            bucket.append(term)
    if not parsed.include and not parsed.must:
        raise QueryError(
            f"query '{parsed.text}' only excludes: add what the images should show, e.g. \"sports {parsed.text}\""
        )
    clash = {t.lower() for t in parsed.positive} & {t.lower() for t in parsed.exclude}
    if clash:
        raise QueryError(f"'{sorted(clash)[0]}' is both wanted and excluded in query '{parsed.text}'")
    return parsed
