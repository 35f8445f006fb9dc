"""galleries.face_net: dlib's face ResNet run in NumPy must give dlib's
descriptors, refuse a file it does not understand, and never be used when it
disagrees with dlib (faces.load_models falls back)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

dlib = pytest.importorskip("dlib", reason="dlib (dlib-bin) is not installed")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev requirement) is not installed")

from bench.faces import astronaut_head, group_photo  # noqa: E402
from galleries import face_net, faces  # noqa: E402


@pytest.fixture(scope="module")
def models() -> faces.Models:
    return faces.load_models()


@pytest.fixture(scope="module")
def resnet_path():
    return faces.models_dir() / "dlib_face_recognition_resnet_model_v1.dat"


def chips_of(rgb: np.ndarray, models: faces.Models) -> list[np.ndarray]:
    shapes = dlib.full_object_detections()
    for face in faces.detect(rgb, thumbnails=False, min_size=20):
        box = face.box
        shapes.append(models.shape(rgb, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)))
    return [np.asarray(c) for c in dlib.get_face_chips(rgb, shapes, size=faces.CHIP_SIZE, padding=faces.CHIP_PADDING)]


def by_dlib(models: faces.Models, chips) -> np.ndarray:
    return np.asarray([np.asarray(v) for v in models.net.compute_face_descriptor(list(chips))], np.float32)


def test_the_default_engine_is_numpy_on_one_blas_thread(models):
    from threadpoolctl import threadpool_info

    assert models.engine == "numpy"
    # One process per core: numpy's OpenBLAS must not add threads of its own.
    assert {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"} == {1}


def test_numpy_descriptors_equal_dlib_on_real_faces(models):
    photos = [
        np.asarray(Image.fromarray(skimage_data.astronaut())),
        np.asarray(astronaut_head(200, flip=True, angle=12).convert("RGB")),
        np.asarray(group_photo([150, 220, 300], seed=3)),
    ]
    chips = [chip for photo in photos for chip in chips_of(photo, models)]
    assert len(chips) >= 5
    # Odd shapes of the batch (1, several) and one chip per call.
    ours = models.describe(chips)
    single = np.stack([models.describe([chip])[0] for chip in chips])
    reference = by_dlib(models, chips)
    assert ours.shape == (len(chips), 128) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-5
    assert np.abs(single - ours).max() < 1e-5
    # The descriptor is not trivially small: a wrong layer would move it by ~0.1.
    assert np.linalg.norm(reference, axis=1).min() > 0.5


def test_empty_batch_and_wrong_chip_size(models, resnet_path):
    assert models.describe([]).shape == (0, 128)
    with pytest.raises(ValueError):
        face_net.load(str(resnet_path)).describe([np.zeros((100, 100, 3), np.uint8)])


def test_the_parser_consumes_the_whole_published_network(resnet_path):
    mean, layers = face_net._parse(resnet_path.read_bytes())
    kinds = [layer.kind for layer in layers]
    assert kinds.count("con") == 29 and kinds[-1] == "fc" and kinds[-2] == "avg_pool_everything"
    assert layers[-1].weights.shape == (256, 128)
    assert layers[0].weights.shape == (32, 3, 7, 7) and layers[0].stride == (2, 2)
    assert all(100 < m < 130 for m in mean)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: data + b"\x01\x00",  # trailing bytes
        lambda data: data[:40] + bytes([0x7F]) + data[41:],  # a corrupt control byte early on
        lambda data: b"",
    ],
)
def test_a_damaged_file_is_refused(resnet_path, damage):
    with pytest.raises(face_net.ModelFormatError):
        face_net._parse(damage(resnet_path.read_bytes()))


def test_any_damaged_byte_is_refused_or_parsed_never_crashes(resnet_path):
    """Flip each of the first 400 bytes (the header and first layers, where
    parsing decides) and 200 random ones: a refusal or a parse, never another
    error. A parse of damaged weights is what the start-up check catches."""
    data = resnet_path.read_bytes()
    rng = np.random.default_rng(5)
    positions = [*range(400), *rng.integers(0, len(data), 200).tolist()]
    outcomes = set()
    for position in positions:
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        try:
            face_net._parse(bytes(damaged))
            outcomes.add("parsed")
        except face_net.ModelFormatError:
            outcomes.add("refused")
    assert "refused" in outcomes


def test_load_models_falls_back_to_dlib_when_numpy_disagrees(monkeypatch, caplog, models, resnet_path):
    real = face_net.load(str(resnet_path))
    skewed = face_net.ResNet(tuple(real.mean.ravel() + 3.0), real.layers)
    monkeypatch.setattr(face_net, "load", lambda path: skewed)
    with caplog.at_level(logging.WARNING, logger="galleries.faces"):
        engine, describe = faces._descriptor_engine(resnet_path, models.net)
    assert engine == "dlib" and "differ" in caplog.text
    chip = np.full((150, 150, 3), 90, np.uint8)
    assert np.abs(describe([chip]) - by_dlib(models, [chip])).max() == 0


def test_load_models_falls_back_to_dlib_when_the_file_does_not_parse(monkeypatch, caplog, models, resnet_path):
    def broken(path):
        raise face_net.ModelFormatError("unsupported layer 'con_9'")

    monkeypatch.setattr(face_net, "load", broken)
    with caplog.at_level(logging.WARNING, logger="galleries.faces"):
        engine, _ = faces._descriptor_engine(resnet_path, models.net)
    assert engine == "dlib" and "con_9" in caplog.text


def test_setting_can_force_dlib(settings, models, resnet_path):
    settings.FACES_NUMPY_DESCRIPTORS = False
    engine, _ = faces._descriptor_engine(resnet_path, models.net)
    assert engine == "dlib"
