"""People in photos (issue 13): the compute core, free of Django models.

Pipeline for one photo (the 2048 px WebP derivative, or a selfie in memory):

1. ``load_image`` decodes a path, bytes (a phone's HEIC too), PIL image or
   array to RGB uint8, applying EXIF orientation, and refuses what cannot
   be a photo (corrupt, blank, tiny, huge) with ``FaceError(reason)``.
2. Detection runs on a copy downscaled to ``detect_size`` (1024 px long edge by
   default): dlib's HOG cost grows with the pixel count, so halving each side
   cuts detection about 4x. The boxes are mapped back to input pixels. The
   price is the smallest face found: HOG with ``upsample=0`` sees faces from
   about 80 px in the detection copy, so about 160 px in a 2048 px photo;
   ``upsample=1`` (or a larger ``detect_size``) gets smaller faces back at
   about 4x the detection time. ``bench/faces.py`` measures both.
3. The 5-point shape predictor runs on the *full-resolution* image inside the
   mapped box; the aligned 150 px chip it gives is what dlib's ResNet
   descriptor was trained on (its alignment uses these 5 points), and it is
   ~4x faster than the 68-point one (1.3 vs 5.8 ms) and 10x smaller on disk.
4. The ResNet turns each chip into a 128-d descriptor (float32, stored as 512
   little-endian bytes). Two faces of one person are within ~0.6 in Euclidean
   distance in dlib's own evaluation.
5. ``Quality`` (size, sharpness, pose) ranks faces, e.g. to choose a person's
   cover face or to ignore background faces; the thumbnail is a 160 px WebP
   square around the face.

Persons are clusters of descriptors (Chinese whispers on a k-nearest-neighbour
graph cut at the threshold); new uploads join existing persons through
``assign_to_persons``; ``FaceIndex`` answers "nearest faces" and "photos of"
with one matrix-vector product.

Threshold: ``DEFAULT_THRESHOLD = 0.5``. Measured with ``bench/faces.py`` on
the only real full-resolution face available offline (scikit-image's
astronaut) and the 100 face crops of scikit-image's bundled LFW subset (25 px,
so upscaled and blurry): the same face scaled, flipped, rotated 15 degrees,
JPEG q=20, greyscale and in a group collage stayed at <= 0.20 from the
original, while different people were at >= 0.53 (1st percentile of LFW pairs;
0.37% of pairs fall under 0.5, 6.6% under 0.6, and the minimum 0.37 may be one
person twice in that subset) and the astronaut was >= 0.61 from all 91 LFW
faces described. dlib's classic 0.6 sits inside the tail of the
different-person distances seen here; 0.5 keeps a wide margin above the
same-face distances while merging fewer strangers, and splitting a person is
cheaper for a photographer than un-merging strangers. With one real identity
this is a sanity bound, not an evaluation: revisit on real galleries.

Licences: dlib (``dlib-bin`` wheel) is under the Boost Software License 1.0.
The model files come from ``face-recognition-models`` (package MIT; the models
are Davis King's, released as CC0/public domain). Of them we load the HOG
detector (built into dlib), the MMOD CNN detector, the 5-point predictor and
the ResNet descriptor. We deliberately do not load the 68-point predictor it
also ships: it was trained on iBUG 300-W, whose licence excludes commercial
use.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import math
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from galleries import face_net, imaging

logger = logging.getLogger(__name__)

DESCRIPTOR_SIZE = 128
DESCRIPTOR_BYTES = DESCRIPTOR_SIZE * 4
DEFAULT_THRESHOLD = 0.5
SPLIT_THRESHOLD = 0.4
DETECT_SIZE = 1024
MIN_FACE_PX = 40
MIN_IMAGE_PX = 32
# The 2048 px derivative is 4 MP; a phone selfie is up to ~50 MP. Beyond that
# decoding alone would be the problem, so refuse before allocating it.
MAX_IMAGE_PIXELS = 60_000_000
THUMB_SIZE = 160
THUMB_MARGIN = 0.4
CHIP_SIZE = 150
CHIP_PADDING = 0.25

ImageInput = Any  # np.ndarray | PIL.Image.Image | bytes | str | os.PathLike


class FaceError(ValueError):
    """An input the face pipeline cannot use; ``reason`` is a stable code
    (``decode``, ``too_small``, ``too_large``, ``blank``, ``no_face``,
    ``several_faces``, ``bad_descriptor``, ``bad_input``) for callers to store
    or map to an API error, ``detail`` the human sentence."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail or reason
        super().__init__(f"{reason}: {self.detail}")


