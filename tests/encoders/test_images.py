import os
from pathlib import Path

import pytest
from PIL import Image

from sparse_engine.encoders.base import EncodeReport
from sparse_engine.encoders.images import discover_images, load_images
from sparse_engine.errors import SparseEngineError


@pytest.fixture()
def bad_files(tmp_path: Path, coco_images: list[Path]) -> dict[str, Path]:
    real = coco_images[0].read_bytes()
    files = {
        "random": tmp_path / "random.jpg",
        "truncated": tmp_path / "truncated.jpg",
        "text_as_png": tmp_path / "notes.png",
        "empty": tmp_path / "empty.jpg",
    }
    files["random"].write_bytes(os.urandom(4096))
    files["truncated"].write_bytes(real[: len(real) // 2])
    files["text_as_png"].write_text("this is not an image\n")
    files["empty"].write_bytes(b"")
    return files


def test_good_images_load_as_rgb(coco_images):
    report = EncodeReport()
    images = load_images(coco_images[:3], report)
    assert report.failed == []
    assert all(img is not None and img.mode == "RGB" and img.width > 0 for img in images)


def test_bad_files_are_reported_not_raised(coco_images, bad_files, tmp_path):
    missing = tmp_path / "missing.jpg"
    paths = [coco_images[0], *bad_files.values(), missing, coco_images[1]]
    report = EncodeReport()
    images = load_images(paths, report, threads=2)
    assert images[0] is not None and images[-1] is not None
    assert images[1:-1] == [None] * (len(paths) - 2)
    failed = dict(report.failed)
    assert set(failed) == {str(p) for p in [*bad_files.values(), missing]}
    assert "truncated" in failed[str(bad_files["truncated"])]
    assert failed[str(missing)] == "file not found"
    assert all("\n" not in reason and reason for reason in failed.values())
    assert report.failed_rows([str(p) for p in paths]) == set(range(1, len(paths) - 1))


def test_palette_and_alpha_images_convert_to_rgb(tmp_path):
    Image.new("RGBA", (8, 5), (255, 0, 0, 128)).save(tmp_path / "a.png")
    Image.new("P", (4, 4)).save(tmp_path / "b.gif")
    images = load_images([tmp_path / "a.png", tmp_path / "b.gif"])
    assert [img.mode for img in images] == ["RGB", "RGB"]
    assert images[0].size == (8, 5)


def test_discover_images_sorted_case_insensitive(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    names = ["b.JPG", "a.png", "sub/c.Jpeg", "sub/deeper/d.webp", "e.bmp", "f.GIF", "notes.txt", "g.jpg.bak"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()  # a folder named like an image is not an image
    found = discover_images(tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == sorted(["a.png", "b.JPG", "e.bmp", "f.GIF", "sub/c.Jpeg", "sub/deeper/d.webp"])
    flat = [p.name for p in discover_images(tmp_path, recursive=False)]
    assert flat == ["a.png", "b.JPG", "e.bmp", "f.GIF"]


def test_discover_images_real_collection(coco_sample):
    found = discover_images(coco_sample)
    assert len(found) == 239 and found == sorted(found)


def test_discover_images_bad_root(tmp_path):
    with pytest.raises(SparseEngineError, match="does not exist"):
        discover_images(tmp_path / "nope")
    (tmp_path / "f.jpg").write_bytes(b"x")
    with pytest.raises(SparseEngineError, match="not a folder"):
        discover_images(tmp_path / "f.jpg")
