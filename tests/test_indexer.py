import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TOY_DOCS, ToyEncoder, build_toy_index, make_collection

from sparse_engine.errors import SparseEngineError
from sparse_engine.indexer import build_index, collect, read_sidecar_captions
from sparse_engine.searcher import Searcher

TESTS = Path(__file__).resolve().parent


def test_collect_jsonl_recursive(tmp_path):
    root = make_collection(tmp_path / "c")
    docs = collect(root)
    assert sorted(d.id for d in docs) == sorted(s for s, _, _ in TOY_DOCS)
    assert [d.path for d in docs] == sorted(d.path for d in docs)
    assert any("/sub/" in d.path for d in docs)
    assert all(d.captions for d in docs)
    assert {d.id: d.captions for d in docs}["d00"] == TOY_DOCS[0][2]


def test_collect_csv_by_file_name(tmp_path):
    root = make_collection(tmp_path / "c", sidecar="csv")
    assert len(read_sidecar_captions(root)) == len(TOY_DOCS)
    docs = {d.id: d for d in collect(root)}
    assert docs["d03"].captions == TOY_DOCS[3][2] and docs["d03"].path == "images/sub/d03.jpg"


def test_build_manifest_and_by_modes(tmp_path):
    root = make_collection(tmp_path / "c", bad_image=True)
    report = build_index(root, tmp_path / "idx", encoder=ToyEncoder(), by="image")
    assert report.n_docs == len(TOY_DOCS)  # broken.jpg is skipped
    assert [Path(p).name for p, _ in report.failed] == ["broken.jpg"]
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["by"] == "image" and manifest["n_docs"] == len(TOY_DOCS)
    assert manifest["encoder"]["name"] == "toy:v1" and manifest["encoder"]["dim"] == ToyEncoder().dim
    assert manifest["backends"] == ["numba"] and "broken.jpg" in json.dumps(manifest["report"])
    searcher = Searcher(tmp_path / "idx")
    reds = {r.doc_id for r in searcher.search("red", k=20)}
    assert reds == {s for s, colour, _ in TOY_DOCS if colour == "red"}
    both = build_index(root, tmp_path / "both", encoder=ToyEncoder(), by="both")
    assert both.by == "both" and both.n_docs == len(TOY_DOCS)
    found = {r.doc_id for r in Searcher(tmp_path / "both").search("red pizza", k=20)}
    assert {"d04", "d05", "d07"} <= found  # d05 is blue but a pizza; d07 a red car


def test_atomic_rebuild_replaces_and_cleans(tmp_path):
    index = build_toy_index(tmp_path)
    first = json.loads((index / "manifest.json").read_text())["created"]
    small = make_collection(tmp_path / "small", docs=TOY_DOCS[:3])
    build_index(small, index, encoder="toy:v1")
    assert json.loads((index / "manifest.json").read_text())["n_docs"] == 3
    assert first  # the old manifest existed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collection", "index", "small"]


def test_failed_build_keeps_old_index(tmp_path):
    index = build_toy_index(tmp_path)

    class Exploding(ToyEncoder):
        def encode_caption_sets(self, caption_sets, pooling="mean"):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build_index(tmp_path / "collection", index, encoder=Exploding())
    assert [r.doc_id for r in Searcher(index).search("pizza", k=1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collection", "index"]


def test_refuses_to_overwrite_other_folders(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.txt").write_text("mine")
    make_collection(tmp_path / "c")
    with pytest.raises(SparseEngineError, match="not a sparse-engine index"):
        build_index(tmp_path / "c", tmp_path / "photos", encoder="toy:v1")
    assert (tmp_path / "photos" / "keep.txt").read_text() == "mine"


def test_clear_errors(tmp_path):
    with pytest.raises(SparseEngineError, match="does not exist"):
        build_index(tmp_path / "none", tmp_path / "idx", encoder="toy:v1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SparseEngineError, match="no images"):
        build_index(tmp_path / "empty", tmp_path / "idx", encoder="toy:v1")
    root = make_collection(tmp_path / "nocap", sidecar="none")

    class TextOnly(ToyEncoder):
        @property
        def has_images(self):
            return False

    with pytest.raises(SparseEngineError, match="open_clip") as info:
        build_index(root, tmp_path / "idx", encoder=TextOnly())
    assert "no captions" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SparseEngineError, match="no captions found"):
        build_index(root, tmp_path / "idx", encoder="toy:v1", by="captions")
    with pytest.raises(SparseEngineError, match="backends"):
        build_index(root, tmp_path / "idx", encoder="toy:v1", backends=("faiss",))


def test_interrupted_swap_is_recovered(tmp_path):
    index = build_toy_index(tmp_path)
    os.rename(index, index.with_name("index.old-12345"))  # killed between the two renames
    assert Searcher(index).search("cat", k=1)[0].doc_id in {"d03", "d11"}
    assert not list(tmp_path.glob("index.old-*"))


@pytest.mark.slow
def test_killed_build_leaves_old_index(tmp_path):
    index = build_toy_index(tmp_path)
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import helpers; "
        "from sparse_engine.indexer import build_index; "
        f"build_index({str(tmp_path / 'collection')!r}, {str(index)!r}, encoder='toy:slow')"
    )
    env = dict(os.environ, TOY_SLEEP="60")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    tmp_dir = index.with_name(f"index.tmp-{proc.pid}")
    try:
        deadline = time.monotonic() + 120
        while not tmp_dir.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert tmp_dir.exists(), "the build never started writing"
        time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    results = Searcher(index).search("pizza -person", k=3, strategy="veto")
    assert [r.doc_id for r in results][:1] == ["d05"]
    build_index(tmp_path / "collection", index, encoder="toy:v1")  # the next build cleans up
    assert not tmp_dir.exists()


def test_caption_words_in_the_index(tmp_path):
    from sparse_engine.words import WordChannel

    root = make_collection(tmp_path / "c")
    build_index(root, tmp_path / "idx", encoder=ToyEncoder())
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    words = WordChannel.load(tmp_path / "idx", manifest["words"])
    assert manifest["words"]["offset"] == ToyEncoder().dim and manifest["words"]["weight"] == 0.8
    assert manifest["store"]["dim"] == ToyEncoder().dim + words.n_terms
    assert {"frisbee", "cheese", "red car"} - set(words.terms) == {"red car"}  # a phrase of one document
    assert "the" not in words.terms and "hot dog" not in words.terms
    searcher = Searcher(tmp_path / "idx")
    assert [r.doc_id for r in searcher.search("cheese", k=5)] == ["d05"]  # a word only the captions know
    # images only: no captions, no caption words; --words 0: none either
    image_only = build_index(root, tmp_path / "img", encoder=ToyEncoder(), by="image")
    assert "words" not in image_only.manifest and image_only.manifest["store"]["dim"] == ToyEncoder().dim
    assert "words" not in build_index(root, tmp_path / "w0", encoder=ToyEncoder(), words=0.0).manifest
    with pytest.raises(SparseEngineError, match="caption-word weight must be a number >= 0"):
        build_index(root, tmp_path / "bad", encoder=ToyEncoder(), words=-1.0)


def test_tampered_caption_words_are_refused(tmp_path):
    build_index(make_collection(tmp_path / "c"), tmp_path / "idx", encoder=ToyEncoder())
    path = tmp_path / "idx" / "words.json"
    path.write_text(path.read_text().replace("frisbee", "frisbeee"))
    with pytest.raises(SparseEngineError, match="words.json fails its checksum"):
        Searcher(tmp_path / "idx")