@dataclass(frozen=True, slots=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)


@dataclass(frozen=True, slots=True)
class Quality:
    """``score`` in [0, 1] is the product of the three factors; a ranking aid,
    not a calibrated probability."""

    size_px: int
    sharpness: float  # variance of the Laplacian on the aligned 150 px chip
    yaw: float  # 0 frontal .. 1 profile, from nose-to-eye asymmetry
    roll_deg: float  # eye-line angle; the aligned chip undoes roll anyway
    score: float


@dataclass(frozen=True, slots=True, eq=False)
class Face:
    box: Box  # in the input image's pixels
    score: float  # HOG SVM margin or CNN confidence (not comparable across detectors)
    detector: str
    landmarks: np.ndarray  # (5, 2) float32, input pixels
    quality: Quality
    descriptor: np.ndarray  # (128,) float32
    thumbnail: bytes  # THUMB_SIZE px square WebP


@dataclass(frozen=True, slots=True)
class Match:
    id: Hashable
    distance: float


@dataclass(frozen=True, slots=True)
class Models:
    hog: Any
    cnn: Any
    shape: Any
    net: Any  # dlib's own ResNet, kept as the reference and the fallback
    describe: Callable[[Sequence[np.ndarray]], np.ndarray]  # chips -> (N, 128) float32
    engine: str  # "numpy" or "dlib": who computes the descriptors


# -- models -------------------------------------------------------------------


def models_dir() -> Path:
    """The face_recognition_models data folder, found without importing the
    package: its ``__init__`` imports setuptools' ``pkg_resources``, which new
    setuptools no longer ships."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceError("models_missing", "face-recognition-models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@functools.cache
def load_models() -> Models:
    """Once per process (~1-4 s, ~60 MB): workers should call it at start."""
    import dlib

    folder = models_dir()
    resnet = folder / "dlib_face_recognition_resnet_model_v1.dat"
    net = dlib.face_recognition_model_v1(str(resnet))
    engine, describe = _descriptor_engine(resnet, net)
    return Models(
        hog=dlib.get_frontal_face_detector(),
        cnn=dlib.cnn_face_detection_model_v1(str(folder / "mmod_human_face_detector.dat")),
        shape=dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        net=net,
        describe=describe,
        engine=engine,
    )


def describe_with_dlib(net: Any, chips: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 128) float32 descriptors by dlib's own ResNet (``Models.net``)."""
    if not len(chips):
        return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
    return np.asarray([np.asarray(v) for v in net.compute_face_descriptor(list(chips))], dtype=np.float32)


def _descriptor_engine(path: Path, net: Any) -> tuple[str, Callable[[Sequence[np.ndarray]], np.ndarray]]:
    """The NumPy ResNet (galleries/face_net.py, ~5x faster than this dlib
    wheel) when it reproduces dlib's descriptor on a reference chip, else
    dlib's own. Checked once per process (~150 ms) so a new model file or a
    dlib change cannot silently move every stored descriptor."""

    by_dlib = functools.partial(describe_with_dlib, net)
    if not _setting("FACES_NUMPY_DESCRIPTORS", True):
        return "dlib", by_dlib
    _one_blas_thread()
    try:
        resnet = face_net.load(str(path))
        # Noise drives every filter; a real face adds nothing to the check.
        chip = np.random.default_rng(13).integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
        difference = float(np.abs(resnet.describe([chip])[0] - by_dlib([chip])[0]).max())
    except Exception as exc:  # noqa: BLE001 - any failure of the fast path means dlib's, never no faces
        logger.warning("faces: NumPy descriptors unavailable (%r); using dlib's", exc)
        return "dlib", by_dlib
    if difference > face_net.TOLERANCE:
        logger.warning("faces: NumPy descriptors differ from dlib's by %.2g; using dlib's", difference)
        return "dlib", by_dlib

    return "numpy", resnet.describe


