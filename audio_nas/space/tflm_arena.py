"""TFLM's tensor arena for a spec's int8 model, computed from the spec alone (no torch, no TFLM).

TFLM (``MicroInterpreter::AllocateTensors``) fills one arena from both ends:

- the **head** holds every non-constant tensor, laid out by ``GreedyMemoryPlanner``: a tensor lives from
  the op that writes it to the last op that reads it (the graph input from 0, the output to the end),
  sizes are rounded up to 16 bytes, and buffers are placed largest first (ties: the later tensor first)
  at the lowest offset that does not overlap a buffer alive at the same time. RESHAPE gets its own buffer;
  nothing is aliased.
- the **tail** holds persistent allocations, each aligned *down* from the end of the arena, in the order
  TFLM makes them: the allocator objects themselves, one ``TfLiteEvalTensor`` per tensor, the
  ``NodeAndRegistration`` array, each op's parsed builtin options, each kernel's OpData (``Init``, 16-byte
  aligned), what ``Prepare`` allocates (per-channel multiplier and shift arrays for CONV_2D,
  DEPTHWISE_CONV_2D and per-channel FULLY_CONNECTED; BATCH_MATMUL's quantisation data and, when the
  right operand is not already transposed, a transposed copy of it), and finally the persistent
  ``TfLiteTensor`` (plus quantisation) of the model input and output.

The smallest arena TFLM accepts is the larger of (head + tail) at the end and what the memory planner
needs while it plans (its scratch space for every buffer is taken from between head and tail), rounded
up to 16 bytes. Struct sizes differ between builds, so they come from a ``TflmLayout``:

- ``HOST_LAYOUT``: the ``tflite_micro`` Python wheel on x86-64 (8-byte pointers, 4-byte enums, built
  with ``USE_TFLM_COMPRESSION``, the ``RecordingMicroAllocator`` its ``Interpreter`` uses). Checked bit
  for bit against ``audio_nas.export.tflm_arena_bytes`` (tests/space/test_tflm_arena.py,
  ``audio-nas bench arena``).
- ``CORTEX_M_LAYOUT``: the firmware's build for Cortex-M (4-byte pointers, arm-none-eabi's short enums,
  no compression, the plain ``MicroAllocator``), reference kernels. Sizes are ``sizeof``/``alignof``
  of the same TFLM structs compiled with ``arm-none-eabi-g++ -mcpu=cortex-m4`` (see docs/benchmarks.md),
  and ``used_bytes`` equals ``arena_used_bytes()`` of TFLM built that way and run on the emulated
  Cortex-M4 (QEMU mps2-an386; ``AUDIO_NAS_ARENA_ELF=... audio-nas bench arena``). This is the one the
  board costs use. CMSIS-NN kernels have other OpData and request scratch buffers: not modelled here.

int4 weights (a block's ``_w4``; see ``_int4_scratch`` at the end of Prepare's replay): the reference CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels unpack int4 weights into an int8 scratch buffer of the filter's
element count before every Eval (``RequestScratchBufferInArena`` in Prepare). A scratch buffer is planned with
the activations (alive during its op only), its request sits in the head while the model prepares (the head
grows to ``ScratchBufferRequest`` x (requests so far + 12) after each op), and one ``ScratchBufferHandle``
(a pointer) per request is a persistent allocation. An int4 FULLY_CONNECTED is per-tensor (TFLM refuses
per-channel int4 there), so it allocates no per-channel multiplier arrays.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from audio_nas.space.plan import LayerCost, numel, plan_layers
from audio_nas.space.spec import ArchSpec

ARENA_ALIGN = 16  # MicroArenaBufferAlignment()
PLANNER_BYTES_PER_BUFFER = 40  # GreedyMemoryPlanner: BufferRequirements 16 + ListEntry 12 + three int arrays
MAX_SCRATCH_BUFFERS_PER_OP = 12  # kMaxScratchBuffersPerOp


@dataclass(frozen=True)
class TflmLayout:
    """(size, alignment) of what TFLM puts in the arena, for one build of TFLM."""

    name: str
    pointer_bytes: int
    allocator_objects: tuple[tuple[int, int], ...]  # created in the arena's tail before anything else
    builtin_data_allocator: tuple[int, int]
    subgraph_allocations: tuple[int, int]
    eval_tensor: tuple[int, int]
    node_and_registration: tuple[int, int]
    tflite_tensor: tuple[int, int]
    affine_quantization: tuple[int, int]
    scratch_request: tuple[int, int]
    allocation_info: tuple[int, int]
    size_t: tuple[int, int]
    builtin_params: dict[str, tuple[int, int]]  # per TFLite op: its parsed options struct (none: nothing)
    op_data: dict[str, int]  # per TFLite op: what Init allocates (16-byte aligned); absent: nothing


_PARAMS_COMMON = {
    "CONV_2D": (28, 4),  # TfLiteConvParams
    "DEPTHWISE_CONV_2D": (28, 4),  # TfLiteDepthwiseConvParams
    "AVERAGE_POOL_2D": (40, 4),  # TfLitePoolParams
    "RESHAPE": (36, 4),  # TfLiteReshapeParams
    "SOFTMAX": (4, 4),  # TfLiteSoftmaxParams
    "BATCH_MATMUL": (3, 1),  # TfLiteBatchMatMulParams
}

HOST_LAYOUT = TflmLayout(
    name="host (tflite_micro wheel, x86-64)",
    pointer_bytes=8,
    # RecordingSingleArenaBufferAllocator, GreedyMemoryPlanner, RecordingMicroAllocator: 104, 72 and 272
    # bytes compiled from the TFLM source; the wheel's objects take 16 bytes more (measured: every model's
    # tail is 16 bytes over the sum of the rest, whatever its ops), counted with the last one
    allocator_objects=((104, 8), (72, 8), (272 + 16, 8)),
    builtin_data_allocator=(16, 8),
    subgraph_allocations=(24, 8),  # with USE_TFLM_COMPRESSION's CompressedTensorList
    eval_tensor=(24, 8),
    node_and_registration=(64, 8),
    tflite_tensor=(64, 8),
    affine_quantization=(24, 8),
    scratch_request=(16, 8),
    allocation_info=(32, 8),
    size_t=(8, 8),
    builtin_params={**_PARAMS_COMMON, "FULLY_CONNECTED": (16, 4), "ADD": (8, 4)},
    op_data={
        "CONV_2D": 80,  # OpDataConv with the compression scratch indices
        "DEPTHWISE_CONV_2D": 80,
        "FULLY_CONNECTED": 72,
        "ADD": 60,
        "AVERAGE_POOL_2D": 32,
        "HARD_SWISH": 20,
        "SOFTMAX": 80,  # SoftmaxParams
        "BATCH_MATMUL": 32,
    },
)

CORTEX_M_LAYOUT = TflmLayout(
    name="Cortex-M (arm-none-eabi, firmware build)",
    pointer_bytes=4,
    # SingleArenaBufferAllocator, GreedyMemoryPlanner, MicroAllocator
    allocator_objects=((36, 4), (44, 4), (36, 4)),
    builtin_data_allocator=(8, 4),
    subgraph_allocations=(8, 4),
    eval_tensor=(12, 4),
    node_and_registration=(32, 4),
    tflite_tensor=(32, 4),
    affine_quantization=(12, 4),
    scratch_request=(12, 4),
    allocation_info=(24, 4),
    size_t=(4, 4),
    builtin_params={**_PARAMS_COMMON, "FULLY_CONNECTED": (5, 1), "ADD": (2, 1)},  # short enums
    op_data={
        "CONV_2D": 56,
        "DEPTHWISE_CONV_2D": 56,
        "FULLY_CONNECTED": 48,
        "ADD": 60,
        "AVERAGE_POOL_2D": 32,
        "HARD_SWISH": 20,
        "SOFTMAX": 56,
        "BATCH_MATMUL": 16,
    },
)

LAYOUTS = {8: HOST_LAYOUT, 4: CORTEX_M_LAYOUT}


# --------------------------------------------------------------------------------------
# The TFLite graph the exporter writes, derived from the layer plan
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TfliteOp:
    kind: str  # TFLite builtin name
    name: str
    inputs: tuple[int, ...]  # activation tensor ids (constants are not listed)
    output: int
    channels: int = 0  # per-channel quantised output channels (conv, depthwise, fully connected)
    adj_y: bool = False  # BATCH_MATMUL
    rhs_shape: tuple[int, ...] = ()  # BATCH_MATMUL right operand
    weight_bits: int = 8  # conv / depthwise / fully connected: 4 = int4 weights (an int8 scratch at Eval)
    weight_count: int = 0  # elements of the weight tensor (the int4 scratch buffer's bytes)


@dataclass(frozen=True)
class TfliteGraph:
    ops: tuple[TfliteOp, ...]
    activation_shapes: tuple[tuple[int, ...], ...]  # by activation tensor id (0 = model input)
    n_tensors: int  # all tensors of the flatbuffer: activations, weights, biases, RESHAPE shape constants

    @property
    def op_kinds(self) -> list[str]:
        return sorted({op.kind for op in self.ops})


_KINDS = {
    "conv2d": "CONV_2D",
    "depthwise_conv2d": "DEPTHWISE_CONV_2D",
    "fully_connected": "FULLY_CONNECTED",
    "add": "ADD",
    "reshape": "RESHAPE",
    "hard_swish": "HARD_SWISH",
    "softmax": "SOFTMAX",
    "batch_matmul": "BATCH_MATMUL",
}


def tflite_graph(layers: list[LayerCost] | ArchSpec) -> TfliteGraph:
    """The ops and tensors ``audio_nas.export`` writes for this layer plan (or spec), in the same order.

    The exporter lowers the global average pool to AVERAGE_POOL_2D + RESHAPE, gives every RESHAPE an int32
    shape constant and every conv / fully connected layer a weight and a bias constant.
    """
    if isinstance(layers, ArchSpec):
        layers = plan_layers(layers)
    shapes: list[tuple[int, ...]] = [tuple(layers[0].in_shape)] if layers else []
    ids = {layers[0].inputs[0]: 0} if layers else {}
    ops: list[TfliteOp] = []
    n_consts = 0

    def new(shape: tuple[int, ...]) -> int:
        shapes.append(tuple(shape))
        return len(shapes) - 1

    for layer in layers:
        ins = tuple(ids[t] for t in layer.inputs)
        if layer.op == "mean":
            pooled = new((1, 1, 1, layer.in_shape[-1]))
            ops.append(TfliteOp("AVERAGE_POOL_2D", layer.name, ins, pooled))
            out = new(layer.out_shape)
            ops.append(TfliteOp("RESHAPE", f"{layer.name}_reshape", (pooled,), out))
            n_consts += 1
        elif layer.op in ("conv2d", "depthwise_conv2d", "fully_connected"):
            n_consts += 2
            out = new(layer.out_shape)
            ch = layer.out_shape[-1]
            ops.append(
                TfliteOp(
                    _KINDS[layer.op],
                    layer.name,
                    ins,
                    out,
                    channels=ch,
                    weight_bits=layer.weight_bits,
                    weight_count=layer.params - ch,
                )
            )
        elif layer.op == "batch_matmul":
            out = new(layer.out_shape)
            adj_y = layer.name.endswith(".qk")  # Q K^T reads K as stored; P V transposes V in Prepare
            rhs = shapes[ins[1]]
            ops.append(TfliteOp("BATCH_MATMUL", layer.name, ins, out, adj_y=adj_y, rhs_shape=rhs))
        elif layer.op in _KINDS:
            out = new(layer.out_shape)
            ops.append(TfliteOp(_KINDS[layer.op], layer.name, ins, out))
            n_consts += layer.op == "reshape"
        else:
            raise ValueError(f"layer {layer.name}: op {layer.op} has no TFLite lowering")
        ids[layer.output] = out
    return TfliteGraph(tuple(ops), tuple(shapes), len(shapes) + n_consts)


# --------------------------------------------------------------------------------------
# GreedyMemoryPlanner
# --------------------------------------------------------------------------------------


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def buffer_lifetimes(graph: TfliteGraph) -> list[tuple[int, int, int]]:
    """(aligned bytes, first, last) per activation tensor, as TFLM's AllocationInfoBuilder marks them."""
    n_ops = len(graph.ops)
    first = [0] + [-1] * (len(graph.activation_shapes) - 1)
    last = [0] * len(graph.activation_shapes)
    for i, op in enumerate(graph.ops, start=1):
        first[op.output] = i
        for t in op.inputs:
            last[t] = i
        last[op.output] = max(last[op.output], i)
    out = graph.ops[-1].output if graph.ops else 0
    last[out] = n_ops
    return [(_align(numel(s), ARENA_ALIGN), first[t], last[t]) for t, s in enumerate(graph.activation_shapes)]


