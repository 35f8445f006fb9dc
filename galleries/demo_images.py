"""Synthetic photographic images for the demo gallery and the benchmarks:
gradients, texture, grain and shapes, not flat colour, so encoders and
decoders do realistic work. Deterministic per seed."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageCms, ImageDraw, ImageFilter

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def photo(width: int, height: int, *, seed: int) -> Image.Image:
    rng = random.Random(seed)
    # Smooth colour fields: three gradients at angles, one per channel.
    channels = []
    for _ in range(3):
        grad = Image.linear_gradient("L").rotate(rng.uniform(0, 360), resample=Image.Resampling.BICUBIC, expand=False)
        channels.append(grad.resize((width // 8, height // 8)).resize((width, height), Image.Resampling.BILINEAR))
    base = Image.merge("RGB", channels)
    # Shapes with soft edges: the "subjects" of the picture.
    shapes = Image.new("RGB", (width // 2, height // 2))
    draw = ImageDraw.Draw(shapes)
    for _ in range(60):
        x, y = rng.randrange(width // 2), rng.randrange(height // 2)
        r = rng.randrange(20, width // 8)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.polygon([(x + rng.randint(-r, r), y + rng.randint(-r, r)) for _ in range(5)], fill=colour)
    shapes = shapes.filter(ImageFilter.GaussianBlur(3)).resize((width, height), Image.Resampling.BICUBIC)
    image = Image.blend(base, shapes, 0.55)
    # Texture at several scales (foliage, fabric, skin), so detail survives
    # downscaling the way it does in real photographs, then sensor grain.
    for divisor, amount in ((16, 0.25), (4, 0.14), (2, 0.06)):
        size = (width // divisor, height // divisor)
        layer = Image.merge("RGB", [Image.effect_noise(size, 60) for _ in range(3)])
        image = Image.blend(image, layer.resize((width, height), Image.Resampling.BICUBIC), amount)
    grain = Image.effect_noise((width, height), rng.uniform(18, 30)).convert("RGB")
    return Image.blend(image, grain, 0.10)


def jpeg_bytes(
    width: int = 6000, height: int = 4000, *, seed: int = 0, orientation: int = 1, quality: int = 92
) -> bytes:
    image = photo(width, height, seed=seed)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x8825] = {1: "N", 2: (37.0, 46.0, 0.0)}  # GPS, to prove it is stripped
    exif[0x0132] = "2025:06:14 16:20:00"  # DateTime
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, icc_profile=SRGB_ICC, exif=exif.tobytes())
    return out.getvalue()