@functools.cache
def _one_blas_thread() -> None:
    """One OpenBLAS thread for the whole process, set once when the models
    load: workers and web processes run one per core (as libvips runs one
    thread), so extra BLAS threads only contend. Process-wide on purpose: a
    limit entered and left around each call races between a web process's
    threads (one thread's exit restores the count another is running under),
    and OPENBLAS_NUM_THREADS only works if set before numpy is imported."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _setting(name: str, default: Any) -> Any:
    try:
        from django.conf import settings

        return getattr(settings, name, default)
    except Exception:  # Django absent or not configured: the module stands alone.
        return default


# -- input --------------------------------------------------------------------


def load_image(image: ImageInput, *, max_pixels: int | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3), C-contiguous, or FaceError."""
    max_pixels = max_pixels or _setting("FACES_MAX_PIXELS", MAX_IMAGE_PIXELS)
    if isinstance(image, np.ndarray):
        array = _array_to_rgb(image, max_pixels)
    elif isinstance(image, Image.Image):
        array = _pil_to_rgb(image, max_pixels)
    elif isinstance(image, bytes | bytearray | memoryview):
        array = _decode(io.BytesIO(bytes(image)), max_pixels)
    elif isinstance(image, str | os.PathLike):
        try:
            with open(image, "rb") as handle:
                array = _decode(handle, max_pixels)
        except OSError as exc:
            raise FaceError("decode", f"cannot read {os.fspath(image)!r}: {exc}") from exc
    else:
        raise FaceError("bad_input", f"unsupported image type {type(image).__name__}")
    height, width = array.shape[:2]
    if min(height, width) < MIN_IMAGE_PX:
        raise FaceError("too_small", f"{width}x{height} px is below {MIN_IMAGE_PX} px")
    # A flat frame (lens cap, failed render) has no face and often means a
    # broken upstream derivative: say so rather than "no face".
    if int(array[::8, ::8].max()) - int(array[::8, ::8].min()) < 8:
        raise FaceError("blank", "the image is a flat colour")
    return array


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise FaceError("too_large", f"{width}x{height} px is above {max_pixels} pixels")


def _decode(handle: Any, max_pixels: int) -> np.ndarray:
    try:
        head = handle.read(16)
        handle.seek(0)
        if imaging.sniff_format(head) == "HEIF":
            return _decode_heif(handle, max_pixels)
        with Image.open(handle) as img:
            # Checked on the header, before the pixels are allocated.
            _check_size(img.width, img.height, max_pixels)
            img.load()
            return _pil_to_rgb(ImageOps.exif_transpose(img), max_pixels)
    except FaceError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise FaceError("decode", f"not a readable image: {exc}") from exc


def _decode_heif(handle: Any, max_pixels: int) -> np.ndarray:
    """A phone's HEIC (an iPhone's camera default), in memory, by pillow-heif
    as uploads are (Pillow alone cannot open it). libheif applies the file's
    rotation itself: its EXIF orientation is not applied a second time."""
    if imaging.pillow_heif is None:  # pragma: no cover - pinned in requirements/base.txt
        raise FaceError("decode", "HEIC images cannot be read here: send a JPEG")
    heif = imaging.pillow_heif.open_heif(handle, convert_hdr_to_8bit=True)
    _check_size(heif.size[0], heif.size[1], max_pixels)  # from the header, before the pixels
    return _pil_to_rgb(heif.to_pillow(), max_pixels)


