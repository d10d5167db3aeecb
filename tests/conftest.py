"""Shared fixtures: the read-only data in ../shared/data (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests are offline: make the Hugging Face hub fail at once instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def coco_sample(shared_data: Path) -> Path:
    """Folder with 239 real COCO JPEGs in images/ and metadata.jsonl."""
    return shared_data / "coco-sample"


@pytest.fixture(scope="session")
def coco_images(coco_sample: Path) -> list[Path]:
    return sorted((coco_sample / "images").glob("*.jpg"))



@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory) -> Path:
    """A random tiny open_clip model registered as a config and saved as a state_dict: the real
    open_clip loading path, offline (no pretrained CLIP weights can be had here)."""
    import json

    from helpers import TINY_ARCH, TINY_CONFIG

    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("openclip")
    (root / f"{TINY_ARCH}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(root / f"{TINY_ARCH}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_ARCH, pretrained=None)
    checkpoint = root / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return checkpoint
