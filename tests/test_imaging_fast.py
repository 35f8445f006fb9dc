"""The JPEG fast path of galleries.imaging: shrink-on-load streamed into the
large size, orientation and colour applied at that size, no sRGB-to-sRGB
transform, exact sizes. Each test writes its JPEG to a temporary file."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import pytest
import pyvips
from PIL import ExifTags, Image, ImageCms, ImageOps

from galleries import colour, imaging

MAX_PIXELS = 100_000_000
RED = (255, 0, 0)
QUADRANTS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))


@functools.cache
def vips_profile(name: str) -> bytes:
    """libvips' built-in profiles: "srgb" and "p3" are what cameras and phones embed."""
    pixel = (pyvips.Image.black(1, 1, bands=3) + 128).cast("uchar").copy(interpretation="srgb")
    return pixel.icc_transform(name, input_profile="srgb", embedded=False).get("icc-profile-data")


PILLOW_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg(image: Image.Image, *, orientation: int = 1, icc: bytes | None = None, **options) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=options.pop("quality", 90), exif=exif.tobytes(), icc_profile=icc, **options)
    return out.getvalue()


def derive(tmp_path: Path, data: bytes, name: str = "photo.jpg"):
    path = tmp_path / name
    path.write_bytes(data)
    return imaging.make_derivatives(str(path), filename=name, max_pixels=MAX_PIXELS)


def pixels(derivative: imaging.Derivative) -> Image.Image:
    with Image.open(io.BytesIO(derivative.data)) as image:
        assert "icc_profile" not in image.info  # sRGB, untagged: what browsers assume
        return image.convert("RGB")


def near(pixel, expected, tolerance: int) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


@pytest.fixture
def transforms(monkeypatch) -> list[tuple[int, int]]:
    """The size of every image libvips converts with icc_transform."""
    seen: list[tuple[int, int]] = []
    original = pyvips.Image.icc_transform

    def spy(self, *args, **kwargs):
        seen.append((self.width, self.height))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pyvips.Image, "icc_transform", spy)
    return seen