def greedy_plan(buffers: list[tuple[int, int, int]]) -> tuple[int, list[int]]:
    """GreedyMemoryPlanner's layout of (size, first, last) buffers: (arena head bytes, offset per buffer).

    Largest first (a stable descending sort of the buffers listed in reverse, so equal sizes go later
    buffer first); each goes at the lowest offset that leaves room below the next buffer alive at an
    overlapping time, walking the placed buffers in offset order (ties: in placement order).
    """
    if not buffers:
        return 0, []
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], -i))
    offsets = [-1] * len(buffers)
    placed: list[tuple[int, int, int]] = []  # (offset, placement index, buffer id), sorted by offset
    for rank, b in enumerate(order):
        size, first, last = buffers[b]
        candidate = 0
        for off, _, other in placed:
            _, f2, l2 = buffers[other]
            if f2 > last or first > l2:
                continue
            if off - candidate >= size:
                break
            candidate = max(candidate, off + buffers[other][0])
        offsets[b] = candidate
        bisect.insort(placed, (candidate, rank, b))
    return max(offsets[i] + buffers[i][0] for i in range(len(buffers))), offsets


# --------------------------------------------------------------------------------------
# The tail
# --------------------------------------------------------------------------------------


class _Arena:
    """Replays TFLM's allocations; ``need`` = the smallest arena in which none of them has failed so far.

    Offsets count from the arena's 16-byte aligned ends: ``tail`` bytes used from the end (persistent
    allocations, aligned down), ``head`` bytes reserved from the start, ``temp`` the end of temporary
    allocations above the head (TFLM frees them only after each op's Prepare). A persistent allocation
    fails when it would cross ``head``; a temporary one when it would cross the tail.
    """

    def __init__(self, layout: TflmLayout) -> None:
        self.lay = layout
        self.tail = 0
        self.head = 0
        self.temp = 0
        self.need = 0

    def persistent(self, size: int, align: int = ARENA_ALIGN) -> None:
        self.tail = _align(self.tail + size, align)
        self.need = max(self.need, self.head + self.tail)

    def temporary(self, size: int, align: int) -> None:
        self.temp = _align(self.temp, align) + size
        self.need = max(self.need, self.temp + self.tail)

    def temp_tensor(self, channels: int | None) -> None:
        """AllocateTempInput/OutputTensor: a TfLiteTensor, and its quantisation if it has one."""
        self.temporary(*self.lay.tflite_tensor)
        if channels:
            self.temporary(*self.lay.affine_quantization)
            self.temporary(4 + 4 * channels, 4)  # zero points, a TfLiteIntArray

    def reset_temp(self) -> None:
        self.temp = self.head


