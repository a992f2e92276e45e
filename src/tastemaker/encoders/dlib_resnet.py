"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in plain NumPy.

Why: the ``dlib-bin`` wheel is built without BLAS, so ``compute_face_descriptor`` spends 120-165 ms
on a 150x150 chip. The network is only ~0.3 G multiply-adds; as float32 im2col + ``np.matmul``
(OpenBLAS) it runs in a fraction of that and returns the same 128-d descriptors (float32 rounding
apart) from the same weights file.

File format (dlib's own serialization, ``dlib/serialize.h``)
-----------------------------------------------------------
* integers: a control byte (low 4 bits = number of magnitude bytes, bit 0x80 = negative; bits 0x70
  are always 0) followed by the magnitude, little endian;
* floats/doubles: ``mantissa`` (int64) then ``exponent`` (int16), both as integers; the value is
  ``mantissa * 2**exponent``, exponents 32000/32001/32002 mean +inf/-inf/NaN;
* strings: length (integer) then the bytes; bools: the ASCII byte ``'1'`` or ``'0'``;
* tensors (``dlib/dnn/tensor.h``, version 2): version, num_samples, k, nr, nc, then the values as
  raw little-endian float32; ``alias_tensor``: version 1 and the four dimensions only.

Deserialization in dlib is *type driven*: nothing in the file names a tag or skip layer, or which
tag an ``add_prev`` refers to. So, like dlib, the loader walks the known network type and checks
every version number, layer name and hyper-parameter it meets (any mismatch is a
:class:`DlibModelFormatError` with the byte offset). The nesting is serialized outermost first:
``add_loss_layer`` (version 1, loss details, subnet), ``add_layer`` (version 1 or 2, subnet, layer
details, three bools, ``x_grad``, ``cached_output`` and - version 2 - ``params_grad``),
``add_tag_layer``/``add_skip_layer`` (version 1, subnet), and innermost the ``add_layer`` that holds
the input layer (version 2 or 3: input layer, details, bools, ``x_grad``, ``cached_output``,
``grad_final`` and - version 3 - the sample expansion factor). Hence the file is a run of version
numbers, then the input layer, then the layer details from the input upwards.

Network (``dnn_face_recognition_ex.cpp``)
-----------------------------------------
::

    block<N,stride>  = affine<con<N,3,3,1,1, relu<affine<con<N,3,3,stride,stride, SUBNET>>>>>
    ares<N>          = relu<add_prev1<block<N,1, tag1<SUBNET>>>>
    ares_down<N>     = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,2, tag1<SUBNET>>>>>>>
    anet = loss_metric<fc_no_bias<128, avg_pool_everything<
             ares_down<256> <ares<256> ares<256> ares_down<256>> <ares<128> ares<128> ares_down<128>>
             <ares<64> x3, ares_down<64>> <ares<32> x3>
             max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>

Forward semantics, as in ``dlib/dnn/layers.h`` and ``cpu_dlib.cpp``: the input is
``(pixel - channel_mean) / 256`` (RGB planes); ``con`` is a cross-correlation with the padding
stored in the file (``stride != 1 ? 0 : size/2``), plus bias; ``affine`` is a per-channel
``x * gamma + beta`` (folded into the preceding convolution here); pooling windows start at
``out * stride - padding`` and average/max over the part inside the image;
``avg_pool_everything`` is the spatial mean; ``add_prev`` adds two tensors of possibly different
shapes into one of the element-wise maximum shape, a missing element counting as 0 (the stride-2
branch is 3x3 where the pooled shortcut is 4x4, and has more channels); ``loss_metric``'s output is
the ``fc_no_bias`` output itself, not normalised. Activations here are NHWC float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import DlibModelFormatError

__all__ = ["DESCRIPTOR_SIZE", "CHIP_SIZE", "DlibModelFormatError", "DlibResNet"]

DESCRIPTOR_SIZE = 128
CHIP_SIZE = 150
#: Chips per forward pass in :meth:`DlibResNet.descriptors` (bounds im2col memory, ~3 MB per chip).
BATCH = 16

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002



# ---------------------------------------------------------------------------------------------
# dlib serialization primitives


class _Reader:
    """Sequential reader of dlib's serialization format; every error names the byte offset."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.where = ""  # which layer is being read, for error messages

    def fail(self, message: str, offset: int | None = None) -> NoReturn:
        prefix = f"{self.where}: " if self.where else ""
        raise DlibModelFormatError(prefix + message, self.pos if offset is None else offset)

    def _take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            self.fail(f"file ends inside {what} (needs {n} bytes, {len(self.data) - self.pos} left)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self, what: str, nbytes: int = 8, *, unsigned: bool = False) -> int:
        start = self.pos
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70:
            self.fail(f"{what}: byte 0x{ctrl:02x} is not an integer control byte", start)
        if size > nbytes:
            self.fail(f"{what}: integer of {size} bytes, at most {nbytes} expected", start)
        if unsigned and ctrl & 0x80:
            self.fail(f"{what}: negative value for an unsigned field", start)
        value = int.from_bytes(self._take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def version(self, what: str, allowed: Sequence[int]) -> int:
        start = self.pos
        v = self.integer(f"{what} version", 4)
        if v not in allowed:
            self.fail(f"{what} version {v} found, expected {' or '.join(map(str, allowed))}", start)
        return v

    def real(self, what: str) -> float:
        start = self.pos
        if start < len(self.data) and self.data[start] & 0x70:
            self.fail(f"{what}: old text float format (byte 0x{self.data[start]:02x}) is not supported")
        mantissa = self.integer(f"{what} mantissa", 8)
        exponent = self.integer(f"{what} exponent", 2)
        if exponent < _FLOAT_INF:
            return math.ldexp(float(mantissa), exponent)
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        self.fail(f"{what}: invalid float exponent {exponent}", start)

    def boolean(self, what: str) -> bool:
        start = self.pos
        b = self._take(1, what)
        if b not in (b"0", b"1"):
            self.fail(f"{what}: bool byte 0x{b[0]:02x} found, expected '0' or '1'", start)
        return b == b"1"

    def string(self, what: str) -> str:
        start = self.pos
        n = self.integer(f"{what} length", 8, unsigned=True)
        if n > 256:
            self.fail(f"{what}: implausible string length {n}", start)
        raw = self._take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.fail(f"{what}: non-ASCII bytes {raw[:24]!r}", start)

    def expect_string(self, expected: str | Sequence[str], what: str) -> str:
        start = self.pos
        names = (expected,) if isinstance(expected, str) else tuple(expected)
        s = self.string(what)
        if s not in names:
            self.fail(f"{what} {s!r} found, expected {' or '.join(map(repr, names))}", start)
        return s

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor``: shape (num_samples, k, nr, nc), float32."""
        start = self.pos
        v = self.integer(f"{what} version", 4)
        if v != 2:
            self.fail(f"{what}: tensor version {v} found, only version 2 (raw float32) is supported", start)
        dims = tuple(self.integer(f"{what} dimension", 8) for _ in range(4))
        if min(dims) < 0:
            self.fail(f"{what}: negative tensor dimension {dims}", start)
        count = math.prod(dims)
        raw = self._take(4 * count, f"{what} data ({count} floats)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        self.version(f"{what} (alias_tensor)", (1,))
        n, k, nr, nc = (self.integer(f"{what} dimension", 8) for _ in range(4))
        return n, k, nr, nc

    def expect_int(self, expected: int, what: str, nbytes: int = 8) -> int:
        start = self.pos
        v = self.integer(what, nbytes)
        if v != expected:
            self.fail(f"{what}: {v} found, expected {expected}", start)
        return v


# ---------------------------------------------------------------------------------------------
# The network type, outermost layer first (what dlib's template parameters say)


@dataclass(frozen=True)
class _Spec:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc_no_bias
    args: tuple[int, ...] = ()


def _block(n: int, stride: int) -> list[_Spec]:
    return [
        _Spec("affine"),
        _Spec("con", (n, 3, 3, 1, 1)),
        _Spec("relu"),
        _Spec("affine"),
        _Spec("con", (n, 3, 3, stride, stride)),
    ]


def _ares(n: int) -> list[_Spec]:
    return [_Spec("relu"), _Spec("add_prev", (1,)), *_block(n, 1), _Spec("tag", (1,))]


def _ares_down(n: int) -> list[_Spec]:
    return [
        _Spec("relu"),
        _Spec("add_prev", (2,)),
        _Spec("avg_pool", (2, 2, 2, 2)),
        _Spec("skip", (1,)),
        _Spec("tag", (2,)),
        *_block(n, 2),
        _Spec("tag", (1,)),
    ]


def _anet() -> list[_Spec]:
    levels = [
        *_ares_down(256),  # alevel0
        *_ares(256), *_ares(256), *_ares_down(256),  # alevel1
        *_ares(128), *_ares(128), *_ares_down(128),  # alevel2
        *_ares(64), *_ares(64), *_ares(64), *_ares_down(64),  # alevel3
        *_ares(32), *_ares(32), *_ares(32),  # alevel4
    ]  # fmt: skip
    return [
        _Spec("fc_no_bias", (DESCRIPTOR_SIZE,)),
        _Spec("avg_pool", (0, 0, 1, 1)),  # avg_pool_everything
        *levels,
        _Spec("max_pool", (3, 3, 2, 2)),
        _Spec("relu"),
        _Spec("affine"),
        _Spec("con", (32, 7, 7, 2, 2)),  # its subnet is input_rgb_image_sized<150>
    ]


_WRAPPERS = ("tag", "skip")


# ---------------------------------------------------------------------------------------------
# Forward-pass operations (NHWC float32)


@dataclass
class _Conv:
    """Convolution (+ folded per-channel affine) (+ fused ReLU) as im2col and one matmul."""

    weights: np.ndarray  # (kr*kc*cin, cout), rows ordered (row, col, channel) to match NHWC im2col
    bias: np.ndarray  # (cout,)
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    relu: bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        (kr, kc), (sy, sx), (py, px) = self.kernel, self.stride, self.padding
        if py or px:
            xp = np.zeros((n, h + 2 * py, w + 2 * px, c), np.float32)
            xp[:, py : py + h, px : px + w] = x
        else:
            xp = x
        ho = 1 + (h + 2 * py - kr) // sy
        wo = 1 + (w + 2 * px - kc) // sx
        # im2col in one copy: for output (r, c) and kernel row i, the kc*C inputs are one contiguous run
        # of the (C-contiguous) padded row r*sy + i, starting at column c*sx.
        xp = np.ascontiguousarray(xp)
        s0, s1, s2, s3 = xp.strides
        patches = as_strided(xp, (n, ho, wo, kr, kc * c), (s0, sy * s1, sx * s2, s1, s3), writeable=False)
        cols = np.ascontiguousarray(patches).reshape(n * ho * wo, kr * kc * c)
        out = cols @ self.weights
        out += self.bias
        if self.relu:
            np.maximum(out, 0.0, out=out)
        return out.reshape(n, ho, wo, -1)


@dataclass
class _Affine:
    """Per-channel ``x * gamma + beta`` when there is no convolution to fold it into."""

    gamma: np.ndarray
    beta: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x *= self.gamma
        x += self.beta
        return x


@dataclass
class _Relu:
    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0, out=x)


@dataclass
class _Pool:
    """Max or average pooling over the in-image part of each window (dlib's ``subm_clipped``)."""

    average: bool
    window: tuple[int, int]  # 0 = the whole input (avg_pool_everything)
    stride: tuple[int, int]
    padding: tuple[int, int]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        kr, kc = self.window[0] or h, self.window[1] or w
        (sy, sx), (py, px) = self.stride, self.padding
        if (kr, kc) == (h, w) and not (py or px):
            return x.mean(axis=(1, 2), keepdims=True, dtype=np.float32)
        ho = 1 + (h + 2 * py - kr) // sy
        wo = 1 + (w + 2 * px - kc) // sx
        fill = 0.0 if self.average else -np.inf
        if py or px:
            xp = np.full((n, h + 2 * py, w + 2 * px, c), fill, np.float32)
            xp[:, py : py + h, px : px + w] = x
        else:
            xp = x
        out: np.ndarray | None = None
        for i in range(kr):
            for j in range(kc):
                win = xp[:, i : i + sy * (ho - 1) + 1 : sy, j : j + sx * (wo - 1) + 1 : sx]
                if out is None:
                    out = win.copy()
                elif self.average:
                    out += win
                else:
                    np.maximum(out, win, out=out)
        assert out is not None
        if self.average:
            if py or px:  # divide by the number of in-image elements of each window
                ones = np.zeros((h + 2 * py, w + 2 * px), np.float32)
                ones[py : py + h, px : px + w] = 1.0
                counts = sum(
                    ones[i : i + sy * (ho - 1) + 1 : sy, j : j + sx * (wo - 1) + 1 : sx]
                    for i in range(kr)
                    for j in range(kc)
                )
                out /= np.asarray(counts)[None, :, :, None]
            else:
                out /= np.float32(kr * kc)
        return out


@dataclass
class _Tag:
    ident: int


@dataclass
class _Skip:
    ident: int


@dataclass
class _AddPrev:
    """``tt::add(out, x, tagged)``: shapes may differ; the result has the max of each dimension."""

    ident: int

    def __call__(self, x: np.ndarray, other: np.ndarray) -> np.ndarray:
        if x.shape == other.shape:
            return x + other
        shape = tuple(max(a, b) for a, b in zip(x.shape, other.shape, strict=True))
        out = np.zeros(shape, np.float32)
        out[tuple(slice(0, s) for s in x.shape)] += x
        out[tuple(slice(0, s) for s in other.shape)] += other
        return out


@dataclass
class _Dense:
    """``fc_no_bias``: the (k, nr, nc)-ordered flattening of each sample times W."""

    weights: np.ndarray  # (num_inputs, num_outputs)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        flat = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(x.shape[0], -1)
        return flat @ self.weights


_Op = _Conv | _Affine | _Relu | _Pool | _Tag | _Skip | _AddPrev | _Dense


# ---------------------------------------------------------------------------------------------
# Loading: walk the network type, check everything, build the ops (input side first)


def _pad_default(size: int, stride: int) -> int:
    return 0 if stride != 1 else size // 2


def _read_con(r: _Reader, spec: _Spec, cin: int) -> _Conv:
    nf, nr, nc, sy, sx = spec.args
    r.expect_string("con_4", "layer name")
    params = r.tensor("con params")
    for expected, what, nbytes in ((nf, "num_filters", 8), (nr, "nr", 8), (nc, "nc", 8), (sy, "stride_y", 4),
                                   (sx, "stride_x", 4), (_pad_default(nr, sy), "padding_y", 4),
                                   (_pad_default(nc, sx), "padding_x", 4)):  # fmt: skip
        r.expect_int(expected, what, nbytes)
    start = r.pos
    filters = r.alias_tensor("con filters")
    if filters != (nf, cin, nr, nc):
        r.fail(f"filter shape {filters} found, expected {(nf, cin, nr, nc)}", start)
    start = r.pos
    biases = r.alias_tensor("con biases")
    if biases != (1, nf, 1, 1):
        r.fail(f"bias shape {biases} found, expected {(1, nf, 1, 1)}", start)
    for what in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                 "bias_weight_decay_multiplier"):  # fmt: skip
        r.real(what)
    n_w = nf * cin * nr * nc
    if params.size != n_w + nf:
        r.fail(f"con params hold {params.size} values, expected {n_w + nf}")
    flat = params.reshape(-1)
    w = flat[:n_w].reshape(nf, cin, nr, nc).transpose(2, 3, 1, 0).reshape(nr * nc * cin, nf)
    return _Conv(np.ascontiguousarray(w), flat[n_w:].copy(), (nr, nc), (sy, sx),
                 (_pad_default(nr, sy), _pad_default(nc, sx)))  # fmt: skip


