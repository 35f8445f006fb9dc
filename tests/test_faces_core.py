"""galleries.faces, the compute core of "people in photos" (issue 13).

Real faces offline are scarce: scikit-image's astronaut is the one real
full-resolution face, its bundled LFW subset (25 px crops) supplies different
people. Images stay small where speed is not the point; one descriptor costs
~0.1-0.3 s on this dlib build, so the reference is computed once per module.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("dlib", reason="dlib (dlib-bin) is not installed")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev requirement) is not installed")

from bench.faces import astronaut_head, group_photo, jpeg, lfw_descriptors, webp  # noqa: E402
from galleries import faces  # noqa: E402

THRESHOLD = faces.DEFAULT_THRESHOLD


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def reference(astronaut) -> faces.Face:
    found = faces.detect(astronaut)
    assert len(found) == 1
    return found[0]


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def only_face(image, **kwargs) -> faces.Face:
    found = faces.detect(image, thumbnails=False, **kwargs)
    assert len(found) == 1, [f.box for f in found]
    return found[0]


def test_reference_face_has_box_descriptor_quality_and_thumbnail(reference):
    box = reference.box
    assert (170 <= box.left <= 190) and (75 <= box.top <= 95) and 80 <= box.width <= 100
    assert reference.descriptor.dtype == np.float32 and reference.descriptor.shape == (128,)
    assert reference.landmarks.shape == (5, 2)
    assert reference.score > 0 and reference.detector == "hog"
    assert 0.5 < reference.quality.score <= 1.0 and reference.quality.yaw < 0.2
    thumb = Image.open(io.BytesIO(reference.thumbnail))
    assert thumb.format == "WEBP" and thumb.size == (faces.THUMB_SIZE, faces.THUMB_SIZE)


@pytest.mark.parametrize(
    "variant",
    ["flipped", "rotated 15", "rotated -15", "jpeg q20", "scaled x0.6", "greyscale"],
)
def test_same_face_under_edits_matches(astronaut, reference, variant):
    fill = (120, 120, 120)
    image = {
        "flipped": lambda: astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "rotated 15": lambda: astronaut.rotate(15, resample=Image.Resampling.BICUBIC, fillcolor=fill),
        "rotated -15": lambda: astronaut.rotate(-15, resample=Image.Resampling.BICUBIC, fillcolor=fill),
        "jpeg q20": lambda: jpeg(astronaut, 20),
        "scaled x0.6": lambda: astronaut.resize((300, 300), Image.Resampling.LANCZOS),
        "greyscale": lambda: astronaut.convert("L"),
    }[variant]()
    found = faces.detect(image, thumbnails=False, upsample=1 if variant == "scaled x0.6" else 0)
    assert min(distance(f.descriptor, reference.descriptor) for f in found) < THRESHOLD


def test_group_collage_in_a_2048_photo_maps_boxes_back_and_matches(reference):
    photo = group_photo([130, 170], seed=5, size=(1400, 800))
    found = faces.detect(webp(photo))  # default: detect on a 1024 px copy
    assert len(found) == 2
    assert found[0].box.width > found[1].box.width  # largest first
    for face in found:
        assert distance(face.descriptor, reference.descriptor) < THRESHOLD
        # Boxes are in the 2048 px photo's pixels, not the detection copy's.
        assert face.box.right <= photo.width and face.box.width > 100


def test_different_people_do_not_match(reference):
    others = lfw_descriptors(5)
    assert len(others) >= 4
    to_astronaut = faces.pairwise_distances(reference.descriptor[None, :], others)[0]
    assert to_astronaut.min() > THRESHOLD


def test_descriptor_bytes_round_trip(reference):
    data = faces.descriptor_bytes(reference.descriptor)
    assert len(data) == 512
    assert data[:4] == np.float32(reference.descriptor[0]).astype("<f4").tobytes()
    np.testing.assert_array_equal(faces.from_bytes(data), reference.descriptor)
    with pytest.raises(faces.FaceError) as info:
        faces.from_bytes(data[:-1])
    assert info.value.reason == "bad_descriptor"


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (b"not an image at all", "decode"),
        (jpeg(Image.new("RGB", (64, 64), "red"), 90)[:200], "decode"),
        (np.full((300, 300, 3), 128, np.uint8), "blank"),
        (np.zeros((10, 400, 3), np.uint8), "too_small"),
        (np.zeros((9000, 8000), np.uint8), "too_large"),
        (np.zeros((40, 40, 7), np.uint8), "bad_input"),
        (12345, "bad_input"),
        ("/nonexistent/photo.webp", "decode"),
    ],
)
def test_bad_input_raises_face_error_with_reason(image, reason):
    with pytest.raises(faces.FaceError) as info:
        faces.detect(image)
    assert info.value.reason == reason


def test_huge_image_is_refused_from_its_header():
    # A 1 px PNG whose header claims 9000x8000: refused before decoding.
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    data[16:24] = struct.pack(">II", 9000, 8000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    with pytest.raises(faces.FaceError) as info:
        faces.load_image(bytes(data))
    assert info.value.reason == "too_large"


def heic(image: Image.Image, *, orientation: int = 1) -> bytes:
    """A phone's HEIC. pillow-heif stores a non-1 EXIF orientation as the
    file's own rotation (libheif applies it when decoding) and keeps the tag."""
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=90, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_heic_selfie_decodes_upright_once(astronaut, orientation, forget_heif_opener):
    # The astronaut's left half marked, so a turn applied twice shows.
    image = astronaut.resize((400, 300))
    image.paste((0, 255, 0), (0, 0, 40, 300))
    exif = Image.Exif()
    exif[0x0112] = orientation
    as_jpeg = io.BytesIO()
    image.save(as_jpeg, "JPEG", quality=95, exif=exif.tobytes())
    expected = faces.load_image(as_jpeg.getvalue())  # a JPEG's orientation, applied by Pillow
    data = heic(image, orientation=orientation)
    forget_heif_opener()
    decoded = faces.load_image(data)
    assert decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 6


