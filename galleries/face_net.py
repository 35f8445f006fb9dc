"""dlib's face descriptor ResNet, run in NumPy.

Why: the prebuilt ``dlib-bin`` wheel has no BLAS, so its ResNet takes
~110-130 ms of CPU per face on this project's machines, which alone kept
face scanning under the 2 photos/s/core target. NumPy's wheel ships
OpenBLAS with AVX2 kernels: the same network as im2col + one matrix product
per convolution costs ~15-25 ms a face (``bench/faces.py`` prints both).

What: ``load(path)`` reads ``dlib_face_recognition_resnet_model_v1.dat``
(dlib's own serialisation: packed integers, ``'1'``/``'0'`` bools,
mantissa/exponent floats, tensors as raw little-endian float32) into a list
of layers, checking the layer sequence against the network dlib publishes
for this model (``anet_type`` in dlib's dnn_face_recognition example) and
that every byte of the file is consumed. ``ResNet.describe(chips)`` maps
aligned 150x150 RGB chips (``dlib.get_face_chips``) to 128-d descriptors.

Trust: nothing here is a re-trained or approximated model; it is the same
weights and arithmetic in another order. ``faces.load_models`` compares this
network with dlib's on a reference chip once per process and falls back to
dlib's own implementation when they differ by more than ``TOLERANCE`` (or
when the file does not parse), so a future model file or dlib change cannot
silently change descriptors. The tests compare both on real faces.

Layout notes (from dlib/dnn/*.h): tensors are NCHW; a convolution's params
hold the filters (out, in, kh, kw) then the biases; ``affine_`` holds gamma
then beta (a saved batch-norm, ``bn_con2``, becomes an affine exactly as
dlib's ``affine_(bn_)`` constructor does); ``add_prev`` sums two tensors of
different sizes by zero-padding the smaller (the skip path of a downsampling
block is one row/column larger at 8 -> 3/4 px); ``fc_no_bias`` is
``x @ W`` with W stored (inputs, outputs).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CHIP = 150
#: Largest absolute difference to dlib's own descriptor accepted at start-up.
#: Float32 sums in another order differ by ~1e-6; a wrong layer is ~1e-1.
TOLERANCE = 1e-3


class ModelFormatError(ValueError):
    """The file is not the network this module knows how to run."""


# -- dlib's serialisation -----------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ModelFormatError("file ends early")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        # dlib's pack_int: a control byte (low nibble = byte count, 0x80 =
        # negative) then the magnitude, little-endian.
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise ModelFormatError(f"bad integer control byte {control:#x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def bool(self) -> bool:
        char = bytes(self._take(1))
        if char not in (b"0", b"1"):
            raise ModelFormatError(f"bad bool at {self.pos - 1}")
        return char == b"1"

    def float(self) -> float:
        if self.pos >= len(self.data):
            raise ModelFormatError("file ends early")
        if self.data[self.pos] & 0x70:
            raise ModelFormatError("ASCII floats (dlib < 18.x) are not supported")
        mantissa, exponent = self.int(), self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def str(self) -> str:
        size = self.int()
        try:
            return bytes(self._take(size)).decode("ascii")
        except UnicodeDecodeError as exc:
            raise ModelFormatError(f"bad string before {self.pos}") from exc

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ModelFormatError(f"unknown tensor version at {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(bytes(self._take(4 * count)), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise ModelFormatError(f"unknown alias_tensor version at {self.pos}")
        return tuple(self.int() for _ in range(4))


# -- layers --------------------------------------------------------------------


@dataclass
class Layer:
    kind: str
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    tag: int = 0


def _details(r: _Reader) -> Layer:
    version = r.str()
    if version in ("con_4", "con_5", "con_6"):
        params = r.tensor().ravel()
        filters, rows, cols = r.int(), r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        fshape, bshape = r.alias(), r.alias()
        for _ in range(4):
            r.float()  # learning-rate and weight-decay multipliers
        use_bias = r.bool() if version != "con_4" else True
        if version == "con_6":
            r.bool()  # use_relu (a fused relu; not used by this network)
        nf = int(np.prod(fshape))
        weights = params[:nf].reshape(fshape)
        if fshape[0] != filters or fshape[2:] != (rows, cols):
            raise ModelFormatError("convolution filters do not match their header")
        bias = params[nf : nf + int(np.prod(bshape))].reshape(-1) if use_bias else np.zeros(filters, np.float32)
        return Layer("con", weights=weights, bias=bias, size=(rows, cols), stride=stride, padding=padding)
    if version in ("affine_", "affine_2"):
        params = r.tensor().ravel()
        gshape, bshape = r.alias(), r.alias()
        r.int()  # mode (conv/fc): this network only has conv-mode ones
        if version == "affine_2" and r.bool():
            return Layer("identity")
        n = int(np.prod(gshape))
        return Layer("affine", weights=params[:n].copy(), bias=params[n : n + int(np.prod(bshape))].copy())
    if version == "bn_con2":
        # A batch-norm saved from training: folded into an affine exactly as
        # dlib's affine_(const bn_&) does.
        params = r.tensor().ravel()
        n = int(np.prod(r.alias()))
        r.alias()
        r.tensor(), r.tensor()  # means, invstds of the last batch
        running_mean, running_var = r.tensor().ravel(), r.tensor().ravel()
        r.int(), r.int()  # num_updates, running_stats_window_size
        for _ in range(4):
            r.float()
        eps = r.float()
        gamma = (params[:n] / np.sqrt(running_var + np.float32(eps))).astype(np.float32)
        beta = (params[n : 2 * n] - gamma * running_mean).astype(np.float32)
        return Layer("affine", weights=gamma, bias=beta)
    if version in ("relu_", "relu_2"):
        if version == "relu_2" and r.bool():
            return Layer("identity")
        return Layer("relu")
    if version in ("max_pool_2", "avg_pool_2"):
        size = (r.int(), r.int())
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        kind = "max_pool" if version == "max_pool_2" else "avg_pool"
        if kind == "avg_pool" and size == (0, 0):
            kind = "avg_pool_everything"
        return Layer(kind, size=size, stride=stride, padding=padding)
    if version == "add_prev_":
        return Layer("add_prev")
    if version in ("fc_2", "fc_3"):
        outputs, inputs = r.int(), r.int()
        params = r.tensor().ravel()
        if r.alias()[:2] != (inputs, outputs):
            raise ModelFormatError("fully connected weights do not match their header")
        r.alias()  # biases
        bias_mode = r.int()  # 0 has a bias, 1 (fc_no_bias) has none
        for _ in range(4):
            r.float()
        if version == "fc_3":
            r.bool()
        weights = params[: inputs * outputs].reshape(inputs, outputs)
        bias = None if bias_mode == 1 else params[inputs * outputs : inputs * outputs + outputs]
        return Layer("fc", weights=weights, bias=bias)
    raise ModelFormatError(f"unsupported layer {version!r}")


# The published network (dlib's dnn_face_recognition_ex.cpp ``anet_type``),
# input side first, as the wrappers appear in the file: "L" an add_layer,
# "A<n>" an add_prev<n> add_layer, "T<n>" tag<n>, "S<n>" skip<n>.
_BLOCK = ["T1", "L", "L", "L", "L", "L"]  # tag1, con, affine, relu, con, affine
_RESIDUAL = [*_BLOCK, "A1", "L"]  # + add_prev1, relu
_RESIDUAL_DOWN = [*_BLOCK, "T2", "S1", "L", "A2", "L"]  # + tag2, skip1, avg_pool, add_prev2, relu
# level4: 3 x 32; level3: down + 3 x 64; level2: down + 2 x 128;
# level1: down + 2 x 256; level0: down 256.
_LEVELS = [(0, 3), (1, 3), (1, 2), (1, 2), (1, 0)]


def _expected_structure() -> list[str]:
    seq = ["L", "L", "L", "L"]  # con 7x7/2 over the input, affine, relu, max_pool
    for downs, residuals in _LEVELS:
        seq += _RESIDUAL_DOWN * downs + _RESIDUAL * residuals
    return [*seq, "L", "L"]  # avg_pool_everything, fc_no_bias


def _parse(data: bytes) -> tuple[tuple[float, float, float], list[Layer]]:
    r = _Reader(data)
    if r.int() != 1:
        raise ModelFormatError("not a dlib add_loss_layer")
    loss = r.str()
    if loss == "loss_metric_2":
        r.float(), r.float()
    elif loss != "loss_metric_":
        raise ModelFormatError(f"not a metric-learning network ({loss!r})")
    structure = _expected_structure()
    # Wrappers are written outermost first, each add_layer's details only
    # after its whole subnetwork: read the versions on the way down, the
    # details on the way back up.
    versions: list[int] = []
    for wrapper in reversed(structure[1:]):
        versions.append(r.int())
        if wrapper[0] in "TS" and versions[-1] != 1:
            raise ModelFormatError("unexpected tag/skip version")
    input_version = r.int()
    if r.str() != "input_rgb_image_sized":
        raise ModelFormatError("unexpected input layer")
    mean = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP, CHIP):
        raise ModelFormatError("unexpected input size")
    layers = [_details(r)]
    r.bool(), r.bool(), r.bool()
    r.tensor(), r.tensor(), r.tensor()  # x_grad, cached_output, grad_final
    if input_version >= 3:
        r.int()
    for wrapper, version in zip(structure[1:], reversed(versions), strict=True):
        if wrapper[0] in "TS":
            layers.append(Layer("tag" if wrapper[0] == "T" else "skip", tag=int(wrapper[1])))
            continue
        layer = _details(r)
        if wrapper[0] == "A":
            if layer.kind != "add_prev":
                raise ModelFormatError(f"expected add_prev, found {layer.kind}")
            layer.tag = int(wrapper[1])
        layers.append(layer)
        r.bool(), r.bool(), r.bool()
        r.tensor(), r.tensor()  # x_grad, cached_output
        if version == 2:
            r.tensor()  # params_grad
    if r.pos != len(r.data):
        raise ModelFormatError(f"{len(r.data) - r.pos} bytes left after the network")
    return mean, layers


# -- forward pass ---------------------------------------------------------------


def _conv(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Cross-correlation over a batch (N, C, H, W) as im2col + one GEMM."""
    n, c, h, w = x.shape
    kh, kw = layer.size
    sy, sx = layer.stride
    py, px = layer.padding
    if py or px:
        x = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sy, ::sx]
    oh, ow = windows.shape[2], windows.shape[3]
    # (N, C, OH, OW, kh, kw) -> (C*kh*kw, N*OH*OW): one copy, then one matmul.
    cols = windows.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * oh * ow)
    out = layer.weights.reshape(layer.weights.shape[0], -1) @ cols
    out += layer.bias[:, None]
    return out.reshape(-1, n, oh, ow).transpose(1, 0, 2, 3)


