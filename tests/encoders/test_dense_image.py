"""open_clip and BLIP through the real loading code paths, with tiny randomly initialised weights."""
import time
from pathlib import Path

import numpy as np
import pytest

from sparse_engine.encoders import create_dense_encoder
from sparse_engine.encoders.base import EncodeReport
from sparse_engine.encoders.cache import EmbeddingCache
from sparse_engine.encoders.dense_image import BlipEncoder, OpenClipEncoder, parse_openclip_spec
from sparse_engine.errors import SparseEngineError

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")
from helpers import TINY_ARCH  # noqa: E402  (the tiny_clip_checkpoint fixture lives in conftest)

@pytest.fixture()
def bad_images(tmp_path, coco_images) -> list[Path]:
    real = coco_images[0].read_bytes()
    corrupt, truncated, text = tmp_path / "corrupt.jpg", tmp_path / "truncated.jpg", tmp_path / "text.png"
    corrupt.write_bytes(np.random.default_rng(0).bytes(3000))
    truncated.write_bytes(real[: len(real) // 2])
    text.write_text("just text\n")
    return [corrupt, truncated, text]


def test_parse_openclip_spec_keeps_absolute_paths():
    assert parse_openclip_spec("ViT-B-32/laion2b_s34b_b79k") == ("ViT-B-32", "laion2b_s34b_b79k")
    assert parse_openclip_spec("ViT-B-32//tmp/x.pt") == ("ViT-B-32", "/tmp/x.pt")
    assert parse_openclip_spec("hf-hub:org/repo") == ("hf-hub:org/repo", None)
    for bad in ["ViT-B-32", "ViT-B-32/", "/x.pt"]:
        with pytest.raises(SparseEngineError, match="ARCH/PRETRAINED"):
            parse_openclip_spec(bad)


def test_openclip_local_checkpoint_images_and_text(tiny_clip_checkpoint, coco_images, bad_images):
    enc = OpenClipEncoder(f"{TINY_ARCH}/{tiny_clip_checkpoint}", device="cpu", batch_size=4)
    assert enc.name == f"openclip:{TINY_ARCH}/{tiny_clip_checkpoint}"
    assert enc.dim == 32 and enc.has_images
    good = coco_images[:10]
    paths = [good[0], bad_images[0], *good[1:5], bad_images[1], *good[5:], bad_images[2]]
    report = EncodeReport()
    emb = enc.embed_images(paths, report)
    assert emb.shape == (len(paths), 32) and emb.dtype == np.float32
    assert {p for p, _ in report.failed} == {str(p) for p in bad_images}
    bad_rows = report.failed_rows([str(p) for p in paths])
    assert bad_rows == {1, 6, len(paths) - 1}
    assert np.all(emb[sorted(bad_rows)] == 0)
    good_rows = np.array([i for i in range(len(paths)) if i not in bad_rows])
    np.testing.assert_allclose(np.linalg.norm(emb[good_rows], axis=1), 1.0, atol=1e-5)
    # Different images give different rows (the model really looked at the pixels).
    assert np.unique(emb[good_rows].round(5), axis=0).shape[0] == len(good)

    # Same result as the open_clip model used directly (batching/threads change nothing).
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_ARCH, pretrained=str(tiny_clip_checkpoint))
    from PIL import Image

    with torch.no_grad():
        direct = model.encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in good[:3]]),
                                    normalize=True).numpy()
    np.testing.assert_allclose(emb[[0, 2, 3]], direct, atol=1e-4)

    text = enc.embed_text(["a dog on the grass", "", "a red car"])
    assert text.shape == (3, 32)
    assert np.all(text[1] == 0)
    np.testing.assert_allclose(np.linalg.norm(text[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(text[0], text[2])


def test_openclip_cache_hits_and_never_caches_failures(tiny_clip_checkpoint, coco_images, bad_images, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    enc = OpenClipEncoder(f"{TINY_ARCH}/{tiny_clip_checkpoint}", device="cpu", cache=cache)
    calls = []
    original = enc._image_features
    enc._image_features = lambda pixels: calls.append(len(pixels)) or original(pixels)
    paths = [*coco_images[:4], bad_images[0]]
    first_report, second_report = EncodeReport(), EncodeReport()
    first = enc.embed_images(paths, first_report)
    assert sum(calls) == 4
    calls.clear()
    second = enc.embed_images(paths, second_report)
    assert calls == []  # nothing computed: all good rows came from the cache
    np.testing.assert_array_equal(first, second)
    assert second_report.failed == first_report.failed  # the bad file is reported again

    # A copy of the checkpoint under another name is the same model: still a hit.
    copy = tmp_path / "renamed.pt"
    copy.write_bytes(tiny_clip_checkpoint.read_bytes())
    enc2 = create_dense_encoder(f"openclip:{TINY_ARCH}/{copy}", device="cpu", cache=cache)  # via the registry
    assert isinstance(enc2, OpenClipEncoder)
    enc2._load = lambda: pytest.fail("model loaded although every row is cached")
    np.testing.assert_array_equal(enc2.embed_images(coco_images[:4]), first[:4])


def test_openclip_errors_are_clear_and_fast(tiny_clip_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SparseEngineError, match="unknown open_clip architecture"):
        OpenClipEncoder("NoSuchArch-99/laion2b_s34b_b79k")
    with pytest.raises(SparseEngineError, match="neither an open_clip pretrained tag"):
        OpenClipEncoder("ViT-B-32/no_such_tag_v0")
    start = time.monotonic()
    enc = OpenClipEncoder("ViT-B-32/laion2b_s34b_b79k", device="cpu")
    with pytest.raises(SparseEngineError) as err:
        enc.embed_text(["a photo of a cat"])
    msg = str(err.value)
    assert "openclip:ViT-B-32/laion2b_s34b_b79k" in msg and "openclip:ViT-B-32//path/to/checkpoint.pt" in msg
    assert "\n" not in msg
    assert time.monotonic() - start < 20  # no 30 s network retries when offline
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SparseEngineError, match="cannot load checkpoint"):
        OpenClipEncoder(f"ViT-B-32/{junk}", device="cpu").embed_text(["x"])
    # A checkpoint of another architecture does not fit.
    with pytest.raises(SparseEngineError, match="cannot load checkpoint"):
        OpenClipEncoder(f"ViT-S-32/{tiny_clip_checkpoint}", device="cpu").embed_text(["x"])


# --------------------------------------------------------------------------------------- BLIP
BLIP_WORDS = "a dog cat on the grass red car man riding horse street people table pizza".split()


def _tiny_tokenizer(vocab_file: Path):
    import transformers

    try:  # transformers >= 5 takes the vocabulary as ``vocab``
        tok = transformers.BertTokenizerFast(vocab=str(vocab_file))
    except TypeError:
        tok = None
    if tok is None or tok.convert_tokens_to_ids("dog") == tok.unk_token_id:
        tok = transformers.BertTokenizerFast(vocab_file=str(vocab_file))
    return tok


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory) -> Path:
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("blip")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BLIP_WORDS]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = _tiny_tokenizer(root / "vocab.txt")
    assert tokenizer.convert_tokens_to_ids("dog") != tokenizer.unk_token_id
    image_processor = transformers.BlipImageProcessor(size={"height": 32, "width": 32})
    config = transformers.BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, encoder_hidden_size=32,
                         pad_token_id=0, bos_token_id=2, sep_token_id=3),
        projection_dim=16, image_text_hidden_size=16,
    )
    torch.manual_seed(0)
    transformers.BlipForImageTextRetrieval(config).save_pretrained(root)
    transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(root)
    return root