def _prepare(arena: _Arena, op: TfliteOp, rhs_rank: int) -> None:
    """The allocations of one op's Prepare in TFLM's reference kernels, in their order."""
    t, ch = arena.temp_tensor, op.channels
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        t(1), t(1), t(ch)  # output, input, filter
        arena.persistent(4 * ch)  # per-channel output multipliers
        arena.persistent(4 * ch)  # and shifts
        t(1), t(ch), t(ch), t(1)  # CalculateOpData: input, filter, bias, output
    elif op.kind == "FULLY_CONNECTED":
        if op.weight_bits == 4:  # per-tensor: one scale on the weights and the bias
            ch = 1
        t(1), t(ch), t(ch), t(1)
        if ch > 1:  # per-channel weights (the exporter writes one scale per output)
            arena.persistent(4 * ch)
            arena.persistent(4 * ch)
    elif op.kind in ("ADD", "BATCH_MATMUL"):
        t(1), t(1), t(1)
        if op.kind == "BATCH_MATMUL":
            arena.persistent(28)  # QuantizationOpDataBatchMatmul
            if not op.adj_y:  # a transposed copy of the right operand
                arena.persistent(arena.lay.eval_tensor[0])
                arena.persistent(4 + 4 * rhs_rank)  # its dims
                arena.persistent(numel(op.rhs_shape))
            arena.persistent(4 + 4 * 3)  # a writable copy of the output's dims (ReshapeOutputTensor)
    else:  # AVERAGE_POOL_2D, RESHAPE, HARD_SWISH, SOFTMAX: input and output
        t(1), t(1)