def _pil_to_rgb(img: Image.Image, max_pixels: int) -> np.ndarray:
    _check_size(img.width, img.height, max_pixels)
    if img.mode != "RGB":
        # Greyscale (black-and-white photography) is a real photo: the
        # detector and the descriptor net both take it as three equal channels.
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy(order="C")


def _array_to_rgb(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise FaceError("bad_input", f"array of shape {array.shape} is not an image")
    _check_size(array.shape[1], array.shape[0], max_pixels)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


# -- detection ----------------------------------------------------------------


def detect(
    image: ImageInput,
    *,
    detector: str = "hog",
    upsample: int = 0,
    min_size: int = MIN_FACE_PX,
    detect_size: int | None = None,
    min_score: float = 0.0,
    thumbnails: bool = True,
) -> list[Face]:
    """Every face in ``image``, largest first; see the module docstring."""
    if detector not in ("hog", "cnn"):
        raise FaceError("bad_input", f"unknown detector {detector!r}")
    rgb = load_image(image)
    models = load_models()
    detect_size = detect_size or _setting("FACES_DETECT_SIZE", DETECT_SIZE)
    small, scale = _downscale(rgb, detect_size)
    boxes = _run_detector(models, small, detector, upsample, min_score)
    boxes = [(_scale_box(box, scale, rgb.shape), score) for box, score in boxes]
    boxes = [(box, score) for box, score in boxes if min(box.width, box.height) >= min_size]
    if not boxes:
        return []
    boxes.sort(key=lambda item: item[0].area, reverse=True)
    return _describe(rgb, models, boxes, detector, thumbnails)


def _downscale(rgb: np.ndarray, detect_size: int) -> tuple[np.ndarray, float]:
    height, width = rgb.shape[:2]
    scale = detect_size / max(height, width)
    if scale >= 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # BILINEAR with reducing_gap: box-reduce first then filter, ~3x faster
    # than LANCZOS and plenty for a detector looking at 80 px windows.
    small = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(small), scale


def _run_detector(models: Models, small: np.ndarray, detector: str, upsample: int, min_score: float):
    import dlib

    if detector == "hog":
        rects, scores, _ = models.hog.run(small, upsample, min_score)
        return [(rect, float(score)) for rect, score in zip(rects, scores, strict=True)]
    found = [(d.rect, float(d.confidence)) for d in models.cnn(small, upsample)]
    return [(dlib.rectangle(r.left(), r.top(), r.right(), r.bottom()), s) for r, s in found if s >= min_score]


def _scale_box(rect: Any, scale: float, shape: tuple[int, ...]) -> Box:
    height, width = shape[:2]
    return Box(
        left=max(0, round(rect.left() / scale)),
        top=max(0, round(rect.top() / scale)),
        right=min(width, round((rect.right() + 1) / scale)),
        bottom=min(height, round((rect.bottom() + 1) / scale)),
    )


def _describe(rgb: np.ndarray, models: Models, boxes, detector: str, thumbnails: bool) -> list[Face]:
    import dlib

    shapes = dlib.full_object_detections()
    for box, _ in boxes:
        shapes.append(models.shape(rgb, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)))
    # Chips are cut from the full-resolution photo: the descriptor sees the
    # detail the downscaled detection copy threw away.
    chips = dlib.get_face_chips(rgb, shapes, size=CHIP_SIZE, padding=CHIP_PADDING)
    descriptors = models.describe(chips)
    faces = []
    for (box, score), shape, chip, vector in zip(boxes, shapes, chips, descriptors, strict=True):
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        faces.append(
            Face(
                box=box,
                score=score,
                detector=detector,
                landmarks=landmarks,
                quality=quality(box, landmarks, np.asarray(chip)),
                descriptor=np.asarray(vector, dtype=np.float32),
                thumbnail=thumbnail(rgb, box) if thumbnails else b"",
            )
        )
    return faces


