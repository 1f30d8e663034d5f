"""Analytic costs of an ArchSpec, derived from its layer plan (never from hand-kept tables).

- params: torch's trainable parameter count of the training module (BN included), and the
  deployed count (BN folded into conv bias: weights + one int32 bias per output channel).
- MACs by op type (conv2d, depthwise_conv2d, fully_connected, batch_matmul).
- peak activation RAM under a TFLM-like plan: a tensor lives from the op that writes it
  to the last op that reads it (RESHAPE aliases its input); the peak is the largest sum
  of live int8 tensors at any op. TFLM's greedy planner can only do worse (fragmentation),
  so the exporter replaces this with TFLM's own arena figure where both exist.
- flash: int8 weights + int32 biases + per-channel quantisation params + flatbuffer overhead.
- ACE (PokeBNN, Zhang et al. 2022): sum over MACs of weight bits x activation bits.
- ACEv2 (PikeLPN, 2024): ACE plus the elementwise work int8 inference really does. We count
  each elementwise op of the layer plan (bias add, requantisation multiply/shift/offset,
  clamp, residual rescale) at 32 x 8 bit-operations: a 32-bit fixed-point multiplier times an
  8-bit-range value, which is how PikeLPN charges requantisation. Constants below.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from audio_nas.space.plan import ALIAS_OPS, MAC_OPS, LayerCost, numel
from audio_nas.space.spec import ArchSpec

ELEMENTWISE_BITOPS = 32 * 8  # ACEv2 weight of one elementwise op in int8 inference
FLATBUFFER_FIXED_BYTES = 1200  # model header, subgraph, buffers table (measured on exported models)
FLATBUFFER_PER_OP_BYTES = 160  # operator + tensor tables + options per op
PER_CHANNEL_QPARAM_BYTES = 12  # float32 scale + int64 zero point per output channel


@dataclass(frozen=True)
class ArchCosts:
    params: int  # torch trainable parameters (BN weight/bias included)
    deployed_params: int  # BN folded
    macs: int
    macs_by_op: dict[str, int]
    peak_ram_bytes: int  # activations only, int8
    peak_ram_layer: str
    frontend_ram_bytes: int
    flash_bytes: int  # model flatbuffer estimate
    ace: int
    ace_v2: int
    layers: tuple[LayerCost, ...] = field(repr=False)

    @property
    def total_ram_bytes(self) -> int:
        return self.peak_ram_bytes + self.frontend_ram_bytes


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


@contextlib.contextmanager
def _no_weight_init():
    """Costs need shapes, not values: skip the (slow) random initialisation while building."""
    from torch import nn

    classes = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    saved = {cls: cls.reset_parameters for cls in classes}
    try:
        for cls in classes:
            cls.reset_parameters = lambda self: None
        yield
    finally:
        for cls, fn in saved.items():
            cls.reset_parameters = fn


def arch_costs(spec: ArchSpec, *, weight_bits: int = 8, act_bits: int = 8) -> ArchCosts:
    from audio_nas.space.builder import build_model

    with _no_weight_init():
        model = build_model(spec)
    layers = model.layer_plan()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    macs_by_op: dict[str, int] = {}
    for layer in layers:
        if layer.op in MAC_OPS:
            macs_by_op[layer.op] = macs_by_op.get(layer.op, 0) + layer.macs
    macs = sum(macs_by_op.values())
    deployed = sum(layer.params for layer in layers)
    t, f = spec.input_shape
    peak, where = peak_activation_bytes(layers, (1, t, f, 1))
    weight_bytes = sum(
        (layer.params - layer.out_shape[-1]) * weight_bits // 8 + 4 * layer.out_shape[-1]
        for layer in layers
        if layer.op in ("conv2d", "depthwise_conv2d", "fully_connected")
    )
    qparam_bytes = sum(
        PER_CHANNEL_QPARAM_BYTES * layer.out_shape[-1]
        for layer in layers
        if layer.op in ("conv2d", "depthwise_conv2d")
    )
    flash = FLATBUFFER_FIXED_BYTES + FLATBUFFER_PER_OP_BYTES * len(layers) + weight_bytes + qparam_bytes
    ace = macs * weight_bits * act_bits
    ace_v2 = ace + ELEMENTWISE_BITOPS * sum(layer.elementwise_ops for layer in layers)
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
        layers=tuple(layers),
    )


def _frontend_ram(spec: ArchSpec) -> int:
    """Front-end buffers, from the front-end cost model when present."""
    try:
        from audio_nas.features.cost import frontend_cost
    except ImportError:
        fe = spec.frontend
        # audio window (int16) + FFT buffer (int32 complex) + feature history (int8)
        return 2 * fe.window_samples + 8 * fe.n_fft_effective + fe.n_frames * fe.n_bins
    return int(frontend_cost(spec.frontend).ram_bytes)