def _read_affine(r: _Reader, channels: int) -> _Affine:
    start = r.pos
    name = r.string("layer name")
    if name != "affine_":
        hint = " (a batch-norm layer; only the inference-time affine_ is supported)" if name.startswith("bn_") else ""
        r.fail(f"layer name {name!r} found, expected 'affine_'{hint}", start)
    params = r.tensor("affine params")
    gamma = r.alias_tensor("affine gamma")
    beta = r.alias_tensor("affine beta")
    start = r.pos
    mode = r.integer("affine mode", 4)
    if mode != 0:
        r.fail(f"affine mode {mode} found, expected 0 (CONV_MODE, one gamma/beta per channel)", start)
    if gamma != (1, channels, 1, 1) or beta != gamma:
        r.fail(f"affine gamma/beta shapes {gamma}/{beta} found, expected {(1, channels, 1, 1)}")
    if params.size != 2 * channels:
        r.fail(f"affine params hold {params.size} values, expected {2 * channels}")
    flat = params.reshape(-1)
    return _Affine(flat[:channels].copy(), flat[channels:].copy())


def _read_pool(r: _Reader, spec: _Spec) -> _Pool:
    nr, nc, sy, sx = spec.args
    average = spec.kind == "avg_pool"
    r.expect_string("avg_pool_2" if average else "max_pool_2", "layer name")
    for expected, what, nbytes in ((nr, "nr", 8), (nc, "nc", 8), (sy, "stride_y", 4), (sx, "stride_x", 4),
                                   (_pad_default(nr, sy), "padding_y", 4),
                                   (_pad_default(nc, sx), "padding_x", 4)):  # fmt: skip
        r.expect_int(expected, what, nbytes)
    return _Pool(average, (nr, nc), (sy, sx), (_pad_default(nr, sy), _pad_default(nc, sx)))