def quality(box: Box, landmarks: np.ndarray, chip: np.ndarray) -> Quality:
    size_px = min(box.width, box.height)
    grey = chip.astype(np.float32).mean(axis=2)
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4.0 * grey[1:-1, 1:-1]
    sharpness = float(laplacian.var())
    # dlib's 5 points: 0-1 one eye's corners, 2-3 the other's, 4 under the nose.
    eye_a = landmarks[0:2].mean(axis=0)
    eye_b = landmarks[2:4].mean(axis=0)
    nose = landmarks[4]
    dist_a = float(np.linalg.norm(nose - eye_a))
    dist_b = float(np.linalg.norm(nose - eye_b))
    yaw = abs(dist_a - dist_b) / max(dist_a + dist_b, 1e-6)
    dx, dy = eye_a - eye_b
    roll = math.degrees(math.atan2(float(dy), float(dx)))
    roll = (roll + 90.0) % 180.0 - 90.0
    # Factors saturate where the descriptor stops improving: ~80 px faces,
    # Laplacian variance ~100 on the 150 px chip (a sharp studio face is
    # several hundred, a defocused one tens), near-frontal pose.
    size_factor = min(1.0, size_px / 80.0)
    sharp_factor = min(1.0, sharpness / 100.0)
    pose_factor = max(0.0, 1.0 - 2.0 * yaw)
    score = round(size_factor * sharp_factor * pose_factor, 4)
    return Quality(
        size_px=size_px, sharpness=round(sharpness, 2), yaw=round(yaw, 4), roll_deg=round(roll, 2), score=score
    )


def thumbnail(rgb: np.ndarray, box: Box, *, size: int = THUMB_SIZE, margin: float = THUMB_MARGIN) -> bytes:
    """A ``size`` px square WebP around ``box``; outside the photo is black."""
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    cx = (box.left + box.right) / 2.0
    cy = (box.top + box.bottom) / 2.0
    crop = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    img = Image.fromarray(rgb).crop(crop).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    img.save(out, format="WEBP", quality=80, method=4)
    return out.getvalue()


def selfie_descriptors(image_bytes: bytes, *, dominance: float = 2.0) -> np.ndarray:
    """The descriptor of the one person in a "find me" selfie, in memory only.

    Policy: no face -> FaceError("no_face"). Several faces -> the largest wins
    if its box is at least ``dominance`` times the area of the next (a friend
    or passer-by behind the subject); otherwise FaceError("several_faces"),
    because guessing would search for someone else's photos.
    """
    # upsample=1 on a 1024 px copy: selfies vary (group shots at arm's
    # length, small faces), and one image can afford ~4x the detection time.
    faces = detect(image_bytes, upsample=1, thumbnails=False)
    if not faces:
        raise FaceError("no_face", "no face found; use a well-lit photo facing the camera")
    if len(faces) > 1 and faces[0].box.area < dominance * faces[1].box.area:
        raise FaceError("several_faces", f"{len(faces)} faces of similar size; use a photo of only you")
    return faces[0].descriptor


# -- storage ------------------------------------------------------------------


