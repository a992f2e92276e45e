"""The network's type and its loader: dlib's file walked layer by layer, every field checked, the ops built.

Separate from :mod:`.reader` (the byte format) and :mod:`.layers` (what each op computes): this is the part
that knows the network. Deserialization in dlib is *type driven*: nothing in the file names a tag or skip
layer, or which tag an ``add_prev`` refers to. So, like dlib, the loader walks the known network type and
checks every version number, layer name and hyper-parameter it meets (any mismatch is a
:class:`~tastemaker.errors.DlibModelFormatError` with the byte offset). The nesting is serialized outermost first:
``add_loss_layer`` (version 1, loss details, subnet), ``add_layer`` (version 1 or 2, subnet, layer
details, three bools, ``x_grad``, ``cached_output`` and - version 2 - ``params_grad``),
``add_tag_layer``/``add_skip_layer`` (version 1, subnet), and innermost the ``add_layer`` that holds
the input layer (version 2 or 3: input layer, details, bools, ``x_grad``, ``cached_output``,
``grad_final`` and - version 3 - the sample expansion factor). Hence the file is a run of version
numbers, then the input layer, then the layer details from the input upwards.

Network (``dnn_face_recognition_ex.cpp``)::

    block<N,stride>  = affine<con<N,3,3,1,1, relu<affine<con<N,3,3,stride,stride, SUBNET>>>>>
    ares<N>          = relu<add_prev1<block<N,1, tag1<SUBNET>>>>
    ares_down<N>     = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,2, tag1<SUBNET>>>>>>>
    anet = loss_metric<fc_no_bias<128, avg_pool_everything<
             ares_down<256> <ares<256> ares<256> ares_down<256>> <ares<128> ares<128> ares_down<128>>
             <ares<64> x3, ares_down<64>> <ares<32> x3>
             max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import AddPrev, Affine, Conv, Dense, Op, Pool, Relu, Skip, Tag
from .reader import Reader

DESCRIPTOR_SIZE = 128
CHIP_SIZE = 150


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


def _pad_default(size: int, stride: int) -> int:
    return 0 if stride != 1 else size // 2


def _read_con(r: Reader, spec: _Spec, cin: int) -> Conv:
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
    return Conv(np.ascontiguousarray(w), flat[n_w:].copy(), (nr, nc), (sy, sx),
                 (_pad_default(nr, sy), _pad_default(nc, sx)))  # fmt: skip


def _read_affine(r: Reader, channels: int) -> Affine:
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
    return Affine(flat[:channels].copy(), flat[channels:].copy())


def _read_pool(r: Reader, spec: _Spec) -> Pool:
    nr, nc, sy, sx = spec.args
    average = spec.kind == "avg_pool"
    r.expect_string("avg_pool_2" if average else "max_pool_2", "layer name")
    for expected, what, nbytes in ((nr, "nr", 8), (nc, "nc", 8), (sy, "stride_y", 4), (sx, "stride_x", 4),
                                   (_pad_default(nr, sy), "padding_y", 4),
                                   (_pad_default(nc, sx), "padding_x", 4)):  # fmt: skip
        r.expect_int(expected, what, nbytes)
    return Pool(average, (nr, nc), (sy, sx), (_pad_default(nr, sy), _pad_default(nc, sx)))


def _read_fc(r: Reader, spec: _Spec, num_inputs: int) -> Dense:
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
    return Dense(np.ascontiguousarray(params.reshape(num_inputs, n_out)))


def _read_layer_tail(r: Reader, version: int) -> None:
    """What ``add_layer`` writes after the layer details (state and scratch tensors, unused here)."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.boolean(what)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if version == 2:
        r.tensor("params_grad")


def parse(data: bytes) -> tuple[np.ndarray, list[Op], dict[str, float]]:
    """The input's channel means, the ops (input side first, affines and ReLUs fused) and the loss's parameters
    from a weights file's bytes; the model loads with it."""
    r = Reader(data)
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
    ops: list[Op] = []
    shapes: dict[int, tuple[int, int, int]] = {}  # tag id -> (h, w, c) of the tagged output
    for depth in range(len(specs) - 1, -1, -1):
        spec = specs[depth]
        r.where = f"layer {depth} ({spec.kind})"
        if spec.kind == "tag":
            shapes[spec.args[0]] = (h, w, c)
            ops.append(Tag(spec.args[0]))
            continue
        if spec.kind == "skip":
            if spec.args[0] not in shapes:
                r.fail(f"skip{spec.args[0]} without a tag{spec.args[0]} below it")
            h, w, c = shapes[spec.args[0]]
            ops.append(Skip(spec.args[0]))
            continue
        op: Op
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
            op = Relu()
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
            op = AddPrev(spec.args[0])
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


def _fuse(ops: list[Op]) -> list[Op]:
    """Fold each affine into the convolution right below it and a following ReLU into that."""
    out: list[Op] = []
    for op in ops:
        prev = out[-1] if out else None
        if isinstance(op, Affine) and isinstance(prev, Conv) and not prev.relu:
            prev.weights = np.ascontiguousarray(prev.weights * op.gamma[None, :], dtype=np.float32)
            prev.bias = (prev.bias * op.gamma + op.beta).astype(np.float32)
        elif isinstance(op, Relu) and isinstance(prev, Conv):
            prev.relu = True
        else:
            out.append(op)
    return out
