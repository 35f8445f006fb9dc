"""Derivative pipeline benchmark: ms per image and images/s per core.

    .venv/bin/python bench/derivatives.py [--images 8] [--repeats 3] [--method 4]

Generates 24-megapixel photographic JPEGs (gradients, texture, grain and
shapes; half rotated by EXIF; plus a 45 MP pair) once into var/bench/, pins
itself to one core with libvips single-threaded, and prints, at equal encoder
settings, four ways of making the large/medium/thumb WebPs:

- naive:  Pillow, full decode, ``thumbnail()`` once per size
- ours:   galleries.imaging.make_derivatives (shrink-on-load, cascade)
- pyvips: libvips' own ``thumbnail`` + ``thumbnail_image`` cascade + webpsave
- floor:  our shrink-on-load decode plus the three encodes alone (no resize)

then the targets (>= 1.7x naive, <= 1.25x floor, bytes <= naive + 2%) and an
encoder-effort sweep (time against bytes) behind DERIVATIVE_WEBP_METHOD.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ["VIPS_CONCURRENCY"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyvips  # noqa: E402
from PIL import Image, ImageChops, ImageOps, ImageStat  # noqa: E402

from galleries import imaging  # noqa: E402
from galleries.demo_images import jpeg_bytes  # noqa: E402

CACHE = Path(__file__).resolve().parent.parent / "var" / "bench"
QUALITY = 82
MAX_PIXELS = 100_000_000

Way = Callable[[str, int], list[bytes]]  # (path, method) -> WebP per size


def images(count: int) -> list[Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    specs = []
    for i in range(count):
        big = i >= count - max(1, count // 4)  # the last quarter: 45 MP
        size = (8256, 5504) if big else (6000, 4000)
        specs.append((i, size, 6 if i % 2 else 1))
    paths = []
    for i, (w, h), orientation in specs:
        path = CACHE / f"photo-{w}x{h}-{i}-o{orientation}.jpg"
        if not path.exists():
            print(f"  generating {path.name} ...", flush=True)
            path.write_bytes(jpeg_bytes(w, h, seed=i, orientation=orientation))
        paths.append(path)
    return paths


def naive(path: str, method: int) -> list[bytes]:
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)  # decodes the full frame
        image = image.convert("RGB")
    sizes = []
    for _, edge in imaging.SIZES:
        copy = image.copy()
        copy.thumbnail((edge, edge))
        sizes.append(imaging.encode_webp(copy, quality=QUALITY, method=method))
    return sizes


def ours(path: str, method: int) -> list[bytes]:
    _, derivatives = imaging.make_derivatives(
        path, filename=Path(path).name, max_pixels=MAX_PIXELS, quality=QUALITY, method=method
    )
    return [d.data for d in derivatives]


def vips_reference(path: str, method: int) -> list[bytes]:
    image = pyvips.Image.thumbnail(path, imaging.SIZES[0][1], size="down").copy_memory()
    sizes = []
    for _, edge in imaging.SIZES:
        if max(image.width, image.height) > edge:
            image = image.thumbnail_image(edge, size="down").copy_memory()
        sizes.append(image.webpsave_buffer(Q=QUALITY, effort=method, strip=True))
    return sizes


_floor_inputs: dict[str, list[Image.Image]] = {}


def floor(path: str, method: int) -> list[bytes]:
    """Decode with shrink-on-load, then encode three pre-resized images: the
    resize is prepared outside the timed region by prepare_floor()."""
    info = imaging.probe(path, filename=Path(path).name, max_pixels=MAX_PIXELS)
    imaging.decode(path, info, imaging.SIZES[0][1])
    return [imaging.encode_webp(img, quality=QUALITY, method=method) for img in _floor_inputs[path]]


def prepare_floor(path: str) -> None:
    info = imaging.probe(path, filename=Path(path).name, max_pixels=MAX_PIXELS)
    steps = imaging.resize_cascade(imaging.decode(path, info, imaging.SIZES[0][1]))
    _floor_inputs[path] = [imaging._to_pillow(image) for _, image in steps]


_references: dict[str, Image.Image] = {}


def reference_medium(path: str, size: tuple[int, int]) -> Image.Image:
    """Exact reference: full decode, Lanczos straight to the medium size, no encoding."""
    if path not in _references:
        with Image.open(path) as opened:
            full = ImageOps.exif_transpose(opened).convert("RGB")
        _references[path] = full.resize(size, Image.Resampling.LANCZOS)
    return _references[path]


def psnr(webp: bytes, path: str) -> float:
    with Image.open(io.BytesIO(webp)) as decoded:
        image = decoded.convert("RGB")
    reference = reference_medium(path, image.size)
    rms = ImageStat.Stat(ImageChops.difference(image, reference)).rms
    mse = sum(r * r for r in rms) / len(rms)
    return 99.0 if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))


def measure(way: Way, paths: list[Path], repeats: int, method: int) -> tuple[float, list[float], float]:
    """Median ms per image over repeats, averaged over images; mean KB per
    size; mean PSNR (dB) of the medium size against the exact reference."""
    per_image, sizes, quality = [], [], []
    for path in paths:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = way(str(path), method)
            runs.append((time.perf_counter() - start) * 1000)
        per_image.append(statistics.median(runs))
        sizes.append([len(data) for data in out])
        quality.append(psnr(out[1], str(path)))
    kb = [sum(s[i] for s in sizes) / len(sizes) / 1024 for i in range(len(imaging.SIZES))]
    return statistics.mean(per_image), kb, statistics.mean(quality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", type=int, default=4, help="WebP method (effort) for the comparison")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    paths = images(args.images)
    print(f"{len(paths)} images, {args.repeats} repeats, one core, WebP q{QUALITY} method {args.method}")
    print(
        f"pyvips {pyvips.__version__} / libvips {pyvips.version(0)}.{pyvips.version(1)}, Pillow {Image.__version__}\n"
    )
    for path in paths:
        prepare_floor(str(path))
        ours(str(path), args.method)  # warm caches and libvips' operation cache

    results = {}
    header = (
        f"{'way':8} {'ms/image':>9} {'img/s/core':>10} {'PSNR dB':>8}   KB {' / '.join(n for n, _ in imaging.SIZES)}"
    )
    print(header)
    print("-" * len(header))
    for name, way in (("naive", naive), ("ours", ours), ("pyvips", vips_reference), ("floor", floor)):
        ms, kb, db = measure(way, paths, args.repeats, args.method)
        results[name] = (ms, kb)
        print(f"{name:8} {ms:9.0f} {1000 / ms:10.2f} {db:8.2f}   {' / '.join(f'{k:.0f}' for k in kb)}")

    ours_ms, ours_kb = results["ours"]
    naive_ms, naive_kb = results["naive"]
    speedup = naive_ms / ours_ms
    to_floor = ours_ms / results["floor"][0]
    byte_ratio = sum(ours_kb) / sum(naive_kb)
    print()
    print(f"speed-up over naive   {speedup:5.2f}x   (target >= 1.70)  {'ok' if speedup >= 1.7 else 'MISSED'}")
    print(f"ours / floor          {to_floor:5.2f}x   (target <= 1.25)  {'ok' if to_floor <= 1.25 else 'MISSED'}")
    print(f"bytes ours / naive    {byte_ratio:5.3f}    (target <= 1.02)  {'ok' if byte_ratio <= 1.02 else 'MISSED'}")
    print(f"ours / pyvips         {ours_ms / results['pyvips'][0]:5.2f}x")

    if not args.no_sweep:
        print("\nencoder effort (DERIVATIVE_WEBP_METHOD), our pipeline, one repeat:")
        print(f"{'method':>6} {'ms/image':>9} {'img/s/core':>10} {'PSNR dB':>8} {'KB total':>9} {'bytes vs m4':>11}")
        sweep = {method: measure(ours, paths, 1, method) for method in (0, 2, 4, 6)}
        base = sum(sweep[4][1])
        for method, (ms, kb, db) in sweep.items():
            print(f"{method:6} {ms:9.0f} {1000 / ms:10.2f} {db:8.2f} {sum(kb):9.0f} {sum(kb) / base:10.1%}")


if __name__ == "__main__":
    main()
