"""The seed paper's query set and the JSON-lines query files."""
import json

import pytest

from bench.exclusion_data import (DEFAULT_DATA, check_counts, label_pair_queries, load_coco,
                                  load_query_file)
from sparse_engine.errors import SparseEngineError

needs_data = pytest.mark.skipif(not (DEFAULT_DATA / "labels_val2017.json").exists(), reason="shared COCO data absent")


@pytest.fixture(scope="module")
def coll():
    return load_coco()


@needs_data
def test_label_pairs_match_the_paper(coll):
    queries = label_pair_queries(coll)
    assert check_counts(queries) == (3215, 189)
    by_id = {q.qid: q for q in queries}
    q = by_id["dog--frisbee"]
    has = lambda lab: {d for d, labs in zip(coll.doc_ids, coll.labels) if lab in labs}  # noqa: E731
    assert q.relevant == has("dog") - has("frisbee")
    assert q.cooccurrence == pytest.approx(len(has("dog") & has("frisbee")) / len(has("dog")))
    assert all(q.hard == (q.cooccurrence >= 0.3) for q in queries)
    assert all(q.relevant for q in queries)
    assert len(coll.doc_ids) == 5000 and all(coll.captions)


@needs_data
def test_query_file_round_trip_and_errors(coll, tmp_path):
    good = tmp_path / "q.jsonl"
    good.write_text(json.dumps({"include": ["dog"], "exclude": ["cat"], "relevant": [139, "000000000285"]}) + "\n\n")
    (q,) = load_query_file(good, coll)
    assert q.include == ["dog"] and q.exclude == ["cat"] and q.relevant == {"000000000139", "000000000285"}
    bad_id = tmp_path / "bad.jsonl"
    bad_id.write_text(json.dumps({"include": ["dog"], "exclude": [], "relevant": ["123"]}) + "\n")
    with pytest.raises(SparseEngineError, match="unknown doc id"):
        load_query_file(bad_id, coll)
    not_json = tmp_path / "nj.jsonl"
    not_json.write_text("{include: dog}\n")
    with pytest.raises(SparseEngineError, match="line|:1:"):
        load_query_file(not_json, coll)
    with pytest.raises(SparseEngineError, match="not found"):
        load_query_file(tmp_path / "missing.jsonl", coll)


def test_missing_data_dir_is_one_clear_error(tmp_path):
    with pytest.raises(SparseEngineError, match="not found"):
        load_coco(tmp_path)
