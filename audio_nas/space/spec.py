"""ArchSpec: one frozen description of a candidate, with a compact string form.

A spec string is ``|``-separated tokens, in the spirit of timm's MobileNetV4
block strings (``uir_r1_a3_k5_s2_e4_c80``) but decoded by a registry of token
parsers keyed by the token's *head* (never by substring matching):

    fe:mfcc_w40_h20_m40_c10 | stem:c2d_k10x4_s2x2_c64_relu | ds_k3_s1_c64_r4_relu
      | uib_a3_k5_e4_s2_c32_r2_relu6 | mqa_h2_d16_kv2 | head:c0 | n12

Tokens
  fe:KIND_wW_hH_mM[_cC][_srR][_lL][_loF][_hiF][_fftN]  front-end (FrontEndConfig)
  stem:c2d_kTxF_sTxF_cC_ACT       2D conv over the [T, F] spectrogram (1 input channel)
  stem:c1d_kT_sT_cC_ACT           1D temporal conv: frequency bins are channels
  uib_aA_kK_eE_sS_cC_rR_ACT       Universal Inverted Bottleneck (A start-dw, K middle-dw, 0 = absent):
                                  (K,K) ExtraDW, (0,K) IB, (K,0) ConvNext, (0,0) FFN
  ds_kK_sS_cC_rR_ACT              depthwise KxK + pointwise 1x1 (MobileNetV1 / DS-CNN block)
  conv_kTxF_sS_cC_rR_ACT          plain conv (TFLM micro_speech tiny_conv)
  mqa_hH_dD_kvS                   Mobile MQA: H query heads, one shared K/V head of dim D, K/V stride S
  head:cC[_ACT][_wB]              optional 1x1 conv before global pooling (c0 = none); _w4: int4 weights for
                                  the head conv and the classifier (FULLY_CONNECTED, per-tensor)
  nK                              number of classes
  _wB (any block token)           weight bit-width of the block's conv / depthwise weights: 8 (default, not
                                  written) or 4 (int4 weights packed two per byte; activations stay int8)
Strides are ``s2`` (both axes) or ``s2x1`` (time x frequency); kernels ``k3`` or ``k10x4``.
In a 1D network (``stem:c1d``) block kernels and strides act on time only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from audio_nas.errors import ConfigError, SpecError
from audio_nas.features.config import FRONTEND_KINDS, FrontEndConfig

ACTIVATIONS: tuple[str, ...] = ("relu", "relu6", "hswish", "none")
Pair = tuple[int, int]


def _pair(text: str, field: str, token: str) -> Pair:
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", text)
    if not m:
        raise SpecError(f"{field} {text!r} in token {token!r} is not N or NxM")
    a = int(m.group(1))
    return (a, int(m.group(2)) if m.group(2) is not None else a)


def _fmt_pair(p: Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def _fmt_num(v: float) -> str:
    return f"{v:g}"


def _fields(token: str, head: str, allowed: str) -> dict[str, str]:
    """Split ``head_a3_k5_relu`` into {'a': '3', 'k': '5', 'act': 'relu'}; names unknown parts."""
    parts = token.split("_")[1:] if "_" in token else []
    out: dict[str, str] = {}
    for part in parts:
        if part in ACTIVATIONS:
            out["act"] = part
            continue
        m = re.fullmatch(r"([a-z]+)([0-9x.\-]+)", part)
        if not m or m.group(1) not in allowed.split(","):
            raise SpecError(
                f"unknown field {part!r} in {head} token {token!r}; fields: {allowed.replace(',', ', ')} and "
                f"an activation ({', '.join(ACTIVATIONS)})"
            )
        if m.group(1) in out:
            raise SpecError(f"field {m.group(1)!r} given twice in token {token!r}")
        out[m.group(1)] = m.group(2)
    return out


def _int(fields: dict[str, str], key: str, token: str, default: int | None = None) -> int:
    if key not in fields:
        if default is None:
            raise SpecError(f"token {token!r} is missing field {key!r}")
        return default
    try:
        return int(fields[key])
    except ValueError:
        raise SpecError(f"field {key!r} in token {token!r} must be an integer, got {fields[key]!r}") from None


WEIGHT_BITS: tuple[int, ...] = (8, 4)  # 8 first: the default, never written in a spec string


def _check_bits(bits: int, where: str) -> None:
    if bits not in WEIGHT_BITS:
        raise SpecError(
            f"{where}: weight bits {bits} are not supported; choose one of {WEIGHT_BITS} (e.g. _w4)"
        )


def _fmt_bits(bits: int) -> str:
    """The ``_wB`` suffix; empty for 8 bits so every int8 spec string (and hash) is unchanged."""
    return "" if bits == 8 else f"_w{bits}"


def _check_act(act: str, where: str) -> None:
    if act not in ACTIVATIONS:
        raise SpecError(f"{where}: activation {act!r} is unknown; choose one of {ACTIVATIONS}")


# --------------------------------------------------------------------------------------
# Sub-specs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StemSpec:
    kind: str  # "c2d" | "c1d"
    kernel: Pair  # (time, freq); c1d: (k, 1)
    stride: Pair
    channels: int
    act: str = "relu"

    def __post_init__(self) -> None:
        if self.kind not in ("c2d", "c1d"):
            raise SpecError(f"stem.kind {self.kind!r} is unknown; choose c2d or c1d")
        if self.kind == "c1d" and (self.kernel[1] != 1 or self.stride[1] != 1):
            raise SpecError("stem: a c1d stem has kernel and stride (T, 1): frequency bins are its channels")
        if min(self.kernel) < 1 or min(self.stride) < 1 or self.channels < 1:
            raise SpecError(f"stem: kernel, stride and channels must be >= 1, got {self}")
        _check_act(self.act, "stem.act")

    def to_str(self) -> str:
        if self.kind == "c1d":
            return f"stem:c1d_k{self.kernel[0]}_s{self.stride[0]}_c{self.channels}_{self.act}"
        return f"stem:c2d_k{_fmt_pair(self.kernel)}_s{_fmt_pair(self.stride)}_c{self.channels}_{self.act}"


@dataclass(frozen=True, kw_only=True)
class UIBSpec:
    """Universal Inverted Bottleneck (MobileNetV4). ``start_k``/``mid_k`` 0 = absent."""

    KIND: ClassVar[str] = "uib"
    start_k: int
    mid_k: int
    expand: int
    stride: Pair
    channels: int
    repeats: int = 1
    act: str = "relu"
    weight_bits: int = 8

    def __post_init__(self) -> None:
        for name in ("start_k", "mid_k"):
            v = getattr(self, name)
            if v < 0 or (v > 0 and v % 2 == 0):
                raise SpecError(f"uib.{name} must be 0 (absent) or an odd kernel size, got {v}")
        if self.expand < 1:
            raise SpecError(f"uib.expand must be >= 1, got {self.expand}")
        if self.start_k == 0 and self.mid_k == 0 and max(self.stride) > 1:
            raise SpecError("uib: an FFN block (a0_k0) has no depthwise conv to carry stride > 1; use s1")
        _check_common(self, "uib")

    @property
    def variant(self) -> str:
        return {
            (True, True): "ExtraDW",
            (False, True): "IB",
            (True, False): "ConvNext",
            (False, False): "FFN",
        }[(self.start_k > 0, self.mid_k > 0)]

    def to_str(self) -> str:
        return (
            f"uib_a{self.start_k}_k{self.mid_k}_e{self.expand}_s{_fmt_pair(self.stride)}"
            f"_c{self.channels}_r{self.repeats}_{self.act}{_fmt_bits(self.weight_bits)}"
        )


@dataclass(frozen=True, kw_only=True)
class DSSpec:
    """Depthwise-separable block: depthwise KxK (+BN+act) then pointwise 1x1 (+BN+act)."""

    KIND: ClassVar[str] = "ds"
    kernel: int
    stride: Pair
    channels: int
    repeats: int = 1
    act: str = "relu"
    weight_bits: int = 8

    def __post_init__(self) -> None:
        if self.kernel < 1:
            raise SpecError(f"ds.kernel must be >= 1, got {self.kernel}")
        _check_common(self, "ds")

    def to_str(self) -> str:
        return (
            f"ds_k{self.kernel}_s{_fmt_pair(self.stride)}_c{self.channels}_r{self.repeats}_{self.act}"
            f"{_fmt_bits(self.weight_bits)}"
        )


@dataclass(frozen=True, kw_only=True)
class ConvSpec:
    """Plain convolution block (+BN+act)."""

    KIND: ClassVar[str] = "conv"
    kernel: Pair
    stride: Pair
    channels: int
    repeats: int = 1
    act: str = "relu"
    weight_bits: int = 8

    def __post_init__(self) -> None:
        if min(self.kernel) < 1:
            raise SpecError(f"conv.kernel must be >= 1, got {self.kernel}")
        _check_common(self, "conv")

    def to_str(self) -> str:
        return (
            f"conv_k{_fmt_pair(self.kernel)}_s{_fmt_pair(self.stride)}_c{self.channels}"
            f"_r{self.repeats}_{self.act}{_fmt_bits(self.weight_bits)}"
        )


@dataclass(frozen=True, kw_only=True)
class MQASpec:
    """Mobile multi-query attention (MobileNetV4): one shared K/V head, K/V downsampled by ``kv_stride``."""

    KIND: ClassVar[str] = "mqa"
    heads: int
    key_dim: int
    kv_stride: int = 2
    weight_bits: int = 8  # the q/k/v/out 1x1 convs and the K/V depthwise; BATCH_MATMUL stays int8 x int8

    def __post_init__(self) -> None:
        if self.heads < 1 or self.key_dim < 1:
            raise SpecError(f"mqa.heads and mqa.key_dim must be >= 1, got {self.heads}, {self.key_dim}")
        if self.kv_stride not in (1, 2):
            raise SpecError(f"mqa.kv_stride must be 1 or 2, got {self.kv_stride}")
        _check_bits(self.weight_bits, "mqa")

    def to_str(self) -> str:
        return f"mqa_h{self.heads}_d{self.key_dim}_kv{self.kv_stride}{_fmt_bits(self.weight_bits)}"


def _check_common(block: UIBSpec | DSSpec | ConvSpec, kind: str) -> None:
    if min(block.stride) < 1 or max(block.stride) > 2:
        raise SpecError(f"{kind}.stride must be 1 or 2 per axis, got {block.stride}")
    if block.channels < 1:
        raise SpecError(f"{kind}.channels must be >= 1, got {block.channels}")
    if not (1 <= block.repeats <= 8):
        raise SpecError(f"{kind}.repeats must be in 1..8, got {block.repeats}")
    _check_act(block.act, f"{kind}.act")
    _check_bits(block.weight_bits, kind)


BlockSpec = UIBSpec | DSSpec | ConvSpec | MQASpec


HEAD_POOLS: tuple[str, ...] = ("avg", "flatten")


@dataclass(frozen=True, kw_only=True)
class HeadSpec:
    channels: int = 0  # optional 1x1 conv before pooling; 0 = none
    act: str = "relu"
    pool: str = "avg"  # "avg": global average pool (MEAN); "flatten": RESHAPE (micro_speech tiny_conv)
    weight_bits: int = 8  # head conv and classifier weights

    def __post_init__(self) -> None:
        if self.channels < 0:
            raise SpecError(f"head.channels must be >= 0, got {self.channels}")
        if self.pool not in HEAD_POOLS:
            raise SpecError(f"head.pool {self.pool!r} is unknown; choose one of {HEAD_POOLS}")
        _check_act(self.act, "head.act")
        _check_bits(self.weight_bits, "head")

    def to_str(self) -> str:
        s = f"head:c{self.channels}" + (f"_{self.act}" if self.channels else "") + _fmt_bits(self.weight_bits)
        return s + ("_flatten" if self.pool == "flatten" else "")


# --------------------------------------------------------------------------------------
# ArchSpec
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ArchSpec:
    frontend: FrontEndConfig
    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec = HeadSpec()
    n_classes: int = 12

    def __post_init__(self) -> None:
        if self.n_classes < 2:
            raise SpecError(f"n_classes must be >= 2, got {self.n_classes}")
        if not isinstance(self.blocks, tuple):
            object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.is_1d:
            for i, b in enumerate(self.blocks):
                stride = getattr(b, "stride", (1, 1))
                kernel = getattr(b, "kernel", (1, 1))
                if stride[1] != 1 or (isinstance(kernel, tuple) and kernel[1] != 1):
                    raise SpecError(
                        f"blocks[{i}] ({b.to_str()}): in a 1D network (stem:c1d) strides and kernels act on "
                        "time only; use s2x1 / kNx1"
                    )
        if self.blocks and isinstance(self.blocks[0], MQASpec):
            pass  # allowed: the stem gives it channels
        validate_shapes(self)

    @property
    def is_1d(self) -> bool:
        return self.stem.kind == "c1d"

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.frontend.output_shape

    def to_str(self) -> str:
        parts = [frontend_to_str(self.frontend), self.stem.to_str()]
        parts += [b.to_str() for b in self.blocks]
        parts += [self.head.to_str(), f"n{self.n_classes}"]
        return "|".join(parts)

    def __str__(self) -> str:
        return self.to_str()

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.to_str().encode()).hexdigest()[:16]

    @classmethod
    def from_str(cls, text: str) -> ArchSpec:
        return parse_spec(text)


# --------------------------------------------------------------------------------------
# Shape validation (also used by the builder and the sampler's repair)
# --------------------------------------------------------------------------------------


def same_out(size: int, stride: int) -> int:
    """TFLite SAME padding output size."""
    return -(-size // stride)


def stage_shapes(spec: ArchSpec) -> list[tuple[int, int, int]]:
    """(H, W, C) after the stem and after every block repeat, NHWC with H = time."""
    t, f = spec.input_shape
    if spec.is_1d:
        h, w = same_out(t, spec.stem.stride[0]), 1
    else:
        h, w = same_out(t, spec.stem.stride[0]), same_out(f, spec.stem.stride[1])
    c = spec.stem.channels
    shapes = [(h, w, c)]
    for b in spec.blocks:
        if isinstance(b, MQASpec):
            shapes.append((h, w, c))
            continue
        for r in range(b.repeats):
            s = b.stride if r == 0 else (1, 1)
            h, w, c = same_out(h, s[0]), same_out(w, s[1]), b.channels
            shapes.append((h, w, c))
    return shapes


def validate_shapes(spec: ArchSpec) -> None:
    t, f = spec.input_shape
    if spec.stem.kernel[0] > t or (not spec.is_1d and spec.stem.kernel[1] > f):
        raise SpecError(
            f"stem kernel {spec.stem.kernel} is larger than the input {t}x{f} (frames x bins) of the "
            "front-end; use a smaller kernel or more frames/bins"
        )
    if spec.stem.stride[0] > t or (not spec.is_1d and spec.stem.stride[1] > f):
        raise SpecError(f"stem stride {spec.stem.stride} does not fit the input {t}x{f}")
    h, w = stage_shapes(spec)[0][:2]
    for i, b in enumerate(spec.blocks):
        if isinstance(b, MQASpec):
            continue
        s = b.stride
        if (s[0] > 1 and h < 2) or (s[1] > 1 and w < 2):
            raise SpecError(
                f"blocks[{i}] ({b.to_str()}): stride {s} collapses a feature map of {h}x{w} (time x freq); "
                f"use stride 1 on that axis or fewer stride-2 blocks"
            )
        h, w = same_out(h, s[0]), same_out(w, s[1])


# --------------------------------------------------------------------------------------
# String parsing: a registry of token parsers keyed by the token head
# --------------------------------------------------------------------------------------


def frontend_to_str(fe: FrontEndConfig) -> str:
    s = f"fe:{fe.kind}_w{_fmt_num(fe.window_ms)}_h{_fmt_num(fe.hop_ms)}_m{fe.n_mels}"
    if fe.kind == "mfcc":
        s += f"_c{fe.n_mfcc}"
    d = FrontEndConfig()
    if fe.sample_rate_hz != d.sample_rate_hz:
        s += f"_sr{fe.sample_rate_hz}"
    if fe.clip_ms != d.clip_ms:
        s += f"_l{fe.clip_ms}"
    if fe.fmin_hz != d.fmin_hz:
        s += f"_lo{_fmt_num(fe.fmin_hz)}"
    if fe.fmax_hz is not None:
        s += f"_hi{_fmt_num(fe.fmax_hz)}"
    if fe.n_fft is not None:
        s += f"_fft{fe.n_fft}"
    return s


def _parse_frontend(token: str) -> FrontEndConfig:
    body = token[len("fe:") :]
    kind = body.split("_", 1)[0]
    if kind not in FRONTEND_KINDS:
        raise SpecError(f"front-end kind {kind!r} in {token!r} is unknown; choose one of {FRONTEND_KINDS}")
    f = _fields(body, "fe", "w,h,m,c,sr,l,lo,hi,fft")
    try:
        num = {k: float(v) for k, v in f.items() if k in ("w", "h", "lo", "hi")}
    except ValueError as exc:
        raise SpecError(f"front-end token {token!r}: {exc}") from None
    kwargs = dict(
        kind=kind, window_ms=num.get("w", 30.0), hop_ms=num.get("h", 20.0), n_mels=_int(f, "m", token, 40)
    )
    if "c" in f:
        kwargs["n_mfcc"] = _int(f, "c", token)
    if "sr" in f:
        kwargs["sample_rate_hz"] = _int(f, "sr", token)
    if "l" in f:
        kwargs["clip_ms"] = _int(f, "l", token)
    if "lo" in num:
        kwargs["fmin_hz"] = num["lo"]
    if "hi" in num:
        kwargs["fmax_hz"] = num["hi"]
    if "fft" in f:
        kwargs["n_fft"] = _int(f, "fft", token)
    try:
        return FrontEndConfig(**kwargs)
    except ConfigError as exc:
        raise SpecError(f"front-end token {token!r}: {exc}") from None


def _parse_stem(token: str) -> StemSpec:
    body = token[len("stem:") :]
    kind = body.split("_", 1)[0]
    f = _fields(body, "stem", "k,s,c")
    if kind == "c1d":
        k, s = _int(f, "k", token), _int(f, "s", token, 1)
        return StemSpec(
            kind="c1d", kernel=(k, 1), stride=(s, 1), channels=_int(f, "c", token), act=f.get("act", "relu")
        )
    if kind == "c2d":
        return StemSpec(
            kind="c2d",
            kernel=_pair(f.get("k", ""), "stem kernel", token),
            stride=_pair(f.get("s", "1"), "stem stride", token),
            channels=_int(f, "c", token),
            act=f.get("act", "relu"),
        )
    raise SpecError(f"stem kind {kind!r} in {token!r} is unknown; choose c2d or c1d")


def _parse_uib(token: str) -> UIBSpec:
    f = _fields(token, "uib", "a,k,e,s,c,r,w")
    return UIBSpec(
        start_k=_int(f, "a", token, 0),
        mid_k=_int(f, "k", token, 0),
        expand=_int(f, "e", token),
        stride=_pair(f.get("s", "1"), "stride", token),
        channels=_int(f, "c", token),
        repeats=_int(f, "r", token, 1),
        act=f.get("act", "relu"),
        weight_bits=_int(f, "w", token, 8),
    )


def _parse_ds(token: str) -> DSSpec:
    f = _fields(token, "ds", "k,s,c,r,w")
    return DSSpec(
        kernel=_int(f, "k", token),
        stride=_pair(f.get("s", "1"), "stride", token),
        channels=_int(f, "c", token),
        repeats=_int(f, "r", token, 1),
        act=f.get("act", "relu"),
        weight_bits=_int(f, "w", token, 8),
    )


def _parse_conv(token: str) -> ConvSpec:
    f = _fields(token, "conv", "k,s,c,r,w")
    return ConvSpec(
        kernel=_pair(f.get("k", ""), "kernel", token),
        stride=_pair(f.get("s", "1"), "stride", token),
        channels=_int(f, "c", token),
        repeats=_int(f, "r", token, 1),
        act=f.get("act", "relu"),
        weight_bits=_int(f, "w", token, 8),
    )


def _parse_mqa(token: str) -> MQASpec:
    f = _fields(token, "mqa", "h,d,kv,w")
    if "act" in f:
        raise SpecError(f"mqa token {token!r} takes no activation")
    return MQASpec(
        heads=_int(f, "h", token),
        key_dim=_int(f, "d", token),
        kv_stride=_int(f, "kv", token, 2),
        weight_bits=_int(f, "w", token, 8),
    )


def _parse_head(token: str) -> HeadSpec:
    body = token[len("head:") :]
    pool = "avg"
    if body.endswith("_flatten"):
        body, pool = body[: -len("_flatten")], "flatten"
    f = _fields("head_" + body, "head", "c,w")
    return HeadSpec(
        channels=_int(f, "c", token, 0),
        act=f.get("act", "relu"),
        pool=pool,
        weight_bits=_int(f, "w", token, 8),
    )


BLOCK_PARSERS: dict[str, Callable[[str], BlockSpec]] = {
    "uib": _parse_uib,
    "ds": _parse_ds,
    "conv": _parse_conv,
    "mqa": _parse_mqa,
}


def parse_spec(text: str) -> ArchSpec:
    """Parse a spec string; every error names the token and field at fault."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(
            "empty spec string; expected e.g. "
            "'fe:logmel_w30_h20_m40|stem:c2d_k3_s2_c16_relu|ds_k3_s1_c32_r2_relu|head:c0|n12'"
        )
    tokens = [t.strip() for t in text.strip().split("|") if t.strip()]
    fe = stem = head = None
    n_classes = None
    blocks: list[BlockSpec] = []
    for tok in tokens:
        if tok.startswith("fe:"):
            fe = _parse_frontend(tok)
        elif tok.startswith("stem:"):
            stem = _parse_stem(tok)
        elif tok.startswith("head:"):
            head = _parse_head(tok)
        elif re.fullmatch(r"n\d+", tok):
            n_classes = int(tok[1:])
        else:
            kind = tok.split("_", 1)[0]
            parser = BLOCK_PARSERS.get(kind)
            if parser is None:
                raise SpecError(
                    f"unknown block {kind!r} in token {tok!r}; block kinds: {', '.join(BLOCK_PARSERS)} "
                    f"(plus fe:, stem:, head:, nK)"
                )
            blocks.append(parser(tok))
    if stem is None:
        raise SpecError(f"spec {text!r} has no stem token (e.g. stem:c2d_k3_s2_c16_relu)")
    return ArchSpec(
        frontend=fe or FrontEndConfig(),
        stem=stem,
        blocks=tuple(blocks),
        head=head or HeadSpec(),
        n_classes=n_classes if n_classes is not None else 12,
    )


def replace(spec: ArchSpec, **changes) -> ArchSpec:
    return dataclasses.replace(spec, **changes)
