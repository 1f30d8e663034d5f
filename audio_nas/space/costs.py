"""Analytic costs of an ArchSpec, derived from its layer plan (never from hand-kept tables).

- params: torch's trainable parameter count of the training module (BN included), and the
  deployed count (BN folded into conv bias: weights + one int32 bias per output channel). Both are
  counted from the layer plan (``plan.plan_layers``): no torch module is built, so costs are fast and
  thread-safe (tests/space/test_costs.py checks the counts against built modules).
- MACs by op type (conv2d, depthwise_conv2d, fully_connected, batch_matmul).
- arena_bytes: TFLM's whole tensor arena for the exported int8 model (``tflm_arena.tflm_arena``: the
  GreedyMemoryPlanner head plus the persistent tail), by default for the Cortex-M firmware build
  (``pointer_bytes=4``); ``pointer_bytes=8`` gives the x86-64 host interpreter's figure, which equals
  ``audio_nas.export.tflm_arena_bytes`` byte for byte. This is the RAM figure to use for a model.
- peak_ram_bytes: an analytic lower bound on the activations alone: a tensor lives from the op that writes
  it to the last op that reads it (RESHAPE aliases its input); the peak is the largest sum of live int8
  tensors at any op. TFLM's arena is always larger (fragmentation, no aliasing, the persistent tail).
- flash: weights at each layer's bit-width (int4 packed two per byte, rounded up to a byte per tensor) +
  int32 biases + per-channel quantisation params + flatbuffer overhead.
- ACE (PokeBNN, Zhang et al. 2022): sum over layers of MACs x weight bits x activation bits (a layer's
  ``weight_bits``: 4 in ``_w4`` blocks; BATCH_MATMUL multiplies two int8 activations: 8 x 8).
- ACEv2 (PikeLPN, 2024): ACE plus the elementwise work int8 inference really does. We count
  each elementwise op of the layer plan (bias add, requantisation multiply/shift/offset,
  clamp, residual rescale) at 32 x 8 bit-operations: a 32-bit fixed-point multiplier times an
  8-bit-range value, which is how PikeLPN charges requantisation. int4 layers add their weights'
  unpacking, which TFLM does on every inference (``UnpackDenseInt4IntoInt8``: a left shift and an
  arithmetic right shift of an 8-bit value per weight, 2 x 8 x 8 bit-operations). Constants below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from audio_nas.features.cost import frontend_cost
from audio_nas.space.plan import ALIAS_OPS, MAC_OPS, LayerCost, numel, plan_layers
from audio_nas.space.spec import ArchSpec
from audio_nas.space.tflm_arena import LAYOUTS, tflm_arena

ELEMENTWISE_BITOPS = 32 * 8  # ACEv2 weight of one elementwise op in int8 inference
INT4_UNPACK_BITOPS_PER_WEIGHT = 2 * 8 * 8  # ACEv2: two 8-bit shifts per int4 weight, every inference
WEIGHT_OPS = ("conv2d", "depthwise_conv2d", "fully_connected")
FLATBUFFER_FIXED_BYTES = 1200  # model header, subgraph, buffers table (measured on exported models)
FLATBUFFER_PER_OP_BYTES = 160  # operator + tensor tables + options per op
PER_CHANNEL_QPARAM_BYTES = 12  # float32 scale + int64 zero point per output channel


@dataclass(frozen=True)
class ArchCosts:
    params: int  # torch trainable parameters (BN weight/bias included)
    deployed_params: int  # BN folded
    macs: int
    macs_by_op: dict[str, int]
    peak_ram_bytes: int  # activations only, int8: an analytic lower bound (see arena_bytes)
    peak_ram_layer: str
    frontend_ram_bytes: int
    flash_bytes: int  # model flatbuffer estimate
    ace: int
    ace_v2: int
    arena_bytes: int  # TFLM's tensor arena (head + persistent tail, 16-byte multiple) for arena_pointer_bytes
    arena_pointer_bytes: int  # 4: the Cortex-M firmware build (board costs); 8: the x86-64 host interpreter
    layers: tuple[LayerCost, ...] = field(repr=False)


def peak_activation_bytes(layers: list[LayerCost], input_shape: tuple[int, ...]) -> tuple[int, str]:
    """Largest sum of live int8 tensors over the ops (see module doc)."""
    # tensor id -> (size, root id) where reshapes alias their input's buffer
    root: dict[int, int] = {}
    size: dict[int, int] = {}
    first_input = layers[0].inputs[0] if layers else 0
    size[first_input] = numel(input_shape)
    root[first_input] = first_input
    last_use: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for t in layer.inputs:
            last_use[root.get(t, t)] = i
        if layer.op in ALIAS_OPS:
            root[layer.output] = root.get(layer.inputs[0], layer.inputs[0])
        else:
            root[layer.output] = layer.output
            size[layer.output] = numel(layer.out_shape)
    born: dict[int, int] = {first_input: -1}
    for i, layer in enumerate(layers):
        if root[layer.output] == layer.output:
            born[layer.output] = i
            last_use.setdefault(layer.output, i)  # the model output lives to the end of its op
    peak, where = 0, ""
    for i, layer in enumerate(layers):
        live = sum(size[t] for t in size if born[t] <= i <= last_use.get(t, born[t]))
        if live > peak:
            peak, where = live, layer.name
    return peak, where


def torch_params(layers: list[LayerCost]) -> int:
    """Trainable parameters of the torch module: conv weights + BatchNorm scale and shift per output channel
    (where the deployed model has one folded bias), linear weights + bias."""
    return sum(
        layer.params + (layer.out_shape[-1] if layer.op in ("conv2d", "depthwise_conv2d") else 0)
        for layer in layers
    )


def arch_costs(
    spec: ArchSpec, *, weight_bits: int | None = None, act_bits: int = 8, pointer_bytes: int = 4
) -> ArchCosts:
    """Costs of ``spec`` from its layer plan alone (no torch). ``pointer_bytes`` picks the TFLM build whose
    arena ``arena_bytes`` reports: 4 = Cortex-M firmware (boards), 8 = the x86-64 host interpreter.

    ``weight_bits``: None = each layer's own (8, or 4 in ``_w4`` blocks); a number overrides every layer's
    weights in flash and ACE (a what-if; the arena follows the spec's own bit-widths)."""
    if pointer_bytes not in LAYOUTS:
        raise ValueError(f"pointer_bytes must be one of {sorted(LAYOUTS)}, got {pointer_bytes}")
    layers = plan_layers(spec)
    params = torch_params(layers)
    macs_by_op: dict[str, int] = {}
    for layer in layers:
        if layer.op in MAC_OPS:
            macs_by_op[layer.op] = macs_by_op.get(layer.op, 0) + layer.macs
    macs = sum(macs_by_op.values())
    deployed = sum(layer.params for layer in layers)
    t, f = spec.input_shape
    peak, where = peak_activation_bytes(layers, (1, t, f, 1))

    def wbits(layer: LayerCost) -> int:
        if layer.op not in WEIGHT_OPS:
            return 8  # BATCH_MATMUL: two int8 activations
        return weight_bits if weight_bits is not None else layer.weight_bits

    weight_bytes = sum(
        -(-(layer.params - layer.out_shape[-1]) * wbits(layer) // 8) + 4 * layer.out_shape[-1]
        for layer in layers
        if layer.op in WEIGHT_OPS
    )
    qparam_bytes = sum(
        PER_CHANNEL_QPARAM_BYTES * layer.out_shape[-1]
        for layer in layers
        if layer.op in ("conv2d", "depthwise_conv2d")
    )
    flash = FLATBUFFER_FIXED_BYTES + FLATBUFFER_PER_OP_BYTES * len(layers) + weight_bytes + qparam_bytes
    ace = sum(layer.macs * wbits(layer) * act_bits for layer in layers if layer.op in MAC_OPS)
    unpacked = sum(layer.params - layer.out_shape[-1] for layer in layers if wbits(layer) == 4)
    ace_v2 = (
        ace
        + ELEMENTWISE_BITOPS * sum(layer.elementwise_ops for layer in layers)
        + INT4_UNPACK_BITOPS_PER_WEIGHT * unpacked
    )
    return ArchCosts(
        params=params,
        deployed_params=deployed,
        macs=macs,
        macs_by_op=macs_by_op,
        peak_ram_bytes=peak,
        peak_ram_layer=where,
        frontend_ram_bytes=_frontend_ram(spec),
        flash_bytes=flash,
        ace=ace,
        ace_v2=ace_v2,
        arena_bytes=tflm_arena(spec, layers=layers, pointer_bytes=pointer_bytes).arena_bytes,
        arena_pointer_bytes=pointer_bytes,
        layers=tuple(layers),
    )


def _frontend_ram(spec: ArchSpec) -> int:
    """Front-end buffers, from the front-end cost model."""
    return int(frontend_cost(spec.frontend).ram_bytes)