# --- colour ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["pillow", "libvips"])
def test_an_srgb_profile_skips_the_transform_and_keeps_the_colours(tmp_path, transforms, profile):
    icc = PILLOW_SRGB if profile == "pillow" else vips_profile("srgb")
    transforms.clear()  # making the profile was one
    colour_in = (200, 120, 40)
    _, derivatives = derive(tmp_path, jpeg(Image.new("RGB", (4200, 2800), colour_in), icc=icc))
    assert transforms == []
    for d in derivatives:
        assert near(pixels(d).getpixel((d.width // 2, d.height // 2)), colour_in, 3), d.name


def test_a_p3_jpeg_is_still_converted_at_the_large_size(tmp_path, transforms):
    # sRGB red is (234, 51, 34) in Display P3: tagged P3, it must come out red.
    data = jpeg(Image.new("RGB", (4200, 2800), (234, 51, 34)), icc=vips_profile("p3"))
    transforms.clear()  # making the profile was one
    _, derivatives = derive(tmp_path, data)
    assert transforms == [(2048, 1365)]  # once, on the large size, not the 2100x1400 decode
    for d in derivatives:
        assert near(pixels(d).getpixel((d.width // 2, d.height // 2)), RED, 6), d.name


def test_an_embedded_adobe_rgb_profile_is_converted_like_lcms_does(tmp_path, transforms):
    colour_in = (100, 150, 200)
    source = ImageCms.ImageCmsProfile(io.BytesIO(colour.adobe_rgb_profile()))
    expected = ImageCms.profileToProfile(
        Image.new("RGB", (1, 1), colour_in), source, ImageCms.createProfile("sRGB"), outputMode="RGB"
    ).getpixel((0, 0))
    data = jpeg(Image.new("RGB", (3000, 2000), colour_in), orientation=8, icc=colour.adobe_rgb_profile())
    _, derivatives = derive(tmp_path, data)
    assert len(transforms) == 1
    for d in derivatives:
        assert (d.width, d.height) == {"large": (1365, 2048), "medium": (683, 1024), "thumb": (267, 400)}[d.name]
        assert near(pixels(d).getpixel((d.width // 2, d.height // 2)), expected, 3), d.name


def test_is_srgb_judges_a_profile_by_what_it_does():
    assert colour.is_srgb(PILLOW_SRGB)  # "sRGB built-in"
    assert colour.is_srgb(vips_profile("srgb"))  # "sRGB", another vendor's curves
    assert not colour.is_srgb(vips_profile("p3"))
    assert not colour.is_srgb(colour.adobe_rgb_profile())
    assert not colour.is_srgb(b"not a profile" * 20)
    grey = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert not colour.is_srgb(grey)  # not an RGB profile at all


def test_libvips_runs_one_thread_and_caches_no_operation():
    # One worker process per core (bench/derivatives.py --procs); a cached
    # decode of a reused temporary file name would be another photo.
    assert pyvips.concurrency_get() == max(1, int(os.environ.get("VIPS_CONCURRENCY", "1")))
    assert pyvips.cache_get_max() == 0


# --- sizes and orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "edge", "expected"),
    [
        (6000, 4000, 2048, (2048, 1365)),
        (6000, 4000, 1024, (1024, 683)),  # 682.67
        (6000, 4000, 400, (400, 267)),
        (4201, 2801, 2048, (2048, 1365)),  # 1365.498
        (4096, 2049, 2048, (2048, 1025)),  # 1024.5 rounds half up
        (2049, 4096, 2048, (1025, 2048)),
        (2048, 1000, 2048, (2048, 1000)),  # at the edge: untouched
        (300, 200, 2048, (300, 200)),  # never upscaled
        (100_000, 3, 400, (400, 1)),  # never zero
    ],
)
def test_fit_is_the_long_edge_and_the_short_one_in_proportion(width, height, edge, expected):
    assert imaging.fit(width, height, edge) == expected


@functools.cache
def _flat_jpeg(width: int, height: int, orientation: int) -> bytes:
    return jpeg(Image.new("RGB", (width, height), (90, 140, 200)), orientation=orientation, quality=70)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("size", [(6000, 4000), (4201, 2801), (8256, 5504), (4097, 2731), (5999, 3999)])
def test_shrink_on_load_gives_exactly_the_expected_size_of_each_derivative(tmp_path, monkeypatch, size, orientation):
    loads, turned = [], []
    new_from_file, autorot = pyvips.Image.new_from_file, pyvips.Image.autorot
    monkeypatch.setattr(
        pyvips.Image, "new_from_file", staticmethod(lambda *a, **k: loads.append(k) or new_from_file(*a, **k))
    )
    monkeypatch.setattr(pyvips.Image, "autorot", lambda self: turned.append(self.width * self.height) or autorot(self))

    info, derivatives = derive(tmp_path, _flat_jpeg(*size, orientation))

    displayed = size if orientation in (1, 3) else size[::-1]
    assert (info.width, info.height) == displayed
    for d in derivatives:
        edge = dict(imaging.SIZES)[d.name]
        long_side, short_side = max(displayed), min(displayed)
        expected_short = int(short_side * edge / long_side + 0.5)
        expected = (edge, expected_short) if displayed[0] >= displayed[1] else (expected_short, edge)
        assert (d.width, d.height) == expected, d.name
        assert pixels(d).size == expected, d.name
    assert [k["shrink"] for k in loads] == [imaging._jpeg_shrink(max(size), 2048)]
    assert loads[0]["access"] == "sequential"  # a rotated JPEG streams too
    assert turned == [derivatives[0].width * derivatives[0].height]  # turned at the large size only


def _quadrants(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), QUADRANTS[3])
    image.paste(QUADRANTS[0], (0, 0, width // 2, height // 2))
    image.paste(QUADRANTS[1], (width // 2, 0, width, height // 2))
    image.paste(QUADRANTS[2], (0, height // 2, width // 2, height))
    return image


def _quadrant_colours(image: Image.Image) -> list[tuple[int, ...]]:
    w, h = image.size
    spots = ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4))
    return [tuple(round(v / 85) for v in image.getpixel(xy)) for xy in spots]


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_right_after_shrink_on_load(tmp_path, orientation, progressive):
    source = _quadrants(4400, 2800)  # decoded at 1/2, then 2200 -> 2048
    data = jpeg(source, orientation=orientation, icc=PILLOW_SRGB, progressive=progressive)
    with Image.open(io.BytesIO(data)) as opened:
        expected = _quadrant_colours(ImageOps.exif_transpose(opened).convert("RGB"))
    info, derivatives = derive(tmp_path, data)
    assert info.orientation == orientation
    for d in derivatives:
        image = pixels(d)
        assert _quadrant_colours(image) == expected, d.name
        assert (image.width > image.height) == (orientation < 5), d.name


@pytest.mark.parametrize("orientation", [1, 6])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_real_jpeg_cut_short_is_refused_on_the_fast_path(tmp_path, orientation, progressive):
    noisy = Image.effect_noise((1100, 700), 40).convert("RGB").resize((4400, 2800))
    data = jpeg(noisy, orientation=orientation, progressive=progressive)
    with pytest.raises(imaging.ImageRejected) as rejected:
        derive(tmp_path, data[: len(data) * 2 // 3])
    assert "truncated" in rejected.value.reason