def _int4_scratch(arena: _Arena, op: TfliteOp, index: int, scratch: list[tuple[int, int, int]]) -> None:
    """int4 weights: Prepare requests an int8 scratch buffer of the filter's size (planned with the
    activations, alive during op ``index`` only); FinishPrepareNodeAllocations then resizes the head's request
    list to hold every request so far plus kMaxScratchBuffersPerOp more."""
    if op.weight_bits != 4 or op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return
    scratch.append((_align(op.weight_count, ARENA_ALIGN), index, index))
    size, align = arena.lay.scratch_request
    arena.head = max(arena.head, _align(size * (len(scratch) + MAX_SCRATCH_BUFFERS_PER_OP), align))
    arena.need = max(arena.need, arena.head + arena.tail)


@dataclass(frozen=True)
class TflmArena:
    arena_bytes: int  # the smallest 16-byte multiple TFLM accepts (what to allocate)
    head_bytes: int  # the memory plan of the activations
    tail_bytes: int  # persistent allocations
    planning_bytes: int  # what the arena must hold while the planner runs
    layout: str

    @property
    def used_bytes(self) -> int:
        """``MicroInterpreter::arena_used_bytes()`` after AllocateTensors."""
        return self.head_bytes + self.tail_bytes


def tflm_arena(
    spec_or_graph: ArchSpec | TfliteGraph, *, pointer_bytes: int = 4, layers: list[LayerCost] | None = None
) -> TflmArena:
    """TFLM's arena for the exported int8 model; ``pointer_bytes`` 8 = the host wheel, 4 = Cortex-M.

    ``layers``: the spec's layer plan when the caller has it already (saves recomputing it).
    """
    if pointer_bytes not in LAYOUTS:
        raise ValueError(f"pointer_bytes must be 4 (Cortex-M) or 8 (x86-64 host), got {pointer_bytes}")
    lay = LAYOUTS[pointer_bytes]
    if isinstance(spec_or_graph, TfliteGraph):
        g = spec_or_graph
    else:
        g = tflite_graph(layers if layers is not None else plan_layers(spec_or_graph))
    ar = _Arena(lay)
    for size, align in lay.allocator_objects:
        ar.persistent(size, align)
    # StartModelAllocation: the builtin-data allocator, the scratch-request list (resizable, at the head),
    # the subgraph record, one TfLiteEvalTensor per tensor, the node array
    ar.persistent(*lay.builtin_data_allocator)
    ar.head = ar.temp = _align(lay.scratch_request[0] * MAX_SCRATCH_BUFFERS_PER_OP, lay.scratch_request[1])
    ar.persistent(*lay.subgraph_allocations)
    ar.persistent(lay.eval_tensor[0] * g.n_tensors, lay.eval_tensor[1])
    ar.persistent(lay.node_and_registration[0] * len(g.ops), lay.node_and_registration[1])
    # builtin options parsed for every op, then every kernel's Init, then every Prepare
    for op in g.ops:
        if op.kind in lay.builtin_params:
            ar.persistent(*lay.builtin_params[op.kind])
    for op in g.ops:
        if op.kind in lay.op_data:
            ar.persistent(lay.op_data[op.kind])
    scratch: list[tuple[int, int, int]] = []  # int4 weights' unpacking buffers: (aligned bytes, first, last)
    for i, op in enumerate(g.ops, start=1):
        _prepare(ar, op, len(op.rhs_shape))
        _int4_scratch(ar, op, i, scratch)
        ar.reset_temp()
    if scratch:  # FinishModelAllocation: one ScratchBufferHandle (a pointer) per request, persistent
        ar.persistent(lay.pointer_bytes * len(scratch), lay.pointer_bytes)
    # CommitStaticMemoryPlan: allocation info (temporary), then the planner takes everything left
    # between it and the tail (16-byte aligned at both ends) and needs 40 bytes per buffer
    buffers = buffer_lifetimes(g) + scratch
    ar.temporary(*lay.size_t)  # subgraph offsets
    ar.temporary(lay.allocation_info[0] * (g.n_tensors + len(scratch)), lay.allocation_info[1])
    planning = (
        _align(ar.temp, ARENA_ALIGN) + PLANNER_BYTES_PER_BUFFER * len(buffers) + _align(ar.tail, ARENA_ALIGN)
    )
    ar.need = max(ar.need, planning)
    head, _ = greedy_plan(buffers)
    ar.head = ar.temp = head
    ar.need = max(ar.need, head + ar.tail)
    # the interpreter's input and output: a pointer array, a persistent TfLiteTensor, its quantisation
    for _ in range(2):
        ar.persistent(lay.pointer_bytes)
        ar.persistent(*lay.tflite_tensor)
        ar.persistent(*lay.affine_quantization)
        ar.persistent(8, 4)  # zero-point TfLiteIntArray of one channel
    return TflmArena(
        arena_bytes=_align(ar.need, ARENA_ALIGN),
        head_bytes=head,
        tail_bytes=ar.tail,
        planning_bytes=planning,
        layout=lay.name,
    )
