"""Faces benchmark (issue 13): detection + descriptors per 2048 px photo, HOG
against CNN, detection recall by face size, search latency, and the accuracy
table behind galleries.faces.DEFAULT_THRESHOLD.

    .venv/bin/python bench/faces.py [--photos 6] [--cnn-photos 1] [--search 1000,10000,30000]

Pin it to one core for per-core figures (``taskset -c 0``); it reports wall
and CPU (process) time, and CPU time is the fairer figure on a shared box.

The test photos are honest about their limits: the only full-resolution real
face shipped offline is scikit-image's astronaut, so "photos" are that face
scaled, flipped, rotated and collaged onto textured 2048 px backgrounds;
"different people" are the 100 face crops of scikit-image's bundled LFW
subset (25 px greyscale, upscaled), which are blurrier than any real photo.
dlib is imported only when a measurement runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import os
import statistics
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    # One thread for numpy's BLAS, set before numpy loads it: per-core figures.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

# The astronaut's face box in skimage.data.astronaut() (HOG, 512 px image).
ASTRONAUT_FACE = (179, 83, 267, 171)
PHOTO_SIZE = (2048, 1365)


def astronaut_head(face_px: int, *, flip: bool = False, angle: float = 0.0) -> Image.Image:
    """The astronaut's head cut with context and scaled so the face box is
    about ``face_px`` wide."""
    from skimage import data

    left, top, right, bottom = ASTRONAUT_FACE
    cx, cy, side = (left + right) / 2, (top + bottom) / 2, 2.6 * (right - left)
    head = Image.fromarray(data.astronaut()).crop(
        (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    )
    if flip:
        head = head.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if angle:
        head = head.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(120, 120, 120))
    size = max(8, round(side * face_px / (right - left)))
    return head.resize((size, size), Image.Resampling.LANCZOS)


def background(seed: int, size: tuple[int, int] = PHOTO_SIZE) -> Image.Image:
    """Gradient plus grain: texture for the detector to reject, not a flat field."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, 3).astype(np.float32)
    tilt = rng.uniform(-0.04, 0.04, (2, 3)).astype(np.float32)
    canvas = base + x[..., None] * tilt[0] + y[..., None] * tilt[1]
    canvas += rng.normal(0, 12, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def group_photo(face_sizes: list[int], seed: int = 0, size: tuple[int, int] = PHOTO_SIZE) -> Image.Image:
    """Astronaut heads of the given face sizes in a row, alternately flipped."""
    canvas = background(seed, size)
    x = 40
    for i, face_px in enumerate(face_sizes):
        head = astronaut_head(face_px, flip=bool(i % 2))
        y = max(0, (size[1] - head.height) // 2 + (i % 3 - 1) * size[1] // 6)
        canvas.paste(head, (x, y))
        x += head.width + 20
    return canvas


def webp(img: Image.Image, quality: int = 82) -> bytes:
    out = io.BytesIO()
    img.save(out, format="WEBP", quality=quality, method=4)
    return out.getvalue()


def jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def lfw_faces(count: int) -> list[np.ndarray]:
    """LFW crops (25 px) upscaled to 200 px RGB: different people, blurry."""
    from skimage import data

    crops = data.lfw_subset()[:count]
    return [
        np.asarray(
            Image.fromarray((crop * 255).astype(np.uint8)).resize((200, 200), Image.Resampling.BICUBIC).convert("RGB")
        )
        for crop in crops
    ]


def lfw_descriptors(count: int) -> np.ndarray:
    from galleries import faces

    found = []
    for img in lfw_faces(count):
        detected = faces.detect(img, upsample=1, min_size=20, thumbnails=False)
        if detected:
            found.append(detected[0].descriptor)
    return faces.as_matrix(found)


def variants() -> dict[str, object]:
    """Name -> input for the same-face table; each holds one astronaut face
    (the collage three)."""
    from skimage import data

    base = Image.fromarray(data.astronaut())
    return {
        "scaled x0.6 (300 px)": base.resize((300, 300), Image.Resampling.LANCZOS),
        "scaled x3 (1536 px)": base.resize((1536, 1536), Image.Resampling.LANCZOS),
        "flipped": base.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "rotated +15": base.rotate(15, resample=Image.Resampling.BICUBIC, fillcolor=(120, 120, 120)),
        "rotated -15": base.rotate(-15, resample=Image.Resampling.BICUBIC, fillcolor=(120, 120, 120)),
        "JPEG q=20": jpeg(base, 20),
        "greyscale": base.convert("L"),
        "group collage 2048": webp(group_photo([180, 240, 300], seed=3)),
    }


def accuracy(lfw_count: int) -> None:
    from skimage import data

    from galleries import faces

    reference = faces.detect(data.astronaut(), thumbnails=False)[0].descriptor
    print("\n== accuracy: distance to the astronaut's reference descriptor")
    same = []
    for name, image in variants().items():
        found = faces.detect(image, thumbnails=False, detect_size=2048)
        distances = sorted(float(np.linalg.norm(f.descriptor - reference)) for f in found)
        same.extend(d for d in distances if d < 0.45)
        print(f"  {name:24s} faces={len(found)}  distances={[round(d, 3) for d in distances]}")
    others = lfw_descriptors(lfw_count)
    to_astronaut = faces.pairwise_distances(reference[None, :], others)[0]
    pairs = faces.pairwise_distances(others, others)[np.triu_indices(len(others), 1)]
    print(f"  LFW faces described: {len(others)}/{lfw_count}")
    print(
        f"  astronaut vs LFW: min {to_astronaut.min():.3f}  p5 {np.percentile(to_astronaut, 5):.3f}"
        f"  median {np.median(to_astronaut):.3f}"
    )
    print(
        f"  LFW vs LFW pairs: min {pairs.min():.3f}  p1 {np.percentile(pairs, 1):.3f}"
        f"  p5 {np.percentile(pairs, 5):.3f}  median {np.median(pairs):.3f}"
    )
    for threshold in (0.4, 0.45, 0.5, 0.55, 0.6):
        print(
            f"  threshold {threshold:.2f}: same-face kept {sum(d < threshold for d in same)}/{len(same)}"
            f"  LFW pairs merged {float((pairs < threshold).mean()) * 100:.2f}%"
            f"  astronaut-LFW merged {int((to_astronaut < threshold).sum())}"
        )
    print(f"  chosen DEFAULT_THRESHOLD = {faces.DEFAULT_THRESHOLD}")


def timed(fn, repeats: int = 1):
    wall = time.perf_counter()
    cpu = time.process_time()
    for _ in range(repeats):
        result = fn()
    return result, (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


@contextlib.contextmanager
def descriptors_by(engine: str):
    """Run faces.detect with dlib's ResNet or the NumPy one (the default)."""
    from galleries import faces

    models = faces.load_models()
    if engine == models.engine:
        yield
        return
    if engine != "dlib":
        raise SystemExit(f"the {engine} descriptor engine is not available here (using {models.engine})")

    original = faces.load_models
    by_dlib = functools.partial(faces.describe_with_dlib, models.net)
    swapped = dataclasses.replace(models, describe=by_dlib, engine="dlib")
    faces.load_models = lambda: swapped
    try:
        yield
    finally:
        faces.load_models = original


def face_chip(webp_bytes: bytes) -> np.ndarray:
    """The aligned 150 px chip of the largest face, as the pipeline cuts it."""
    import dlib

    from galleries import faces

    rgb = faces.load_image(webp_bytes)
    models = faces.load_models()
    box = faces.detect(rgb, thumbnails=False)[0].box
    shape = models.shape(rgb, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1))
    return np.asarray(dlib.get_face_chip(rgb, shape, size=faces.CHIP_SIZE, padding=faces.CHIP_PADDING))


def throughput(count: int) -> None:
    from galleries import faces

    rng = np.random.default_rng(1)
    photos = [
        webp(group_photo([int(s) for s in rng.integers(120, 320, int(rng.integers(1, 4)))], seed=i))
        for i in range(count)
    ]
    print(f"\n== throughput: {count} photos 2048x1365 WebP with 1-3 faces (120-320 px), HOG")
    default = {"detect_size": 1024, "upsample": 0}
    configs = [
        ("full 2048, upsample 0", {"detect_size": 2048, "upsample": 0}, "numpy"),
        ("detect 1024, upsample 0, dlib ResNet", default, "dlib"),
        ("detect 1024, upsample 0 (default)", default, "numpy"),
        ("detect 1024, upsample 1", {"detect_size": 1024, "upsample": 1}, "numpy"),
    ]
    for name, kwargs, engine in configs:
        walls, cpus, found = [], [], 0
        with descriptors_by(engine):
            for data in photos:
                result, wall, cpu = timed(lambda data=data, kwargs=kwargs: faces.detect(data, **kwargs))
                walls.append(wall)
                cpus.append(cpu)
                found += len(result)
        cpu_mean = statistics.mean(cpus)
        print(
            f"  {name:34s} wall {statistics.mean(walls) * 1000:7.0f} ms  cpu {cpu_mean * 1000:7.0f} ms/photo"
            f"  -> {1 / cpu_mean:4.2f} photos/s/core  faces {found}"
        )
    rgb = faces.load_image(photos[0])
    for size in (2048, 1024):
        small, _ = faces._downscale(rgb, size)
        models = faces.load_models()
        _, wall, cpu = timed(lambda small=small, models=models: models.hog.run(small, 0, 0.0), repeats=2)
        print(f"  HOG alone at {size}: wall {wall * 1000:.0f} ms  cpu {cpu * 1000:.0f} ms")
    chips = [face_chip(photos[0])]
    for engine in ("dlib", "numpy"):
        with descriptors_by(engine):
            describe = faces.load_models().describe
            _, wall, cpu = timed(lambda describe=describe: describe(chips), repeats=3)
            _, wall4, cpu4 = timed(lambda describe=describe: describe(chips * 4), repeats=2)
        print(
            f"  descriptor alone, {engine:5s}: cpu {cpu * 1000:.0f} ms per face (wall {wall * 1000:.0f});"
            f" batch of 4: cpu {cpu4 * 250:.0f} ms per face"
        )
    with descriptors_by("dlib"):
        reference = faces.load_models().describe(chips)
    difference = np.abs(faces.load_models().describe(chips) - reference).max()
    engine = faces.load_models().engine
    print(f"  numpy vs dlib descriptor, largest difference: {difference:.1e} (engine in use: {engine})")
    _, wall, cpu = timed(lambda: faces.load_image(photos[0]), repeats=3)
    print(f"  WebP decode 2048: wall {wall * 1000:.0f} ms  cpu {cpu * 1000:.0f} ms")


def recall() -> None:
    from galleries import faces

    sizes = [50, 60, 70, 80, 100, 120, 160, 200, 260]
    print(f"\n== recall by face size (px in a 2048 px photo), one face each: {sizes}")
    photos = {s: np.asarray(group_photo([s], seed=s)) for s in sizes}
    for name, kwargs in [
        ("full 2048, up 0", {"detect_size": 2048, "upsample": 0}),
        ("1024, up 0", {"detect_size": 1024, "upsample": 0}),
        ("1024, up 1", {"detect_size": 1024, "upsample": 1}),
    ]:
        hits = []
        for rgb in photos.values():
            found = faces.detect(rgb, thumbnails=False, min_size=20, **kwargs)
            hits.append("Y" if found else ".")
        print(f"  {name:16s} {' '.join(f'{s}:{h}' for s, h in zip(sizes, hits, strict=True))}")


def cnn(count: int, detect_size: int) -> None:
    from galleries import faces

    print(f"\n== CNN (MMOD) vs HOG at detect_size {detect_size}, {count} photo(s)")
    photos = [webp(group_photo([150, 220, 300], seed=10 + i)) for i in range(count)]
    for detector in ("hog", "cnn"):
        walls, cpus, found = [], [], 0
        for data in photos:
            result, wall, cpu = timed(
                lambda data=data, detector=detector: faces.detect(data, detector=detector, detect_size=detect_size)
            )
            walls.append(wall)
            cpus.append(cpu)
            found += len(result)
        print(
            f"  {detector}: wall {statistics.mean(walls) * 1000:7.0f} ms  cpu {statistics.mean(cpus) * 1000:7.0f}"
            f" ms/photo  faces {found}/{3 * count}"
        )


def search(sizes: list[int], queries: int) -> None:
    from galleries import faces

    rng = np.random.default_rng(7)
    print(f"\n== search: {queries} queries, k=10 (random descriptors, norm ~1 like dlib's)")
    for size in sizes:
        matrix = rng.normal(0, 1 / np.sqrt(128), (size, 128)).astype(np.float32)
        index = faces.FaceIndex(matrix, list(range(size)))
        probes = matrix[rng.integers(0, size, queries)] + rng.normal(0, 0.02, (queries, 128)).astype(np.float32)
        for name, fn in [
            ("nearest", lambda q, index=index: index.nearest(q, 10, 0.6)),
            ("photos_of(1)", lambda q, index=index: index.photos_of(q, 0.5)),
            ("photos_of(20)", lambda q, index=index: index.photos_of(np.repeat(q[None], 20, 0), 0.5)),
        ]:
            times = []
            for q in probes:
                start = time.perf_counter()
                fn(q)
                times.append((time.perf_counter() - start) * 1000)
            p50, p95 = np.percentile(times, [50, 95])
            print(f"  {size:6d} faces {name:14s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=6, help="2048 px photos for the throughput run")
    parser.add_argument("--cnn-photos", type=int, default=1, help="photos for the (slow) CNN comparison; 0 skips")
    parser.add_argument("--cnn-size", type=int, default=1024, help="detect_size for the CNN comparison")
    parser.add_argument("--search", default="1000,10000,30000", help="index sizes for the search latency")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--lfw", type=int, default=100, help="LFW faces for the different-people distances")
    parser.add_argument("--skip", default="", help="comma list of: accuracy,throughput,recall,cnn,search")
    args = parser.parse_args()
    skip = set(args.skip.split(","))

    from galleries import faces

    _, wall, _ = timed(faces.load_models)
    print(f"models loaded in {wall:.2f} s; pid {os.getpid()}; figures are noisy on a shared machine")
    if "search" not in skip:
        search([int(s) for s in args.search.split(",")], args.queries)
    if "throughput" not in skip:
        throughput(args.photos)
    if "recall" not in skip:
        recall()
    if "accuracy" not in skip:
        accuracy(args.lfw)
    if "cnn" not in skip and args.cnn_photos:
        cnn(args.cnn_photos, args.cnn_size)


if __name__ == "__main__":
    main()