def test_a_heic_selfie_is_searched_like_its_jpeg(astronaut, reference, forget_heif_opener):
    head = astronaut.crop((100, 0, 350, 300)).resize((500, 600))
    data = heic(head)
    forget_heif_opener()
    selfie = faces.selfie_descriptors(data)
    assert distance(selfie, reference.descriptor) < THRESHOLD
    assert distance(selfie, faces.selfie_descriptors(jpeg(head, 95))) < 0.1


def test_a_broken_heic_is_a_decode_error(astronaut, forget_heif_opener):
    data = heic(astronaut.resize((300, 300)))
    forget_heif_opener()
    for broken in (data[:200], data[: len(data) // 2]):
        with pytest.raises(faces.FaceError) as info:
            faces.load_image(broken)
        assert info.value.reason == "decode"


def test_selfie_policy(reference):
    selfie = faces.selfie_descriptors(webp(astronaut_head(100)))
    assert distance(selfie, reference.descriptor) < THRESHOLD
    # One dominant face with a small one behind it: the dominant one wins.
    assert faces.selfie_descriptors(webp(group_photo([130, 50], seed=2, size=(500, 340)))) is not None
    with pytest.raises(faces.FaceError) as info:
        faces.selfie_descriptors(webp(group_photo([90, 90], seed=2, size=(500, 340))))
    assert info.value.reason == "several_faces"
    with pytest.raises(faces.FaceError) as info:
        faces.selfie_descriptors(webp(group_photo([], seed=2, size=(300, 200))))
    assert info.value.reason == "no_face"


def fake_people(count: int, per_person: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic descriptors: people ~1.0 apart, their faces ``spread`` apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1 / np.sqrt(2 * 128) * 1.0, (count, 128)).astype(np.float32) * 1.4
    members = centres[:, None, :] + rng.normal(0, spread / np.sqrt(2 * 128), (count, per_person, 128))
    truth = np.repeat(np.arange(count), per_person)
    return members.reshape(-1, 128).astype(np.float32), truth


def test_cluster_recovers_people_and_split_and_merge():
    descriptors, truth = fake_people(count=5, per_person=12, spread=0.25)
    labels = faces.cluster(descriptors, THRESHOLD)
    assert len(set(labels)) == 5
    for person in range(5):
        assert len(set(labels[truth == person])) == 1
    # Two people wrongly merged: a tighter split separates them.
    wrong = descriptors[truth < 2]
    assert len(set(faces.cluster(wrong, 1.6))) == 1
    assert len(set(faces.split_person(wrong))) == 2
    merged, count = faces.merge_centroids(
        faces.centroid(descriptors[truth == 0]), 12, faces.centroid(descriptors[truth == 1]), 12
    )
    np.testing.assert_allclose(merged, faces.centroid(wrong), atol=1e-5)
    assert count == 24
    assert faces.cluster(np.empty((0, 128), np.float32)).shape == (0,)


def test_assign_to_persons_by_members_and_centroids():
    descriptors, truth = fake_people(count=3, per_person=6, spread=0.25, seed=1)
    persons = {f"p{i}": descriptors[truth == i][:5] for i in range(3)}
    newcomers = np.stack([descriptors[truth == i][5] for i in range(3)] + [np.full(128, 0.3, np.float32)])
    matches = faces.assign_to_persons(newcomers, persons, THRESHOLD)
    assert [m.id if m else None for m in matches] == ["p0", "p1", "p2", None]
    centroids = {key: faces.centroid(value) for key, value in persons.items()}
    assert [m.id if m else None for m in faces.assign_to_persons(newcomers, centroids)] == ["p0", "p1", "p2", None]
    assert faces.assign_to_persons(newcomers, {}) == [None] * 4


def test_face_index_nearest_and_photos_of_are_exact_and_fast():
    rng = np.random.default_rng(3)
    matrix = rng.normal(0, 1 / np.sqrt(128), (30_000, 128)).astype(np.float32)
    ids = [f"photo-{i // 2}" for i in range(len(matrix))]  # two faces per photo
    index = faces.FaceIndex(matrix, ids)
    query = matrix[1234] + 0.01
    brute = np.sqrt(((matrix - query) ** 2).sum(axis=1))
    expected = np.argsort(brute)[:5]
    found = index.nearest(query, k=5)
    assert [m.id for m in found] == [ids[i] for i in expected]
    np.testing.assert_allclose([m.distance for m in found], brute[expected], rtol=1e-3, atol=1e-3)
    assert index.nearest(query, k=5, max_distance=0.2)[0].id == "photo-617"
    assert all(m.distance < 0.2 for m in index.nearest(query, k=5, max_distance=0.2))
    photos = index.photos_of(np.stack([matrix[10], matrix[20]]), threshold=0.3)
    assert {m.id for m in photos} >= {"photo-5", "photo-10"}
    assert len({m.id for m in photos}) == len(photos)
    times = []
    for row in rng.integers(0, len(matrix), 30):
        start = time.perf_counter()
        index.nearest(matrix[row], k=10)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.05  # target: 50 ms over 30,000 faces; ~1-3 ms typical


def test_one_face_index_answers_many_threads_at_once():
    """A web process shares one cached index between its threads, without a
    lock: every thread must get exactly the answer it gets alone."""
    rng = np.random.default_rng(11)
    matrix = rng.normal(0, 1 / np.sqrt(128), (20_000, 128)).astype(np.float32)
    index = faces.FaceIndex(matrix, list(range(len(matrix))))
    queries = [matrix[i] + 0.01 for i in rng.integers(0, len(matrix), 8)]
    alone = [[m.id for m in index.nearest(q, k=5)] for q in queries]
    barrier = threading.Barrier(len(queries))
    together: dict[int, list[list[int]]] = {}

    def ask(n: int) -> None:
        barrier.wait()
        together[n] = [[m.id for m in index.nearest(queries[n], k=5)] for _ in range(20)]

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answers == [alone[n]] * 20 for n, answers in together.items())


def test_face_index_from_stored_rows():
    rows = [(i, faces.descriptor_bytes(np.full(128, i / 100, np.float32))) for i in range(5)]
    index = faces.FaceIndex.from_rows(rows)
    assert len(index) == 5
    assert index.nearest(np.full(128, 0.021, np.float32), k=1)[0].id == 2
