"""Derivatives: large 2048, medium 1024 and thumb 400 px on the long edge, WebP.

Where the time goes (shared/notes/media-performance.md, and bench/derivatives.py):
decoding a 24 MP JPEG at full size is wasted work when the biggest output is
2048 px, resizing in Pillow is slow, and WebP encoding is 60-70% of what is
left. So the pipeline:

1. reads the header only (Pillow, lazy) to reject bad input early: unknown
   formats, a name that lies about the content, decompression bombs;
2. decodes once with libvips, a JPEG shrinking on load (DCT scaling by 2, 4
   or 8 while the result stays at least as large as the biggest output) and
   streaming straight into the resize to the large size, so the shrunk
   frame is never held whole. A progressive JPEG is the exception that no
   option changes: libjpeg must Huffman-decode every scan of the whole frame
   into its coefficient buffer (2 bytes a coefficient, ~72 MB at 24 MP,
   whatever the access mode) before the first row comes out, and DCT scaling
   only saves the inverse DCT after it. At 24 MP that decode is ~390 ms CPU
   at shrink 2 against ~110 ms for a baseline file, and ~360 ms even at
   shrink 8 (libvips' mozjpeg and Pillow's libjpeg-turbo alike; file, buffer
   or source, sequential or random, any fail_on: the same), so such a file
   is decoded once, at the floor's own cost, and stays ~1.6-1.8x naive at
   best (bench/derivatives.py);
3. applies the EXIF orientation to that large image, the smallest one every
   size is cut from (turning a 3000x2000 decode costs twice as much); a
   JPEG's rotation no longer forces a random-access decode either;
4. converts to 8-bit sRGB, on the large image too, and not at all when the
   embedded profile is sRGB already (most camera files: colour.is_srgb);
   drops all metadata (GPS, camera serials...);
5. resizes in a cascade, each size from the one above (libvips; bicubic to
   the large, Mitchell below it: Lanczos 3 measured 5-20% more WebP bytes for
   no visible gain, and these match or beat naive Pillow's bytes at equal
   PSNR; see bench/derivatives.py), to sizes computed from the original's
   aspect ratio (:func:`fit`);
6. encodes WebP with Pillow's libwebp at the effort set by
   ``DERIVATIVE_WEBP_METHOD`` (the benchmark prints time against bytes):
   libvips' own WebP encoder makes the same bytes 10-15% slower. Each
   size is copied out of libvips once, and that copy feeds both Pillow and
   the next resize.

Other formats, and JPEGs that are not 8-bit grey or RGB (CMYK...), take the
general path: decode, orient and convert first, then the cascade.

Bad input ends as :class:`ImageRejected` with a reason a person can act on,
before memory is spent where possible: a JPEG whose data is shorter than its
frame could hold is refused from its header (a 2 KB file claiming 100
megapixels would otherwise cost hundreds of MB to decode into grey), the
memory a decode needs is estimated from the header and capped
(``DERIVATIVE_MAX_DECODE_BYTES``), and data that ends before the frame does
is refused, while the harmless warnings camera files often carry are not.
HEIC/HEIF (phones) is decoded by pillow-heif (libheif with libde265): the
libvips bundled with pyvips-binary has no HEVC decoder.
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

from galleries import colour

# probe() applies our own, configurable limit (DERIVATIVE_MAX_PIXELS) with a
# reason people understand; Pillow's fixed guard would raise an unexpected
# DecompressionBombError above ~179 MP and cap the setting.
Image.MAX_IMAGE_PIXELS = None

# Libvips' own thread pool would fight Celery's prefork workers for cores:
# one worker process per core, one thread per worker (see notes, pitfall 6).
os.environ.setdefault("VIPS_CONCURRENCY", "1")
import pyvips  # noqa: E402

# The environment only counts if libvips was not started before this
# module (another import, a shell): say it again. Two worker processes on two
# cores then scale (bench/derivatives.py --procs).
try:
    pyvips.concurrency_set(max(1, int(os.environ["VIPS_CONCURRENCY"])))
except ValueError:  # not a number: libvips ignores it too
    pyvips.concurrency_set(1)
# Every upload is a new file, so libvips' operation cache only holds memory
# and could hand back a stale decode if a temporary file name came back.
pyvips.cache_set_max(0)

try:  # optional: an install without it refuses HEIC with a clear reason
    import pillow_heif
except ImportError:  # pragma: no cover - pinned in requirements/base.txt
    pillow_heif = None

HEIC_UNSUPPORTED = (
    "HEIC photos are not supported here. Export them as JPEG (on an iPhone: Settings > Camera > Formats > "
    "Most Compatible) and upload them again."
)

SIZES: tuple[tuple[str, int], ...] = (("large", 2048), ("medium", 1024), ("thumb", 400))
RESIZE_KERNEL = "cubic"
# The medium and thumb come from the size above in a cascade: there Mitchell
# gives 4-10% fewer WebP bytes than Catmull-Rom cubic at the same PSNR
# against an exact reference (bench/derivatives.py, "bytes at naive's PSNR"),
# while cubic left the thumb 2-4% above naive Pillow's.
CASCADE_KERNEL = "mitchell"

# Format -> (mime types, file extensions that may carry it). The first of
# each is what we store under.
FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "JPEG": (("image/jpeg",), ("jpg", "jpeg", "jpe")),
    "PNG": (("image/png",), ("png",)),
    "WEBP": (("image/webp",), ("webp",)),
    "TIFF": (("image/tiff",), ("tif", "tiff")),
    "HEIF": (("image/heic", "image/heif"), ("heic", "heif", "hif")),
}
MIME_TO_FORMAT = {mime: fmt for fmt, (mimes, _) in FORMATS.items() for mime in mimes}
# ISO BMFF major brands of HEIF stills (HEVC-coded, or the generic image brands).
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
# libvips band formats -> bytes per sample, for the decode memory estimate.
SAMPLE_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4, "double": 8}


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
    orientation: int  # 1-8 (odd values read as 1)
    captured_at: datetime | None
    adobe_rgb: bool = False  # EXIF says Adobe RGB and no profile is embedded


def sniff_format(head: bytes) -> str | None:
    """The format from the first 16 bytes, whatever the file is called."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "HEIF"
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


