"""Architecture descriptors for accuracy predictors: what a spec *is*, in numbers a regressor can split on.

The strategies' encoding (``space.encode``) is a vector of genes in [0, 1]; a tree model on genes alone
must rediscover depth, width, downsampling and receptive field from their combinations. These descriptors
state them directly, from the ArchSpec and its layer plan (one ArchSpec, derived views): the front-end
(kind, window, hop, feature map), the stem, per-block-type counts and MAC shares, depth, total
downsampling, widths, activations, the head, the receptive field along time and frequency, the final
feature map and the spread of per-layer MACs. On the 1,080-row trained-architecture table they raised the
held-out Kendall tau of the same ExtraTrees from 0.645 (genes + log costs) to 0.685 (the spec-level
descriptors alone), and to 0.721 with the layer-plan ones and the surrogate's boosted level
(docs/benchmarks.md, ``audio-nas bench table surrogate``).
"""

from __future__ import annotations

import math

import numpy as np

from audio_nas.search.table import block_macs, block_type
from audio_nas.space import ArchSpec
from audio_nas.space.plan import MAC_OPS, plan_layers

BLOCK_KINDS = ("ds", "uib_extradw", "uib_ib", "uib_convnext", "uib_ffn", "mqa")
FRONTEND_KINDS = ("logmel", "mfcc", "pcen")
ACTIVATIONS = ("relu", "relu6", "hswish")
_CONV_OPS = ("conv2d", "depthwise_conv2d")  # the layer plan's op names


def _receptive_field(layers: list) -> tuple[float, float, tuple[int, ...]]:
    """Receptive field (time, frequency) in input frames/bins along the conv chain, and the last conv's
    output shape (NHWC). Attention is global and left out: it would make every MQA net's field total."""
    rf_t = rf_f = jump_t = jump_f = 1.0
    last: tuple[int, ...] = (1, 1, 1, 1)
    for layer in layers:
        if layer.op in _CONV_OPS:
            (kh, kw), (sh, sw) = layer.kernel_hw, layer.stride_hw
            rf_t += (kh - 1) * jump_t
            rf_f += (kw - 1) * jump_f
            jump_t *= sh
            jump_f *= sw
            last = tuple(layer.out_shape)
    return rf_t, rf_f, last


def descriptors(spec: ArchSpec) -> np.ndarray:
    fe, stem = spec.frontend, spec.stem
    t_frames, n_bins = fe.output_shape
    out: list[float] = [float(fe.kind == k) for k in FRONTEND_KINDS]
    out += [fe.window_ms, fe.hop_ms, t_frames, n_bins, math.log10(t_frames * n_bins)]
    out += [
        float(stem.kind == "c1d"),
        stem.kernel[0] * stem.kernel[1],
        stem.stride[0] * stem.stride[1],
        stem.channels,
        float(stem.act == "relu"),
    ]
    counts = dict.fromkeys(BLOCK_KINDS, 0)
    acts = dict.fromkeys(ACTIVATIONS, 0)
    depth, downsampling, widths = 0, stem.stride[0] * stem.stride[1], []
    for b in spec.blocks:
        kind, reps = block_type(b), getattr(b, "repeats", 1)
        counts[kind] = counts.get(kind, 0) + reps
        depth += reps
        stride = getattr(b, "stride", (1, 1))
        downsampling *= stride[0] * stride[1]
        if hasattr(b, "channels"):
            widths.append(b.channels)
        if getattr(b, "act", None) in acts:
            acts[b.act] += reps
    macs = block_macs(spec)
    total = sum(macs.values()) or 1
    out += [counts[k] for k in BLOCK_KINDS]
    out += [macs.get(k, 0) / total for k in BLOCK_KINDS]
    out += [math.log10(macs.get(k, 0) + 1) for k in BLOCK_KINDS]
    widths = widths or [0]
    out += [depth, math.log2(downsampling), max(widths), widths[-1], float(np.mean(widths))]
    out += [acts[a] for a in ACTIVATIONS]
    out += [spec.head.channels, float(spec.head.pool == "avg")]
    layers = plan_layers(spec)
    rf_t, rf_f, last = _receptive_field(layers)
    layer_macs = np.log10([max(layer.macs, 1) for layer in layers if layer.op in MAC_OPS] or [1])
    out += [
        math.log2(rf_t),
        math.log2(rf_f),
        sum(layer.op in _CONV_OPS for layer in layers),
        len(layers),
        math.log2(max(last[1], 1)),
        math.log2(max(last[2], 1)),
        float(layer_macs.max()),
        float(layer_macs.min()),
        float(layer_macs.std()),
    ]
    return np.asarray(out, float)