def test_blip_local_dir_round_trip(tiny_blip_dir, coco_images, bad_images, tmp_path):
    import transformers

    enc = BlipEncoder(str(tiny_blip_dir), device="cpu", batch_size=3, cache=EmbeddingCache(tmp_path / "c"))
    assert enc.dim == 16 and enc.has_images and enc.name == f"blip:{tiny_blip_dir}"
    paths = [*coco_images[:5], bad_images[1]]
    report = EncodeReport()
    emb = enc.embed_images(paths, report)
    assert emb.shape == (6, 16) and report.failed[0][0] == str(bad_images[1])
    np.testing.assert_allclose(np.linalg.norm(emb[:5], axis=1), 1.0, atol=1e-5)
    assert np.all(emb[5] == 0)
    text = enc.embed_text(["a dog on the grass", "a red car", "  "])
    np.testing.assert_allclose(np.linalg.norm(text[:2], axis=1), 1.0, atol=1e-5)
    assert np.all(text[2] == 0)

    # Agrees with the model's own ITC score (use_itm_head=False): cosine of the projections.
    model = transformers.BlipForImageTextRetrieval.from_pretrained(tiny_blip_dir).eval()
    processor = transformers.BlipProcessor.from_pretrained(tiny_blip_dir)
    from PIL import Image

    inputs = processor(images=Image.open(coco_images[0]).convert("RGB"), text=["a dog on the grass"],
                       return_tensors="pt")
    with torch.no_grad():
        itc = model(**inputs, use_itm_head=False).itm_score.item()
    assert float(emb[0] @ text[0]) == pytest.approx(itc, abs=1e-4)


def test_blip_dir_with_separate_image_processor_and_tokenizer(tiny_blip_dir, tmp_path, coco_images):
    import shutil

    import transformers

    other = tmp_path / "split"
    other.mkdir()
    for name in ["config.json", "model.safetensors"]:
        shutil.copy(tiny_blip_dir / name, other / name)
    transformers.BlipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(other)
    _tiny_tokenizer(tiny_blip_dir / "vocab.txt").save_pretrained(other)
    enc = BlipEncoder(str(other), device="cpu")
    emb = enc.embed_images(coco_images[:2])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_blip_missing_weights_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(SparseEngineError, match="blip:/path/to/dir"):
        BlipEncoder("Salesforce/blip-itm-base-coco")
    assert time.monotonic() - start < 20
    with pytest.raises(SparseEngineError, match="no config.json"):
        BlipEncoder(str(tmp_path))  # an empty folder
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(SparseEngineError, match="not BLIP"):
        BlipEncoder(str(tmp_path))
    (tmp_path / "config.json").write_text("{broken json")
    with pytest.raises(SparseEngineError, match="cannot load BLIP model"):
        BlipEncoder(str(tmp_path))


def test_missing_open_clip_names_the_extra(monkeypatch):
    import sys

    from sparse_engine.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "open_clip", None)  # import now fails as if not installed
    with pytest.raises(MissingExtraError, match=r"open_clip image encoding needs the 'clip' extra.*pip install"):
        OpenClipEncoder("ViT-B-32/laion2b_s34b_b79k")


def test_unreadable_paths_without_report_only_warn(tiny_clip_checkpoint, coco_images, tmp_path, caplog):
    enc = OpenClipEncoder(f"{TINY_ARCH}/{tiny_clip_checkpoint}", device="cpu")
    with caplog.at_level("WARNING"):
        emb = enc.embed_images([tmp_path / "gone.jpg", tmp_path, coco_images[0]])
    assert np.all(emb[:2] == 0) and np.linalg.norm(emb[2]) == pytest.approx(1.0, abs=1e-5)
    assert any("2 image(s) skipped" in r.getMessage() for r in caplog.records)
    assert enc.embed_images([]).shape == (0, 32) and enc.embed_text([]).shape == (0, 32)
