"""Derivatives: large 2048, medium 1024 and thumb 400 px on the long edge, WebP.

Where the time goes (shared/notes/media-performance.md, and bench/derivatives.py):
decoding a 24 MP JPEG at full size is wasted work when the biggest output is
2048 px, resizing in Pillow is slow, and WebP encoding is 60-70% of what is
left. So the pipeline:

1. reads the header only (Pillow, lazy) to reject bad input early: unknown
   formats, a name that lies about the content, decompression bombs;
2. decodes once with libvips, shrinking on load (JPEG DCT scaling by 2, 4 or 8
   while the result stays at least as large as the biggest output);
3. applies the EXIF orientation, converts to 8-bit sRGB, drops all metadata
   (GPS, camera serials...);
4. resizes in a cascade, each size from the one above (libvips, bicubic:
   Lanczos 3 measured 5% more WebP bytes for no visible gain, bicubic matches
   Pillow's own thumbnail() in bytes and PSNR; see bench/derivatives.py);
5. encodes WebP with Pillow's libwebp at the effort set by
   ``DERIVATIVE_WEBP_METHOD`` (the benchmark prints time against bytes).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

# probe() applies our own, configurable limit (DERIVATIVE_MAX_PIXELS) with a
# reason people understand; Pillow's fixed guard would raise an unexpected
# DecompressionBombError above ~179 MP and cap the setting.
Image.MAX_IMAGE_PIXELS = None

# Libvips' own thread pool would fight Celery's prefork workers for cores:
# one worker process per core, one thread per worker (see notes, pitfall 6).
os.environ.setdefault("VIPS_CONCURRENCY", "1")
import pyvips  # noqa: E402

SIZES: tuple[tuple[str, int], ...] = (("large", 2048), ("medium", 1024), ("thumb", 400))
RESIZE_KERNEL = "cubic"

# Format as Pillow names it -> (mime type, file extensions that may carry it).
FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "JPEG": ("image/jpeg", ("jpg", "jpeg", "jpe")),
    "PNG": ("image/png", ("png",)),
    "WEBP": ("image/webp", ("webp",)),
    "TIFF": ("image/tiff", ("tif", "tiff")),
}
MIME_TO_FORMAT = {mime: fmt for fmt, (mime, _) in FORMATS.items()}


class ImageRejected(Exception):
    """The file cannot become derivatives. ``reason`` is for people."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class Derivative:
    name: str
    width: int
    height: int
    data: bytes = field(repr=False)


@dataclass
class ImageInfo:
    format: str
    width: int  # as displayed, after EXIF orientation
    height: int
    orientation: int
    captured_at: datetime | None


def sniff_format(head: bytes) -> str | None:
    """The format from the first bytes, whatever the file is called."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def _captured_at(exif: Image.Exif) -> datetime | None:
    raw = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def probe(path: str, *, filename: str, max_pixels: int) -> ImageInfo:
    """Header-only checks: cheap, and before any pixel is decoded."""
    if os.path.getsize(path) == 0:
        raise ImageRejected("The file is empty (0 bytes).")
    with open(path, "rb") as fh:
        sniffed = sniff_format(fh.read(16))
    if sniffed is None:
        raise ImageRejected("This is not a JPEG, PNG, WebP or TIFF image.")
    ext = _extension(filename)
    if ext not in FORMATS[sniffed][1]:
        raise ImageRejected(
            f"The file is named .{ext or '(none)'} but it is a {sniffed} image. Rename it and upload again."
        )
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"The image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                    f"the limit is {max_pixels / 1e6:.0f} megapixels."
                )
            exif = img.getexif()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("The image is damaged and cannot be read.") from exc
    orientation = int(exif.get(ExifTags.Base.Orientation, 1) or 1)
    # Pillow reports a TIFF's size already oriented; other formats as stored.
    if orientation in (5, 6, 7, 8) and sniffed != "TIFF":
        width, height = height, width
    return ImageInfo(sniffed, width, height, orientation, _captured_at(exif))


def _jpeg_shrink(long_edge: int, target: int) -> int:
    """The largest DCT scale (1, 2, 4, 8) that keeps the long edge >= target.
    Works on the long edge, so a 3:2 frame shrinks too (notes, pitfall 1)."""
    shrink = 1
    while shrink < 8 and long_edge // (shrink * 2) >= target:
        shrink *= 2
    return shrink


def decode(path: str, info: ImageInfo, target: int) -> pyvips.Image:
    """Decode once, shrinking on load; oriented, 8-bit sRGB, no metadata kept.

    The result is materialised in memory: every size is cut from it. Rotating
    by 90 degrees reads the source out of order, so those open with random
    access (notes, pitfall 3)."""
    rotated = info.orientation in (5, 6, 7, 8)
    options: dict[str, Any] = {"access": "random" if rotated else "sequential", "fail_on": "truncated"}
    if info.format == "JPEG":
        options["shrink"] = _jpeg_shrink(max(info.width, info.height), target)
    image = pyvips.Image.new_from_file(path, **options)
    image = image.autorot()
    if image.get_typeof("icc-profile-data"):
        image = image.icc_transform("srgb", embedded=True, intent="perceptual")
    elif image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    if image.bands == 2:  # grey + alpha
        image = image.colourspace("srgb")
    return image.copy_memory()


def _to_pillow(image: pyvips.Image) -> Image.Image:
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.bands]
    return Image.frombuffer(mode, (image.width, image.height), image.write_to_memory(), "raw", mode, 0, 1)


def encode_webp(image: Image.Image, *, quality: int, method: int) -> bytes:
    out = io.BytesIO()
    # No exif=, no icc_profile=: the pixels are sRGB, which browsers assume
    # for untagged images, and nothing private leaves with the picture.
    image.save(out, "WEBP", quality=quality, method=method)
    return out.getvalue()


def resize_cascade(image: pyvips.Image) -> list[tuple[str, pyvips.Image]]:
    """Each size from the one above, never upscaling."""
    steps = []
    current = image
    for name, edge in SIZES:
        scale = edge / max(current.width, current.height)
        if scale < 1:
            # Materialise: the next step reads it again (notes, pitfall 3).
            current = current.resize(scale, kernel=RESIZE_KERNEL).copy_memory()
        steps.append((name, current))
    return steps


def make_derivatives(
    path: str, *, filename: str, max_pixels: int, quality: int = 82, method: int = 4
) -> tuple[ImageInfo, list[Derivative]]:
    info = probe(path, filename=filename, max_pixels=max_pixels)
    try:
        steps = resize_cascade(decode(path, info, SIZES[0][1]))
    except pyvips.Error as exc:
        message = str(exc).lower()
        if "truncat" in message or "premature" in message or "end of" in message:
            raise ImageRejected("The file is truncated: the upload did not finish. Upload it again.") from exc
        raise ImageRejected("The image is damaged and cannot be decoded.") from exc
    derivatives = []
    for name, image in steps:
        data = encode_webp(_to_pillow(image), quality=quality, method=method)
        derivatives.append(Derivative(name, image.width, image.height, data))
    return info, derivatives