def descriptor_bytes(descriptor: np.ndarray) -> bytes:
    vector = np.asarray(descriptor, dtype="<f4").reshape(-1)
    if vector.shape != (DESCRIPTOR_SIZE,):
        raise FaceError("bad_descriptor", f"expected {DESCRIPTOR_SIZE} values, got {vector.size}")
    return vector.tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    if len(data) != DESCRIPTOR_BYTES:
        raise FaceError("bad_descriptor", f"expected {DESCRIPTOR_BYTES} bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def as_matrix(descriptors: np.ndarray | Sequence[np.ndarray] | Iterable[bytes]) -> np.ndarray:
    """(N, 128) float32 C-contiguous from arrays, a matrix or stored bytes."""
    if isinstance(descriptors, np.ndarray):
        matrix = descriptors.reshape(-1, DESCRIPTOR_SIZE) if descriptors.size else descriptors
    else:
        rows = [from_bytes(d) if isinstance(d, bytes | bytearray | memoryview) else d for d in descriptors]
        matrix = np.stack(rows) if rows else np.empty((0, DESCRIPTOR_SIZE), np.float32)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if matrix.size == 0:
        return matrix.reshape(0, DESCRIPTOR_SIZE)
    return matrix


# -- distances and clustering -------------------------------------------------


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean (len(a), len(b)) float32 via ||a||^2 - 2ab + ||b||^2."""
    a = as_matrix(a)
    b = as_matrix(b)
    squared = np.einsum("ij,ij->i", a, a)[:, None] - 2.0 * (a @ b.T) + np.einsum("ij,ij->i", b, b)[None, :]
    np.maximum(squared, 0.0, out=squared)  # rounding can dip below zero
    return np.sqrt(squared, out=squared)


def cluster(
    descriptors: np.ndarray | Sequence[np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    max_neighbours: int = 50,
    block: int = 2048,
) -> np.ndarray:
    """Person labels (int, 0 = largest cluster) by Chinese whispers.

    The graph joins each face to at most ``max_neighbours`` nearest faces
    closer than ``threshold``: the full graph of a wedding with 3,000 faces
    of the bride would be 4.5 M edges as Python tuples, and the nearest 50
    already carry the cluster. Unlike single linkage, one blurry face close to
    two people does not chain them together.
    """
    import dlib

    matrix = as_matrix(descriptors)
    count = len(matrix)
    if count == 0:
        return np.empty(0, dtype=np.int64)
    edges: list[tuple[int, int]] = [(i, i) for i in range(count)]  # every face is a vertex
    k = min(max_neighbours + 1, count)
    for start in range(0, count, block):
        distances = pairwise_distances(matrix[start : start + block], matrix)
        nearest = (
            np.argpartition(distances, k - 1, axis=1)[:, :k]
            if k < count
            else np.tile(np.arange(count), (len(distances), 1))
        )
        for row, neighbours in enumerate(nearest):
            i = start + row
            close = neighbours[(distances[row, neighbours] < threshold) & (neighbours > i)]
            edges.extend((i, int(j)) for j in close)
    labels = np.asarray(dlib.chinese_whispers(edges), dtype=np.int64)
    # Renumber by size so label 0 is the most photographed person: stable
    # across runs regardless of dlib's internal numbering.
    unique, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.lexsort((unique, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse]


def centroid(descriptors: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    return as_matrix(descriptors).mean(axis=0, dtype=np.float64).astype(np.float32)


def merge_centroids(a: np.ndarray, count_a: int, b: np.ndarray, count_b: int) -> tuple[np.ndarray, int]:
    """The centroid of two merged persons without re-reading their faces."""
    total = count_a + count_b
    if total == 0:
        raise FaceError("bad_input", "merging two empty persons")
    merged = (np.asarray(a, np.float64) * count_a + np.asarray(b, np.float64) * count_b) / total
    return merged.astype(np.float32), total


def split_person(descriptors: np.ndarray | Sequence[np.ndarray], threshold: float = SPLIT_THRESHOLD) -> np.ndarray:
    """Labels re-clustering one person's faces at a tighter threshold, for a
    person who turns out to be two (siblings, a mis-merge)."""
    return cluster(descriptors, threshold)


def assign_to_persons(
    new_descriptors: np.ndarray | Sequence[np.ndarray],
    persons: Mapping[Hashable, np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Match | None]:
    """For each new face, the closest person within ``threshold`` or None.

    ``persons`` maps a person key to its centroid (128,) or its members
    (M, 128); with members the distance is to the nearest member, which
    follows a person across ages and lighting better than one centroid.
    """
    queries = as_matrix(new_descriptors)
    if not len(queries):
        return []
    if not persons:
        return [None] * len(queries)
    keys = list(persons)
    blocks = [as_matrix(persons[key]) for key in keys]
    members = np.concatenate(blocks)
    starts = np.cumsum([0] + [len(b) for b in blocks[:-1]])
    if any(len(b) == 0 for b in blocks):
        raise FaceError("bad_input", "a person without descriptors")
    distances = pairwise_distances(queries, members)
    per_person = np.minimum.reduceat(distances, starts, axis=1)  # (Q, persons)
    best = per_person.argmin(axis=1)
    best_distance = per_person[np.arange(len(queries)), best]
    return [Match(keys[int(b)], float(d)) if d < threshold else None for b, d in zip(best, best_distance, strict=True)]


# -- search -------------------------------------------------------------------


class FaceIndex:
    """An in-memory (N, 128) float32 matrix with one id per row.

    ``ids`` are whatever the caller searches for (face ids, or photo ids when
    only photos matter: ``photos_of`` keeps each id once, at its closest).
    Build once per gallery/studio and keep it while the descriptors do not
    change; 30,000 faces are 15 MB.
    """

    def __init__(self, descriptors: np.ndarray | Sequence[np.ndarray], ids: Sequence[Hashable]) -> None:
        self.matrix = as_matrix(descriptors)
        if len(ids) != len(self.matrix):
            raise FaceError("bad_input", f"{len(ids)} ids for {len(self.matrix)} descriptors")
        self.ids = list(ids)
        self.norms = np.einsum("ij,ij->i", self.matrix, self.matrix)
        # One buffer reused by every single-vector query: no allocation in
        # the hot path (queries are served from one thread per index).

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[Hashable, bytes]]) -> FaceIndex:
        rows = list(rows)
        return cls(as_matrix([data for _, data in rows]), [key for key, _ in rows])

    def __len__(self) -> int:
        return len(self.ids)

    def _squared(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=np.float32).reshape(DESCRIPTOR_SIZE)
        # A fresh array per query (120 KB at 30k faces): an index is shared
        # by a web process's threads, so no buffer may be shared with it.
        out = self.matrix @ query
        out *= -2.0
        out += self.norms
        out += float(query @ query)
        np.maximum(out, 0.0, out=out)
        return out

    def nearest(self, query: np.ndarray, k: int = 10, max_distance: float | None = None) -> list[Match]:
        if not len(self.ids) or k <= 0:
            return []
        squared = self._squared(query)
        k = min(k, len(squared))
        top = np.argpartition(squared, k - 1)[:k] if k < len(squared) else np.arange(len(squared))
        top = top[np.argsort(squared[top], kind="stable")]
        limit = math.inf if max_distance is None else max_distance * max_distance
        return [Match(self.ids[i], math.sqrt(float(squared[i]))) for i in top if squared[i] < limit]

    def photos_of(self, person: np.ndarray | Sequence[np.ndarray], threshold: float = DEFAULT_THRESHOLD) -> list[Match]:
        """Ids within ``threshold`` of any of the person's descriptors (or of
        its centroid, if one vector is given), closest first, each id once."""
        queries = as_matrix(person)
        if not len(self.ids) or not len(queries):
            return []
        best = np.full(len(self.ids), np.inf, dtype=np.float32)
        for start in range(0, len(queries), 256):  # bounds the (Q, N) block to 256 x N
            block = pairwise_distances(queries[start : start + 256], self.matrix)
            np.minimum(best, block.min(axis=0), out=best)
        hits = np.flatnonzero(best < threshold)
        hits = hits[np.argsort(best[hits], kind="stable")]
        seen: set[Hashable] = set()
        matches = []
        for i in hits:
            key = self.ids[i]
            if key not in seen:
                seen.add(key)
                matches.append(Match(key, float(best[i])))
        return matches
