"""Find and open image files with Pillow; a bad file is reported and skipped, never a crash."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from ..errors import SparseEngineError
from .base import EncodeReport

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})


def discover_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (by suffix, case-insensitive), sorted by path."""
    root = Path(root)
    if not root.exists():
        raise SparseEngineError(f"image folder '{root}' does not exist")
    if not root.is_dir():
        raise SparseEngineError(f"'{root}' is not a folder")
    candidates = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line, for ``EncodeReport.failed`` reasons and error messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_image(path: str | os.PathLike):
    """Decode one image fully as RGB; return ``(image, None)`` or ``(None, reason)``.

    ``img.load()`` forces the whole decode so truncated files fail here rather than later
    inside a model's preprocessing (Pillow's ``LOAD_TRUNCATED_IMAGES`` is deliberately left off).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except FileNotFoundError:
        return None, "file not found"
    except IsADirectoryError:
        return None, "is a directory, not an image file"
    except PermissionError:
        return None, "permission denied"
    except UnidentifiedImageError:
        return None, "not an image Pillow can read (unrecognised or corrupt file)"
    except Image.DecompressionBombError as exc:
        return None, f"image too large: {one_line(exc)}"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports truncated/corrupt data as OSError (sometimes SyntaxError/EOFError).
        return None, f"truncated or corrupt image: {one_line(exc)}"
    if rgb.width == 0 or rgb.height == 0:
        return None, "image has zero width or height"
    return rgb, None


def load_images(paths: Sequence[str | os.PathLike], report: EncodeReport | None = None, threads: int = 1) -> list:
    """Open each path as an RGB ``PIL.Image``; a bad file gives ``None`` and an entry in ``report.failed``.

    ``threads`` > 1 decodes in a thread pool (Pillow releases the GIL while decoding).
    """
    if threads > 1 and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(open_image, paths))
    else:
        results = [open_image(p) for p in paths]
    images = []
    for path, (img, reason) in zip(paths, results):
        if img is None and report is not None:
            report.failed.append((str(path), reason))
        images.append(img)
    return images
