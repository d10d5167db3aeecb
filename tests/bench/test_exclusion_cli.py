"""The benchmark command's user errors: one line, exit status 2, no traceback."""
import json

import pytest

from bench.exclusion import main
from bench.exclusion_data import DEFAULT_DATA

needs_data = pytest.mark.skipif(not (DEFAULT_DATA / "labels_val2017.json").exists(), reason="shared COCO data absent")


@needs_data
def test_images_without_coco_jpegs_is_a_clear_error(tmp_path, capsys):
    assert main(["--docs", "images", "--images-dir", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--docs images needs --images-dir" in err[0]


@needs_data
def test_bad_query_file_is_a_clear_error(tmp_path, capsys):
    qf = tmp_path / "q.jsonl"
    qf.write_text(json.dumps({"include": [], "relevant": []}) + "\n")
    assert main(["--queries", str(qf), "--out", str(tmp_path)]) == 2
    assert "needs a non-empty list 'include'" in capsys.readouterr().err


def test_missing_data_folder(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "benchmark data not found" in capsys.readouterr().err
