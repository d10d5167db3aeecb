import pytest

from sparse_engine.errors import SparseEngineError
from sparse_engine.query_parser import ParsedQuery, QueryError, parse_query


@pytest.mark.parametrize(
    "text, include, exclude, must",
    [
        ("sports -basketball", ["sports"], ["basketball"], []),
        ('"hot dog" -bun', ["hot dog"], ["bun"], []),
        ("dog frisbee -person", ["dog", "frisbee"], ["person"], []),
        ("+a", [], [], ["a"]),
        ("+dog grass -frisbee", ["grass"], ["frisbee"], ["dog"]),
        ('dog -"red  frisbee"', ["dog"], ["red frisbee"], []),
        ("t-shirt -hat", ["t-shirt"], ["hat"], []),
        ("  dog   Dog  ", ["dog"], [], []),
        ('+"hot dog"', [], [], ["hot dog"]),
    ],
)
def test_forms(text, include, exclude, must):
    parsed = parse_query(text)
    assert (parsed.include, parsed.exclude, parsed.must) == (include, exclude, must)
    assert parsed.text == text.strip()


def test_positive_terms_are_include_then_must():
    assert parse_query("+dog grass").positive == ["grass", "dog"]
    assert isinstance(parse_query("a"), ParsedQuery)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty query"),
        ("   ", "empty query"),
        ("-basketball", "only excludes"),
        ("-a -b", "only excludes"),
        ("dog -", "dangling '-'"),
        ("dog - frisbee", "dangling '-'"),
        ("+", "dangling '+'"),
        ('"hot dog -bun', "unbalanced quote"),
        ('dog -"frisbee', "unbalanced quote"),
        ('do"g', "unexpected quote"),
        ("--dog", "two operators"),
        ("dog -dog", "both wanted and excluded"),
        ('"" dog', "empty phrase"),
    ],
)
def test_errors_are_one_line(text, fragment):
    with pytest.raises(QueryError) as info:
        parse_query(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, SparseEngineError)


def test_non_string_is_an_error():
    with pytest.raises(QueryError):
        parse_query(None)  # type: ignore[arg-type]
