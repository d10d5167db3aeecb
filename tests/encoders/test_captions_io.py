import json

import pytest

from sparse_engine.encoders.captions_io import flatten, read_captions
from sparse_engine.errors import SparseEngineError


def test_flickr_csv(shared_data):
    caps = read_captions(shared_data / "flickr8k" / "captions.csv")
    assert len(caps) == 8091
    assert sum(len(c) for c in caps.values()) == 40455
    first = caps["1000268201_693b08cb0e.jpg"]
    assert first[0].startswith("A child in a pink dress")
    texts, owner = flatten(caps)
    assert len(texts) == len(owner) == 40455 and owner[0] == 0 and owner[-1] == 8090


def test_coco_json(shared_data):
    caps = read_captions(shared_data / "coco-val2017" / "captions_val2017.json")
    assert len(caps) == 5000
    assert sum(len(c) for c in caps.values()) == 25014
    assert all(k.endswith(".jpg") for k in caps)


def test_metadata_jsonl(coco_sample):
    caps = read_captions(coco_sample / "metadata.jsonl")
    assert len(caps) == 239
    assert caps["images/000000000139.jpg"][0] == "A woman stands in the dining area at the table."


def test_coco_without_images_keys_by_id(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"annotations": [{"image_id": 7, "caption": "a cat"}, {"image_id": 7, "caption": " "}]}))
    assert read_captions(path) == {"7": ["a cat"]}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("x.csv", "file,text\na.jpg,hello\n", "needs the columns image,caption"),
        ("x.json", "{not json", "not valid JSON"),
        ("x.json", json.dumps({"images": []}), "no 'annotations' list"),
        ("x.jsonl", '{"captions": ["a"]}\n', "no 'file' field"),
        ("x.jsonl", "oops\n", "line 1 is not valid JSON"),
        ("x.txt", "a.jpg a dog\n", "cannot tell the captions format"),
        ("x.csv", "image,caption\n", "holds no captions"),
    ],
)
def test_bad_files_are_clear(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SparseEngineError, match=message) as err:
        read_captions(path)
    assert "\n" not in str(err.value)


def test_missing_file_and_binary(tmp_path):
    with pytest.raises(SparseEngineError, match="does not exist"):
        read_captions(tmp_path / "none.csv")
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(SparseEngineError, match="cannot read"):
        read_captions(bad)