def _pool(x: np.ndarray, layer: Layer, reduce) -> np.ndarray:
    py, px = layer.padding
    if py or px:
        raise ModelFormatError("padded pooling is not supported")
    windows = sliding_window_view(x, layer.size, axis=(2, 3))[:, :, :: layer.stride[0], :: layer.stride[1]]
    return reduce(windows, axis=(4, 5))


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, s) for s in a.shape)] += a
    out[tuple(slice(0, s) for s in b.shape)] += b
    return out


class ResNet:
    def __init__(self, mean: tuple[float, float, float], layers: Sequence[Layer]) -> None:
        self.mean = np.array(mean, np.float32).reshape(1, 3, 1, 1)
        self.layers = list(layers)

    def describe(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 128) float32 descriptors of aligned 150x150 RGB uint8 chips."""
        if not len(chips):
            return np.zeros((0, 128), np.float32)
        batch = np.stack([np.asarray(chip) for chip in chips])
        if batch.shape[1:] != (CHIP, CHIP, 3):
            raise ValueError(f"chips must be {CHIP}x{CHIP} RGB, got {batch.shape[1:]}")
        x = (batch.transpose(0, 3, 1, 2).astype(np.float32) - self.mean) / np.float32(256.0)
        tags: dict[int, np.ndarray] = {}
        for layer in self.layers:
            kind = layer.kind
            if kind == "con":
                x = _conv(x, layer)
            elif kind == "affine":
                x = x * layer.weights[None, :, None, None] + layer.bias[None, :, None, None]
            elif kind == "relu":
                x = np.maximum(x, 0, out=x)
            elif kind == "max_pool":
                x = _pool(x, layer, np.max)
            elif kind == "avg_pool":
                x = _pool(x, layer, np.mean)
            elif kind == "avg_pool_everything":
                x = x.mean(axis=(2, 3), keepdims=True)
            elif kind == "tag":
                tags[layer.tag] = x
            elif kind == "skip":
                x = tags[layer.tag]
            elif kind == "add_prev":
                x = _add_padded(x, tags[layer.tag])
            elif kind == "fc":
                x = x.reshape(x.shape[0], -1) @ layer.weights
                if layer.bias is not None:
                    x += layer.bias
        return np.ascontiguousarray(x, dtype=np.float32)


@functools.cache
def load(path: str | Path) -> ResNet:
    mean, layers = _parse(Path(path).read_bytes())
    return ResNet(mean, layers)