def orientation_of(exif: Image.Exif) -> int:
    """EXIF Orientation, 1 to 8. Anything else (text, 0, 65535...) is read
    as 1, upright: cameras and editors write odd values, and a photo must
    not fail, or overflow a column, for a tag it can do without."""
    raw = exif.get(ExifTags.Base.Orientation, 1)
    if not isinstance(raw, int):  # the tag is a SHORT: text or a list is not an orientation
        return 1
    return raw if 1 <= raw <= 8 else 1


@dataclass(frozen=True)
class JpegFrame:
    width: int
    height: int
    progressive: bool
    arithmetic: bool
    components: tuple[tuple[int, int], ...]  # (horizontal, vertical) sampling

    @property
    def blocks(self) -> int:
        """8x8 blocks the frame holds, over every component."""
        hmax = max(h for h, _ in self.components)
        vmax = max(v for _, v in self.components)
        return sum(
            math.ceil(math.ceil(self.width * h / hmax) / 8) * math.ceil(math.ceil(self.height * v / vmax) / 8)
            for h, v in self.components
        )


_SOF = {0xC0: (False, False), 0xC1: (False, False), 0xC2: (True, False), 0xC9: (False, True), 0xCA: (True, True)}


def jpeg_frame(path: str) -> JpegFrame | None:
    """The frame header (SOF) of a JPEG, read by walking its markers."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return None
        while True:
            byte = fh.read(1)
            while byte == b"\xff":  # fill bytes before a marker
                marker = fh.read(1)
                if marker != b"\xff":
                    break
                byte = marker
            else:
                return None
            code = marker[0] if marker else 0xD9
            if code in (0xD9, 0xDA):  # EOI or SOS before any frame header
                return None
            if 0xD0 <= code <= 0xD7 or code == 0x01:  # markers without a length
                continue
            raw_length = fh.read(2)
            if len(raw_length) < 2:
                return None
            length = struct.unpack(">H", raw_length)[0]
            if code in _SOF:
                body = fh.read(length - 2)
                if len(body) < 6:
                    return None
                height, width, count = struct.unpack(">HHB", body[1:6])
                parts = body[6 : 6 + 3 * count]
                sampling = tuple((parts[i + 1] >> 4, parts[i + 1] & 0x0F) for i in range(0, len(parts), 3))
                if not sampling or any(h == 0 or v == 0 for h, v in sampling):
                    return None
                progressive, arithmetic = _SOF[code]
                return JpegFrame(width, height, progressive, arithmetic, sampling)
            fh.seek(length - 2, os.SEEK_CUR)


def _check_jpeg_data(path: str, frame: JpegFrame) -> None:
    """Huffman coding spends at least one bit on every 8x8 block (its DC
    code), in the first scan of any JPEG: a file smaller than that cannot
    hold its frame. It was cut short, or its header lies; decoding it would
    spend the frame's full memory to paint grey."""
    if frame.arithmetic:
        return  # arithmetic coding may spend less than a bit: no bound
    least = frame.blocks // 8
    if os.path.getsize(path) < least:
        raise ImageRejected(
            f"The file is too small for the {frame.width}x{frame.height} picture its header announces "
            f"(at least {least / 1e3:.0f} KB): it is truncated or damaged. Export it again and upload the new file."
        )


