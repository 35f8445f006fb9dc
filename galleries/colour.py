"""Colour facts the pipeline needs that no bundled library provides.

Many cameras shooting in Adobe RGB embed no ICC profile: they say so only in
EXIF (ColorSpace = Uncalibrated, with the "R03" interoperability index, as
the DCF standard has it). Read as sRGB, such a photo is dull and shifted (up
to about 50 levels per channel). libvips has built-in sRGB, P3 and CMYK
profiles, not Adobe RGB, so :func:`adobe_rgb_profile` builds an ICC v2
matrix/TRC profile from the colour space's published definition: primaries
R (0.64, 0.33), G (0.21, 0.71), B (0.15, 0.06), white D65 and the transfer
gamma 563/256. The colorants are adapted to the D50 connection space with
the Bradford transform, as ICC requires.

Most camera files embed an sRGB profile, and converting sRGB to sRGB is
wasted work (about 100 ms on a 6-megapixel decode): :func:`is_srgb` says
when an embedded profile maps every colour to itself, checked once per
distinct profile.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Sequence

from PIL import ExifTags, Image, ImageCms

Matrix = list[list[float]]

ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
D65 = (0.3127, 0.3290)
D50_XYZ = (0.9642, 1.0, 0.8249)
ADOBE_RGB_GAMMA = 563 / 256  # 2.19921875, exactly representable in ICC's u8Fixed8
BRADFORD: Matrix = [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]

EXIF_COLOR_SPACE_UNCALIBRATED = 0xFFFF
INTEROP_INDEX = 0x0001


def _xyz(chromaticity: tuple[float, float]) -> list[float]:
    x, y = chromaticity
    return [x / y, 1.0, (1 - x - y) / y]


def _mul(a: Matrix, b: Matrix) -> Matrix:
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def _apply(m: Matrix, v: Sequence[float]) -> list[float]:
    return [sum(m[i][k] * v[k] for k in range(3)) for i in range(3)]


def _inverse(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return [
        [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
        [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
        [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
    ]


def rgb_to_xyz(primaries: Sequence[tuple[float, float]], white: tuple[float, float]) -> Matrix:
    """Linear RGB -> XYZ under the space's own white (Y of white = 1)."""
    columns = [_xyz(p) for p in primaries]
    m = [[columns[j][i] for j in range(3)] for i in range(3)]
    scale = _apply(_inverse(m), _xyz(white))
    return [[m[i][j] * scale[j] for j in range(3)] for i in range(3)]


def bradford(source_white: Sequence[float], target_white: Sequence[float]) -> Matrix:
    src, dst = _apply(BRADFORD, source_white), _apply(BRADFORD, target_white)
    cone = [[dst[i] / src[i] if i == j else 0.0 for j in range(3)] for i in range(3)]
    return _mul(_inverse(BRADFORD), _mul(cone, BRADFORD))


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: Sequence[float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)


def _icc(tags: list[tuple[bytes, bytes]]) -> bytes:
    offset = 128 + 4 + 12 * len(tags)
    table, data = [], b""
    for signature, body in tags:
        padded = body + bytes(-len(body) % 4)
        table.append(struct.pack(">4sII", signature, offset + len(data), len(body)))
        data += padded
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + bytes(4)  # preferred CMM: none
        + bytes([2, 0x10, 0, 0])  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8 + 4)  # platform, flags, device maker and model, attributes, intent
        + b"".join(_s15(v) for v in D50_XYZ)
        + bytes(4 + 16 + 28)  # creator, profile id, reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


@functools.cache
def adobe_rgb_profile() -> bytes:
    """An ICC profile compatible with Adobe RGB (1998), built from its
    published primaries, white and gamma."""
    to_xyz = _mul(bradford(_xyz(D65), D50_XYZ), rgb_to_xyz(ADOBE_RGB_PRIMARIES, D65))
    colorants = [[to_xyz[i][j] for i in range(3)] for j in range(3)]  # the columns: R, G, B
    trc = b"curv" + bytes(4) + struct.pack(">IH", 1, round(ADOBE_RGB_GAMMA * 256)) + bytes(2)
    return _icc(
        [
            (b"desc", _text_description("Compatible with Adobe RGB (1998)")),
            (b"cprt", b"text" + bytes(4) + b"Public domain: built from the colour space's definition\0"),
            (b"wtpt", _xyz_tag(_xyz(D65))),
            (b"rXYZ", _xyz_tag(colorants[0])),
            (b"gXYZ", _xyz_tag(colorants[1])),
            (b"bXYZ", _xyz_tag(colorants[2])),
            (b"rTRC", trc),
            (b"gTRC", trc),
            (b"bTRC", trc),
        ]
    )


def says_adobe_rgb(exif: Image.Exif) -> bool:
    """EXIF's way of saying Adobe RGB without a profile (DCF 2.0): colour
    space "uncalibrated" and the interoperability index "R03"."""
    try:
        colour_space = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.ColorSpace)
        interop = exif.get_ifd(ExifTags.IFD.Interop).get(INTEROP_INDEX)
    except (KeyError, ValueError, TypeError, struct.error):
        return False
    if isinstance(interop, bytes):
        interop = interop.decode("ascii", "replace")
    return colour_space == EXIF_COLOR_SPACE_UNCALIBRATED and str(interop).strip("\0 ") == "R03"


# A profile this close to sRGB changes no colour by more than one level
# (lcms' own rounding): skipping it is invisible.
SRGB_TOLERANCE = 1


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def _probe_colours() -> Image.Image:
    """A 17-step RGB grid (every corner and edge of the cube) and the full
    grey ramp (where tone curves differ most)."""
    steps = [min(255, i * 16) for i in range(17)]
    colours = [(r, g, b) for r in steps for g in steps for b in steps] + [(v, v, v) for v in range(256)]
    image = Image.new("RGB", (len(colours), 1))
    image.putdata(colours)
    return image


@functools.lru_cache(maxsize=64)
def is_srgb(profile: bytes) -> bool:
    """Whether an ICC profile is sRGB in effect: converting through it to
    sRGB moves no colour of a dense probe set by more than one level.

    Judged by what the profile does, not by its name: "sRGB IEC61966-2.1"
    from one vendor and "sRGB built-in" from another are the same, while a
    v4 "sRGB ... black scaled" profile is not. Cached by the profile's bytes,
    so a camera's profile is checked once per process (tens of milliseconds)."""
    if len(profile) < 132 or profile[16:20] != b"RGB ":
        return False
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        transform = ImageCms.buildTransform(source, _srgb(), "RGB", "RGB", ImageCms.Intent.PERCEPTUAL)
        converted = ImageCms.applyTransform(_probe_colours(), transform)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return False  # unreadable here: the full transform decides (or fails) as before
    before, after = _probe_colours().tobytes(), converted.tobytes()
    return max(abs(a - b) for a, b in zip(before, after, strict=True)) <= SRGB_TOLERANCE
