"""Write a quantised export Graph as a .tflite flatbuffer, without TensorFlow.

Uses the schema bindings shipped in the ``tflite-micro`` package (object API: ModelT, SubGraphT,
OperatorT, TensorT, ...). Buffer 0 is the empty sentinel buffer TFLite requires; every constant gets
its own buffer; activations have none.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

from audio_nas.errors import ExportError
from audio_nas.export.graph import SUPPORTED_OPS, Graph

ACT = {
    "none": S.ActivationFunctionType.NONE,
    "relu": S.ActivationFunctionType.RELU,
    "relu6": S.ActivationFunctionType.RELU6,
}
BUILTIN = {name: getattr(S.BuiltinOperator, name) for name in SUPPORTED_OPS}


def pack_int4(values: np.ndarray) -> np.ndarray:
    """int4 values (int8 array in [-8, 7], C order) -> bytes, two per byte, the first in the low nibble.

    This is the layout TFLM's ``tensor_utils::UnpackDenseInt4IntoInt8`` reads (element 2i from the low
    nibble of byte i, 2i+1 from the high nibble, sign-extended; an odd count leaves the last high nibble 0).
    """
    v = np.asarray(values, np.int8).ravel()
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ExportError(f"int4 values must lie in [-8, 7], got [{v.min()}, {v.max()}]")
    nib = (v.astype(np.int16) & 0xF).astype(np.uint8)
    if nib.size % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, count: int) -> np.ndarray:
    """Inverse of ``pack_int4``: ``count`` sign-extended int4 values as int8."""
    b = np.asarray(packed, np.uint8)
    lo = ((b & 0xF).astype(np.int16) ^ 8) - 8
    hi = ((b >> 4).astype(np.int16) ^ 8) - 8
    return np.stack([lo, hi], axis=1).ravel()[:count].astype(np.int8)


def _qparams(scale, zero_point, dim: int = 0):
    q = S.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = dim
    return q


def _options(op) -> tuple[int, object]:
    o = op.options
    if op.kind == "CONV_2D":
        opt = S.Conv2DOptionsT()
        opt.padding, opt.strideH, opt.strideW = S.Padding.SAME, o["stride"][0], o["stride"][1]
        opt.dilationHFactor = opt.dilationWFactor = 1
        opt.fusedActivationFunction = ACT[o["act"]]
        return S.BuiltinOptions.Conv2DOptions, opt
    if op.kind == "DEPTHWISE_CONV_2D":
        opt = S.DepthwiseConv2DOptionsT()
        opt.padding, opt.strideH, opt.strideW = S.Padding.SAME, o["stride"][0], o["stride"][1]
        opt.depthMultiplier = 1
        opt.dilationHFactor = opt.dilationWFactor = 1
        opt.fusedActivationFunction = ACT[o["act"]]
        return S.BuiltinOptions.DepthwiseConv2DOptions, opt
    if op.kind == "FULLY_CONNECTED":
        opt = S.FullyConnectedOptionsT()
        opt.fusedActivationFunction = ACT[o["act"]]
        return S.BuiltinOptions.FullyConnectedOptions, opt
    if op.kind == "ADD":
        opt = S.AddOptionsT()
        opt.fusedActivationFunction = ACT[o["act"]]
        return S.BuiltinOptions.AddOptions, opt
    if op.kind == "AVERAGE_POOL_2D":
        opt = S.Pool2DOptionsT()
        opt.padding, opt.strideH, opt.strideW = S.Padding.VALID, 1, 1
        opt.filterHeight, opt.filterWidth = o["filter"]
        opt.fusedActivationFunction = S.ActivationFunctionType.NONE
        return S.BuiltinOptions.Pool2DOptions, opt
    if op.kind == "RESHAPE":
        opt = S.ReshapeOptionsT()
        opt.newShape = list(o["shape"])
        return S.BuiltinOptions.ReshapeOptions, opt
    if op.kind == "HARD_SWISH":
        return S.BuiltinOptions.HardSwishOptions, S.HardSwishOptionsT()
    if op.kind == "BATCH_MATMUL":
        opt = S.BatchMatMulOptionsT()
        opt.adjX, opt.adjY, opt.asymmetricQuantizeInputs = False, bool(o["adj_y"]), False
        return S.BuiltinOptions.BatchMatMulOptions, opt
    if op.kind == "SOFTMAX":
        opt = S.SoftmaxOptionsT()
        opt.beta = 1.0
        return S.BuiltinOptions.SoftmaxOptions, opt
    raise ExportError(f"op {op.kind} cannot be written; TFLM ops written: {', '.join(SUPPORTED_OPS)}")


def write_tflite(g: Graph, description: str = "audio-nas") -> bytes:
    unsupported = [op.kind for op in g.ops if op.kind not in BUILTIN]
    if unsupported:
        raise ExportError(
            f"op {unsupported[0]} is not a TFLM builtin this exporter writes ({', '.join(SUPPORTED_OPS)})"
        )
    model = S.ModelT()
    model.version = 3
    model.description = description
    model.buffers = [S.BufferT()]
    kinds = sorted({op.kind for op in g.ops})
    model.operatorCodes = []
    for k in kinds:
        oc = S.OperatorCodeT()
        oc.builtinCode = BUILTIN[k]
        oc.deprecatedBuiltinCode = min(BUILTIN[k], 127)
        oc.version = 1
        model.operatorCodes.append(oc)
    sub = S.SubGraphT()
    sub.name = "main"
    sub.tensors = []
    for t in g.tensors:
        tt = S.TensorT()
        tt.name = t.name
        tt.shape = list(t.shape)
        if t.q is not None:
            buf = S.BufferT()
            if t.q.dtype == np.int8 and t.bits == 4:
                tt.type = S.TensorType.INT4
                buf.data = pack_int4(t.q)
            else:
                tt.type = S.TensorType.INT32 if t.q.dtype == np.int32 else S.TensorType.INT8
                buf.data = np.frombuffer(np.ascontiguousarray(t.q).tobytes(), np.uint8)
            model.buffers.append(buf)
            tt.buffer = len(model.buffers) - 1
            dim = (
                3
                if (
                    t.q.dtype == np.int8
                    and len(t.shape) == 4
                    and t.shape[0] == 1
                    and len(np.atleast_1d(t.scale)) > 1
                )
                else 0
            )
            tt.quantization = _qparams(t.scale, t.zero_point, dim)
        else:
            if t.scale is None:
                raise ExportError(f"tensor {t.name} was not quantised; call quantize_graph first")
            tt.type = S.TensorType.INT8
            tt.buffer = 0
            tt.quantization = _qparams(t.scale, t.zero_point)
        sub.tensors.append(tt)
    sub.operators = []
    for op in g.ops:
        o = S.OperatorT()
        o.opcodeIndex = kinds.index(op.kind)
        o.inputs = list(op.inputs)
        if op.kind == "RESHAPE":  # explicit int32 shape input, as converters emit
            st = S.TensorT()
            st.name, st.shape, st.type = f"{op.name}/shape", [len(op.options["shape"])], S.TensorType.INT32
            buf = S.BufferT()
            buf.data = np.frombuffer(np.array(op.options["shape"], np.int32).tobytes(), np.uint8)
            model.buffers.append(buf)
            st.buffer = len(model.buffers) - 1
            sub.tensors.append(st)
            o.inputs.append(len(sub.tensors) - 1)
        o.outputs = list(op.outputs)
        o.builtinOptionsType, o.builtinOptions = _options(op)
        sub.operators.append(o)
    sub.inputs, sub.outputs = [g.input], [g.output]
    model.subgraphs = [sub]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