def decode_bytes(info: ImageInfo, *, bands: int = 3, sample_bytes: int = 1, frame: JpegFrame | None = None) -> int:
    """What decoding will hold in memory at its peak, from the header: a
    progressive JPEG keeps every DCT coefficient of the frame (2 bytes each),
    whatever the scale it is decoded to; a baseline JPEG is decoded shrunk;
    other formats at full size."""
    if frame is not None:
        if frame.progressive:
            return frame.blocks * 64 * 2
        shrink = _jpeg_shrink(max(info.width, info.height), SIZES[0][1])
        return (info.width // shrink + 1) * (info.height // shrink + 1) * bands * sample_bytes
    return info.width * info.height * bands * sample_bytes


def _too_much_memory(needed: int, limit: int) -> ImageRejected:
    return ImageRejected(
        f"Decoding this image needs about {needed / 2**20:.0f} MB, more than the {limit / 2**20:.0f} MB allowed "
        "per photo. Export it smaller (or as a baseline, not progressive, JPEG)."
    )


def _unsupported_tiff(path: str) -> ImageRejected | None:
    """Pillow reads no floating-point or more-than-four-channel TIFF; libvips
    does read their header: say what is not supported rather than "damaged"."""
    try:
        header = pyvips.Image.new_from_file(path)
    except pyvips.Error:
        return None
    if header.format in ("float", "double", "complex", "dpcomplex"):
        return ImageRejected(
            "Floating-point (32-bit float) TIFFs are not supported. Export it as an 8 or 16-bit TIFF or a JPEG."
        )
    if header.bands > 4:
        return ImageRejected(
            f"TIFFs with {header.bands} channels are not supported. Export it as RGB (8 or 16-bit) or a JPEG."
        )
    return None


def _header(path: str, sniffed: str) -> tuple[int, int, Image.Exif, str]:
    """Size, EXIF and Pillow's mode, reading no pixel."""
    if sniffed == "HEIF":
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        exif = Image.Exif()
        if heif.info.get("exif"):
            exif.load(heif.info["exif"])
        # libheif applies the file's rotation and mirroring itself, and its
        # EXIF orientation is advice already followed: upright as decoded.
        exif[ExifTags.Base.Orientation] = 1
        return heif.size[0], heif.size[1], exif, heif.mode
    with Image.open(path) as img:
        return img.size[0], img.size[1], img.getexif(), img.mode


def probe(path: str, *, filename: str, max_pixels: int, max_decode_bytes: int = 2**30) -> ImageInfo:
    """Header-only checks: cheap, and before any pixel is decoded."""
    if os.path.getsize(path) == 0:
        raise ImageRejected("The file is empty (0 bytes).")
    with open(path, "rb") as fh:
        sniffed = sniff_format(fh.read(16))
    if sniffed is None:
        raise ImageRejected("This is not a JPEG, PNG, WebP, TIFF or HEIC image.")
    ext = _extension(filename)
    if ext not in FORMATS[sniffed][1]:
        raise ImageRejected(
            f"The file is named .{ext or '(none)'} but it is a {sniffed} image. Rename it and upload again."
        )
    if sniffed == "HEIF" and pillow_heif is None:
        raise ImageRejected(HEIC_UNSUPPORTED)
    try:
        width, height, exif, mode = _header(path, sniffed)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        unsupported = _unsupported_tiff(path) if sniffed == "TIFF" else None
        raise (unsupported or ImageRejected("The image is damaged and cannot be read.")) from exc
    if width * height > max_pixels:
        raise ImageRejected(
            f"The image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels."
        )
    orientation = orientation_of(exif)
    # Pillow reports a TIFF's size already oriented; other formats as stored.
    if orientation in (5, 6, 7, 8) and sniffed != "TIFF":
        width, height = height, width
    info = ImageInfo(sniffed, width, height, orientation, _captured_at(exif), adobe_rgb=colour.says_adobe_rgb(exif))
    frame = jpeg_frame(path) if sniffed == "JPEG" else None
    if sniffed == "JPEG" and frame is None:
        raise ImageRejected("The image is damaged and cannot be read.")
    if frame is not None:
        _check_jpeg_data(path, frame)
    bands = len(mode) if mode not in ("I;16", "I;16B", "I", "F") else 1
    sample = 2 if "16" in mode or mode in ("I", "F") else 1
    needed = decode_bytes(info, bands=max(bands, 3), sample_bytes=sample, frame=frame)
    if needed > max_decode_bytes:
        raise _too_much_memory(needed, max_decode_bytes)
    return info


def _jpeg_shrink(long_edge: int, target: int) -> int:
    """The largest DCT scale (1, 2, 4, 8) that keeps the long edge >= target.
    Works on the long edge, so a 3:2 frame shrinks too (notes, pitfall 1)."""
    shrink = 1
    while shrink < 8 and long_edge // (shrink * 2) >= target:
        shrink *= 2
    return shrink


def _load(path: str, info: ImageInfo, target: int, fail_on: str) -> pyvips.Image:
    if info.format == "HEIF":
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        picture = heif.to_pillow()
        if picture.mode not in ("RGB", "RGBA"):
            picture = picture.convert("RGB")
        image = pyvips.Image.new_from_memory(
            picture.tobytes(), picture.width, picture.height, len(picture.mode), "uchar"
        )
        icc = heif.info.get("icc_profile")
        if icc:
            image = image.copy()
            image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
        return image
    # Mirroring left-right reads the source in order; every other flip or
    # rotation reads it bottom-up or column-wise: those open with random
    # access (notes, pitfall 3), or they fail as "out of order".
    in_order = info.orientation in (1, 2)
    options: dict[str, Any] = {"access": "sequential" if in_order else "random", "fail_on": fail_on}
    if info.format == "JPEG":
        options["shrink"] = _jpeg_shrink(max(info.width, info.height), target)
    return pyvips.Image.new_from_file(path, **options)


def decode(path: str, info: ImageInfo, target: int, *, fail_on: str = "warning") -> pyvips.Image:
    """Decode once, shrinking on load; oriented, 8-bit sRGB, no metadata kept.

    The result is materialised in memory: every size is cut from it."""
    image = _load(path, info, target, fail_on).copy()
    # Ours, not libvips' own reading of the tag: the access mode above and
    # the size recorded were chosen for this orientation.
    image.set_type(pyvips.GValue.gint_type, "orientation", info.orientation)
    image = image.autorot()
    if image.get_typeof("icc-profile-data"):
        image = image.icc_transform("srgb", embedded=True, intent="perceptual")
    elif info.adobe_rgb and image.bands in (3, 4):
        image = image.copy()
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", colour.adobe_rgb_profile())
        image = image.icc_transform("srgb", embedded=True, intent="perceptual")
    elif image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    if image.bands == 2:  # grey + alpha
        image = image.colourspace("srgb")
    return image.copy_memory()


def _ended_early(error: pyvips.Error) -> bool:
    message = str(error).lower()
    return "premature end" in message or "truncat" in message or "end of" in message


def _to_pillow(image: pyvips.Image, data: bytes) -> Image.Image:
    """Pillow's view of a libvips image over ``data``, that image already in
    memory (from :func:`_materialise`), not copied again."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.bands]
    return Image.frombuffer(mode, (image.width, image.height), data, "raw", mode, 0, 1)


def _materialise(image: pyvips.Image) -> tuple[pyvips.Image, bytes]:
    """Run the pipeline once into bytes, and a libvips image over those same
    bytes: the next resize reads them, and so does Pillow's encoder."""
    data = image.write_to_memory()
    return pyvips.Image.new_from_memory(data, image.width, image.height, image.bands, image.format), data


def encode_webp(image: Image.Image, *, quality: int, method: int) -> bytes:
    out = io.BytesIO()
    # No exif=, no icc_profile=: the pixels are sRGB, which browsers assume
    # for untagged images, and nothing private leaves with the picture.
    image.save(out, "WEBP", quality=quality, method=method)
    return out.getvalue()


def fit(width: int, height: int, edge: int) -> tuple[int, int]:
    """A derivative's size: the long edge at ``edge`` (never upscaled), the
    short one in proportion, rounded half up, from the original's own size.
    Computed once here, so neither the DCT scale a JPEG was decoded at nor
    the cascade's own rounding can move a size by a pixel."""
    long_edge = max(width, height)
    if long_edge <= edge:
        return width, height
    scale = edge / long_edge
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def _resize_to(image: pyvips.Image, width: int, height: int, kernel: str = RESIZE_KERNEL) -> pyvips.Image:
    if (image.width, image.height) == (width, height):
        return image
    # Per-axis scales land on exactly (width, height): libvips rounds
    # width * (w / width) to w however the division rounded.
    return image.resize(width / image.width, vscale=height / image.height, kernel=kernel)


def resize_cascade(
    image: pyvips.Image, *, source_size: tuple[int, int] | None = None
) -> list[tuple[str, pyvips.Image, bytes]]:
    """Each size from the one above, never upscaling, each as a libvips image
    and its pixels in memory (the next step and the encoder read the same
    bytes: notes, pitfall 3). ``source_size`` is the original's displayed
    size when ``image`` was decoded smaller."""
    width, height = source_size or (image.width, image.height)
    steps = []
    current, data = None, b""
    for name, edge in SIZES:
        target = fit(width, height, edge)
        if current is None or target != (current.width, current.height):
            kernel = RESIZE_KERNEL if current is None else CASCADE_KERNEL
            current, data = _materialise(_resize_to(image if current is None else current, *target, kernel))
        steps.append((name, current, data))
    return steps


def _fast_jpeg(path: str, info: ImageInfo, fail_on: str) -> pyvips.Image | None:
    """A JPEG as its large derivative: decoded shrunk, in order, straight
    into the resize, then oriented and converted at that size. ``None`` when
    the file needs the general path (CMYK, a grey or CMYK profile...)."""
    long_edge = max(info.width, info.height)
    # One decode, progressive or not: thumbnail()/thumbnail_buffer() would
    # cost more (they decode the same way, then resize on their own terms),
    # and a progressive file's Huffman decode of every scan is not shrunk by
    # any loader option (module docstring, step 2).
    image = pyvips.Image.new_from_file(
        path, access="sequential", fail_on=fail_on, shrink=_jpeg_shrink(long_edge, SIZES[0][1])
    )
    if image.format != "uchar" or (image.bands, image.interpretation) not in ((3, "srgb"), (1, "b-w")):
        return None
    profile = image.get("icc-profile-data") if image.get_typeof("icc-profile-data") else None
    if profile is None and info.adobe_rgb and image.bands == 3:
        profile = colour.adobe_rgb_profile()
    if profile is not None and image.bands != 3:
        return None  # a grey profile: the general path converts it
    if profile is not None and colour.is_srgb(profile):
        profile = None
    width, height = fit(info.width, info.height, SIZES[0][1])
    if info.orientation in (5, 6, 7, 8):  # stored on its side
        width, height = height, width
    image = _resize_to(image, width, height)
    if info.orientation not in (1, 2):
        # Turning reads the image column-wise or bottom-up: from memory,
        # not from a decoder that goes top to bottom once (notes, pitfall 3).
        # Upright, the decode streams on into the copy _derive makes.
        image = image.copy_memory()
    # Ours, not libvips' own reading of the tag: the size recorded was
    # chosen for this orientation. (copy(): metadata only, never the pixels.)
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", info.orientation)
    image = image.autorot().copy()
    if profile is not None:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
        image = image.icc_transform("srgb", embedded=True, intent="perceptual")
    return image


def _derive(path: str, info: ImageInfo, fail_on: str) -> list[tuple[str, pyvips.Image, bytes]]:
    """Every size, each as a libvips image and its pixels in memory."""
    large = _fast_jpeg(path, info, fail_on) if info.format == "JPEG" else None
    if large is None:
        large = decode(path, info, SIZES[0][1], fail_on=fail_on)
    source_size = (info.width, info.height) if info.format == "JPEG" else (large.width, large.height)
    return resize_cascade(large, source_size=source_size)


def make_derivatives(
    path: str,
    *,
    filename: str,
    max_pixels: int,
    quality: int = 82,
    method: int = 4,
    max_decode_bytes: int = 2**30,
) -> tuple[ImageInfo, list[Derivative]]:
    info = probe(path, filename=filename, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes)
    try:
        try:
            # Strict first: libjpeg only warns when the data ends before the
            # frame does, and fills the rest with grey.
            steps = _derive(path, info, fail_on="warning")
        except pyvips.Error as exc:
            if _ended_early(exc):
                raise
            # Other warnings ("extraneous bytes before marker"...) are common
            # in camera files and harmless: decode again, refusing only
            # truncation.
            steps = _derive(path, info, fail_on="truncated")
    except pyvips.Error as exc:
        if _ended_early(exc):
            raise ImageRejected("The file is truncated: the upload did not finish. Upload it again.") from exc
        if "memory" in str(exc).lower():
            raise _too_much_memory(decode_bytes(info), max_decode_bytes) from exc
        raise ImageRejected("The image is damaged and cannot be decoded.") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # pillow-heif's decoding errors
        raise ImageRejected("The image is damaged and cannot be decoded.") from exc
    derivatives = []
    for name, image, pixels in steps:
        webp = encode_webp(_to_pillow(image, pixels), quality=quality, method=method)
        derivatives.append(Derivative(name, image.width, image.height, webp))
    return info, derivatives