def _read_fc(r: _Reader, spec: _Spec, num_inputs: int) -> _Dense:
    (n_out,) = spec.args
    r.expect_string("fc_2", "layer name")
    r.expect_int(n_out, "num_outputs")
    r.expect_int(num_inputs, "num_inputs")
    params = r.tensor("fc params")
    start = r.pos
    weights = r.alias_tensor("fc weights")
    if weights != (num_inputs, n_out, 1, 1):
        r.fail(f"fc weight shape {weights} found, expected {(num_inputs, n_out, 1, 1)}", start)
    r.alias_tensor("fc biases")
    r.expect_int(1, "fc bias_mode (1 = FC_NO_BIAS)", 4)
    for what in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                 "bias_weight_decay_multiplier"):  # fmt: skip
        r.real(what)
    if params.size != num_inputs * n_out:
        r.fail(f"fc params hold {params.size} values, expected {num_inputs * n_out}")
    return _Dense(np.ascontiguousarray(params.reshape(num_inputs, n_out)))


def _read_layer_tail(r: _Reader, version: int) -> None:
    """What ``add_layer`` writes after the layer details (state and scratch tensors, unused here)."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.boolean(what)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if version == 2:
        r.tensor("params_grad")


def _parse(data: bytes) -> tuple[np.ndarray, list[_Op], dict[str, float]]:
    r = _Reader(data)
    r.version("add_loss_layer", (1,))
    loss = r.expect_string(("loss_metric_2", "loss_metric_"), "loss layer name")
    meta = {"margin": 0.1, "distance_threshold": 0.75}  # what dlib assumes for the old "loss_metric_"
    if loss == "loss_metric_2":
        meta = {"margin": r.real("loss margin"), "distance_threshold": r.real("loss distance threshold")}

    specs = _anet()
    versions: list[int] = []
    for depth, spec in enumerate(specs[:-1]):
        r.where = f"layer {depth} ({spec.kind})"
        if spec.kind in _WRAPPERS:
            versions.append(r.version(f"add_{spec.kind}_layer", (1,)))
        else:
            versions.append(r.version("add_layer", (1, 2)))

    # innermost add_layer: it holds the input layer
    first = specs[-1]
    r.where = f"layer {len(specs) - 1} ({first.kind}, on the input layer)"
    input_version = r.version("add_layer over the input layer", (2, 3))
    r.where = "input layer"
    r.expect_string("input_rgb_image_sized", "input layer name")
    mean = np.array([r.real("avg_red"), r.real("avg_green"), r.real("avg_blue")], np.float32)
    r.expect_int(CHIP_SIZE, "input rows")
    r.expect_int(CHIP_SIZE, "input columns")

    h = w = CHIP_SIZE
    c = 3
    ops: list[_Op] = []
    shapes: dict[int, tuple[int, int, int]] = {}  # tag id -> (h, w, c) of the tagged output
    for depth in range(len(specs) - 1, -1, -1):
        spec = specs[depth]
        r.where = f"layer {depth} ({spec.kind})"
        if spec.kind == "tag":
            shapes[spec.args[0]] = (h, w, c)
            ops.append(_Tag(spec.args[0]))
            continue
        if spec.kind == "skip":
            if spec.args[0] not in shapes:
                r.fail(f"skip{spec.args[0]} without a tag{spec.args[0]} below it")
            h, w, c = shapes[spec.args[0]]
            ops.append(_Skip(spec.args[0]))
            continue
        op: _Op
        if spec.kind == "con":
            conv = _read_con(r, spec, c)
            h = 1 + (h + 2 * conv.padding[0] - conv.kernel[0]) // conv.stride[0]
            w = 1 + (w + 2 * conv.padding[1] - conv.kernel[1]) // conv.stride[1]
            c = conv.weights.shape[1]
            op = conv
        elif spec.kind == "affine":
            op = _read_affine(r, c)
        elif spec.kind == "relu":
            r.expect_string("relu_", "layer name")
            op = _Relu()
        elif spec.kind in ("max_pool", "avg_pool"):
            pool = _read_pool(r, spec)
            kr, kc = pool.window[0] or h, pool.window[1] or w
            h = 1 + (h + 2 * pool.padding[0] - kr) // pool.stride[0]
            w = 1 + (w + 2 * pool.padding[1] - kc) // pool.stride[1]
            op = pool
        elif spec.kind == "add_prev":
            r.expect_string("add_prev_", "layer name")
            if spec.args[0] not in shapes:
                r.fail(f"add_prev{spec.args[0]} without a tag{spec.args[0]} below it")
            th, tw, tc = shapes[spec.args[0]]
            h, w, c = max(h, th), max(w, tw), max(c, tc)
            op = _AddPrev(spec.args[0])
        elif spec.kind == "fc_no_bias":
            op = _read_fc(r, spec, h * w * c)
            h = w = 1
            c = spec.args[0]
        else:  # pragma: no cover - the spec list above is fixed
            raise AssertionError(spec.kind)
        if depth == len(specs) - 1:  # the add_layer over the input layer
            for what in ("this_layer_setup_called", "gradient_input_is_stale",
                         "get_output_and_gradient_input_disabled"):  # fmt: skip
                r.boolean(what)
            for what in ("x_grad", "cached_output", "grad_final"):
                r.tensor(what)
            if input_version == 3:
                r.integer("sample_expansion_factor", 4, unsigned=True)
        else:
            _read_layer_tail(r, versions[depth])
        ops.append(op)
    r.where = ""
    if r.pos != len(data):
        r.fail(f"{len(data) - r.pos} unexpected bytes after the network")
    if (h, w, c) != (1, 1, DESCRIPTOR_SIZE):  # pragma: no cover - guaranteed by the fc checks
        r.fail(f"network output {(h, w, c)}, expected a {DESCRIPTOR_SIZE}-d vector")
    return mean, _fuse(ops), meta


def _fuse(ops: list[_Op]) -> list[_Op]:
    """Fold each affine into the convolution right below it and a following ReLU into that."""
    out: list[_Op] = []
    for op in ops:
        prev = out[-1] if out else None
        if isinstance(op, _Affine) and isinstance(prev, _Conv) and not prev.relu:
            prev.weights = np.ascontiguousarray(prev.weights * op.gamma[None, :], dtype=np.float32)
            prev.bias = (prev.bias * op.gamma + op.beta).astype(np.float32)
        elif isinstance(op, _Relu) and isinstance(prev, _Conv):
            prev.relu = True
        else:
            out.append(op)
    return out


# ---------------------------------------------------------------------------------------------


class DlibResNet:
    """The dlib face-descriptor network, loaded from dlib's ``.dat`` file, run with NumPy."""

    def __init__(self, mean_rgb: np.ndarray, ops: list[_Op], meta: dict[str, float]) -> None:
        self._mean = np.asarray(mean_rgb, np.float32).reshape(1, 1, 1, 3)
        self._ops = ops
        #: loss_metric parameters from the file (``distance_threshold`` is dlib's same-person cut-off).
        self.meta = dict(meta)

    @classmethod
    def load(cls, path: str | Path) -> DlibResNet:
        """Parse ``dlib_face_recognition_resnet_model_v1.dat``; raises :class:`DlibModelFormatError`."""
        data = Path(path).read_bytes()
        mean, ops, meta = _parse(data)
        return cls(mean, ops, meta)

    def descriptor(self, chip: np.ndarray) -> np.ndarray:
        """128-d float64 descriptor of one aligned 150x150 chip (as ``dlib.get_face_chip`` makes)."""
        return self.descriptors([chip])[0]

    def descriptors(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 128) float64 descriptors; chips go through the network in batches of :data:`BATCH`."""
        arrays = [_check_chip(chip, i) for i, chip in enumerate(chips)]
        if not arrays:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float64)
        parts = [self._forward(np.stack(arrays[i : i + BATCH])) for i in range(0, len(arrays), BATCH)]
        return np.concatenate(parts).astype(np.float64)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        # input_rgb_image_sized: (pixel - mean) / 256, computed in float32 as dlib does
        x = (batch.astype(np.float32) - self._mean) / np.float32(256.0)
        tags: dict[int, np.ndarray] = {}
        for op in self._ops:
            if isinstance(op, _Tag):
                tags[op.ident] = x
            elif isinstance(op, _Skip):
                x = tags[op.ident]
            elif isinstance(op, _AddPrev):
                x = op(x, tags[op.ident])
            elif isinstance(op, _Affine | _Relu):
                if any(x is t for t in tags.values()):  # never modify a tagged output in place
                    x = x.copy()
                x = op(x)
            else:
                x = op(x)
        return x.reshape(x.shape[0], -1)


def _check_chip(chip: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(chip)
    if arr.dtype != np.uint8:
        raise ValueError(f"chip {index}: dtype {arr.dtype}, expected uint8 (as dlib.get_face_chip returns)")
    if arr.shape != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"chip {index}: shape {arr.shape}, expected ({CHIP_SIZE}, {CHIP_SIZE}, 3) RGB")
    return arr
