import json

import pytest
from click.testing import CliRunner

from sparse_engine.cli import main
from sparse_engine.encoders import create_encoder


@pytest.mark.slow
def test_train_writes_a_loadable_model_dir(shared_data, tmp_path):
    out = tmp_path / "model"
    args = ["train", "--captions", str(shared_data / "flickr8k" / "captions.csv"), "--out", str(out),
            "--dims", "48", "--top-k", "6", "--epochs", "1", "--spine-epochs", "5", "--max-images", "200",
            "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["data"]["images"] == 200 and summary["sr"]["sr_nnz_mean"] > 0
    assert summary["realizations"]["words"] == len(json.loads((out / "realizations.json").read_text()))
    for name in ("config.json", "weights.safetensors", "spine.safetensors", "vocab.json", "dim_labels.json",
                 "realizations.json"):
        assert (out / name).is_file()
    encoder = create_encoder(str(out), device="cpu")
    assert encoder.dim == 48
    vec = encoder.encode_text(["a dog on the grass"])
    assert vec.shape == (1, 48) and vec.nnz > 0 and vec.data.min() > 0


def test_bad_captions_file_is_one_line_error(tmp_path):
    bad = tmp_path / "c.txt"
    bad.write_text("hello")
    result = CliRunner().invoke(main, ["train", "--captions", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert "cannot tell the captions format" in result.output
    assert "Traceback" not in result.output


def test_bad_option_is_refused(tmp_path, shared_data):
    result = CliRunner().invoke(main, ["train", "--captions", str(shared_data / "flickr8k" / "captions.csv"),
                                       "--out", str(tmp_path / "m"), "--epochs", "0"])
    assert result.exit_code == 1 and "--epochs must be positive" in result.output
