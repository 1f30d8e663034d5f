"""Sampling, mutation, crossover and a fixed-length encoding of the search space.

The encoding is a vector in [0, 1]^ENCODING_DIM: one coordinate per categorical
choice (index / (n_choices - 1)), grouped as

    front-end (5) | stem (5) | MAX_BLOCKS slots x SLOT_DIM | head (1)

A slot holds one block: active flag, kind, then kind-specific fields (fields a
kind does not use are 0, so every spec has exactly one encoding). ``decode``
rounds each coordinate to the nearest choice and repairs what would be invalid
(a stride that would collapse a 1-wide axis becomes 1; an FFN block gets stride 1),
so any vector decodes to a valid spec and ``decode(encode(s)) == s`` for every
spec the space can sample. PSO, the Bayesian surrogates and the energy predictor
all work on this vector.

Mixed precision (``SearchSpace.weight_bits_choices``, default ``(8,)``): with more than one choice the
vector gains one weight-bits gene per block slot and one for the head (conv + classifier), appended after the
head coordinate, so the default space's encoding, its dimension and every sampled spec stay as they were.
Sampling, mutation (a bits gene of an active slot is one more dimension to edit) and crossover (a slot's
bits travel with its slot) treat them like the other genes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from audio_nas.errors import SpecError
from audio_nas.features.config import FrontEndConfig
from audio_nas.space.spec import (
    ArchSpec,
    BlockSpec,
    DSSpec,
    HeadSpec,
    MQASpec,
    StemSpec,
    UIBSpec,
    same_out,
)


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """Choices of the default space; sized for MCU models (~5k-150k params)."""

    fe_kinds: tuple[str, ...] = ("logmel", "mfcc")
    window_ms: tuple[float, ...] = (30.0, 40.0)
    hop_ms: tuple[float, ...] = (20.0, 30.0)
    n_mels: tuple[int, ...] = (20, 32, 40)
    n_mfcc: tuple[int, ...] = (10, 13)
    stem_kinds: tuple[str, ...] = ("c2d", "c1d")
    stem_kernels: tuple[int, ...] = (3, 5, 7)
    stem_strides: tuple[int, ...] = (1, 2)
    stem_channels: tuple[int, ...] = (8, 16, 24, 32, 48)
    activations: tuple[str, ...] = ("relu", "relu6", "hswish")
    max_blocks: int = 5
    block_kinds: tuple[str, ...] = ("uib", "ds", "mqa")
    uib_kernels: tuple[int, ...] = (0, 3, 5)
    ds_kernels: tuple[int, ...] = (3, 5, 7)
    expansions: tuple[int, ...] = (1, 2, 3, 4, 6)
    strides: tuple[int, ...] = (1, 2)
    channels: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64)
    repeats: tuple[int, ...] = (1, 2, 3)
    mqa_heads: tuple[int, ...] = (1, 2, 4)
    mqa_key_dims: tuple[int, ...] = (8, 16, 32)
    head_channels: tuple[int, ...] = (0, 32, 64, 128)
    n_classes: int = 12
    sample_rate_hz: int = 16_000
    clip_ms: int = 1000
    weight_bits_choices: tuple[int, ...] = (8,)  # (4, 8): a weight bit-width gene per block and the head

    def __post_init__(self) -> None:
        if not self.weight_bits_choices or not set(self.weight_bits_choices) <= {4, 8}:
            raise SpecError(
                f"weight_bits_choices must be a non-empty subset of (4, 8), got {self.weight_bits_choices}"
            )

    @property
    def mixed_precision(self) -> bool:
        return len(self.weight_bits_choices) > 1


DEFAULT_SPACE = SearchSpace()
FE_DIM, STEM_DIM, SLOT_DIM, HEAD_DIM = 5, 5, 10, 1
# slot layout: active, kind, a (uib start-dw), k (uib mid-dw / ds kernel), e, stride (mqa: kv stride),
#              channels, repeats, act, mqa (heads * len(dims) + dim index)


def encoding_dim(space: SearchSpace = DEFAULT_SPACE) -> int:
    return _bits_base(space) + (space.max_blocks + 1 if space.mixed_precision else 0)


def _bits_base(space: SearchSpace) -> int:
    """Index of the first weight-bits gene (slot 0's; then slots 1.., then the head's)."""
    return FE_DIM + STEM_DIM + space.max_blocks * SLOT_DIM + HEAD_DIM


def _bits_of(v: np.ndarray, i: int, sp: SearchSpace) -> int:
    """Weight bits of block slot ``i`` (``i == max_blocks``: the head) from the vector."""
    if not sp.mixed_precision:
        return sp.weight_bits_choices[0]
    n = len(sp.weight_bits_choices)
    return sp.weight_bits_choices[_idx(v[_bits_base(sp) + i], n)]


ENCODING_DIM = encoding_dim()


def _norm(idx: int, n: int) -> float:
    return idx / (n - 1) if n > 1 else 0.0


def _idx(v: float, n: int) -> int:
    return int(np.clip(np.rint(float(v) * (n - 1)), 0, n - 1)) if n > 1 else 0


def _index(choices: tuple, value, field: str) -> int:
    try:
        return choices.index(value)
    except ValueError:
        raise SpecError(f"{field}={value!r} is outside the search space choices {choices}") from None


# --------------------------------------------------------------------------------------
# encode / decode
# --------------------------------------------------------------------------------------


def encode(spec: ArchSpec, space: SearchSpace = DEFAULT_SPACE) -> np.ndarray:
    """Spec -> vector in [0,1]^D. Raises SpecError for a spec outside the space (e.g. a preset)."""
    sp = space
    v = np.zeros(encoding_dim(sp))
    fe = spec.frontend
    v[0] = _norm(_index(sp.fe_kinds, fe.kind, "frontend.kind"), len(sp.fe_kinds))
    v[1] = _norm(_index(sp.window_ms, fe.window_ms, "frontend.window_ms"), len(sp.window_ms))
    v[2] = _norm(_index(sp.hop_ms, fe.hop_ms, "frontend.hop_ms"), len(sp.hop_ms))
    v[3] = _norm(_index(sp.n_mels, fe.n_mels, "frontend.n_mels"), len(sp.n_mels))
    v[4] = (
        _norm(_index(sp.n_mfcc, fe.n_mfcc, "frontend.n_mfcc"), len(sp.n_mfcc)) if fe.kind == "mfcc" else 0.0
    )
    st, o = spec.stem, FE_DIM
    v[o] = _norm(_index(sp.stem_kinds, st.kind, "stem.kind"), len(sp.stem_kinds))
    v[o + 1] = _norm(_index(sp.stem_kernels, st.kernel[0], "stem.kernel"), len(sp.stem_kernels))
    v[o + 2] = _norm(_index(sp.stem_strides, st.stride[0], "stem.stride"), len(sp.stem_strides))
    v[o + 3] = _norm(_index(sp.stem_channels, st.channels, "stem.channels"), len(sp.stem_channels))
    v[o + 4] = _norm(_index(sp.activations, st.act, "stem.act"), len(sp.activations))
    if len(spec.blocks) > sp.max_blocks or not spec.blocks:
        raise SpecError(
            f"blocks: {len(spec.blocks)} blocks is outside the search space (1..{sp.max_blocks} blocks)"
        )
    for i, b in enumerate(spec.blocks):
        v[FE_DIM + STEM_DIM + i * SLOT_DIM : FE_DIM + STEM_DIM + (i + 1) * SLOT_DIM] = _encode_block(b, sp)
    o = FE_DIM + STEM_DIM + sp.max_blocks * SLOT_DIM
    v[o] = _norm(_index(sp.head_channels, spec.head.channels, "head.channels"), len(sp.head_channels))
    if spec.head.channels and spec.head.act != "relu" or spec.head.pool != "avg":
        raise SpecError("head: the space uses a ReLU head conv and average pooling only")
    bits = [b.weight_bits for b in spec.blocks] + [spec.head.weight_bits]
    if sp.mixed_precision:
        n = len(sp.weight_bits_choices)
        for i, wb in enumerate(bits[:-1]):
            v[_bits_base(sp) + i] = _norm(_index(sp.weight_bits_choices, wb, "block.weight_bits"), n)
        v[_bits_base(sp) + sp.max_blocks] = _norm(
            _index(sp.weight_bits_choices, bits[-1], "head.weight_bits"), n
        )
    else:
        for wb in bits:
            _index(sp.weight_bits_choices, wb, "weight_bits")
    return v


def _encode_block(b: BlockSpec, sp: SearchSpace) -> np.ndarray:
    s = np.zeros(SLOT_DIM)
    s[0] = 1.0
    kind = b.KIND
    s[1] = _norm(_index(sp.block_kinds, kind, "block.kind"), len(sp.block_kinds))
    if isinstance(b, MQASpec):
        s[5] = _norm(b.kv_stride - 1, 2)
        n_d = len(sp.mqa_key_dims)
        combo = _index(sp.mqa_heads, b.heads, "mqa.heads") * n_d + _index(
            sp.mqa_key_dims, b.key_dim, "mqa.key_dim"
        )
        s[9] = _norm(combo, len(sp.mqa_heads) * n_d)
        return s
    if isinstance(b, UIBSpec):
        s[2] = _norm(_index(sp.uib_kernels, b.start_k, "uib.start_k"), len(sp.uib_kernels))
        s[3] = _norm(_index(sp.uib_kernels, b.mid_k, "uib.mid_k"), len(sp.uib_kernels))
        s[4] = _norm(_index(sp.expansions, b.expand, "uib.expand"), len(sp.expansions))
    elif isinstance(b, DSSpec):
        s[3] = _norm(_index(sp.ds_kernels, b.kernel, "ds.kernel"), len(sp.ds_kernels))
    else:
        raise SpecError(f"block {b.to_str()} is outside the search space (kinds {sp.block_kinds})")
    s[5] = _norm(_index(sp.strides, b.stride[0], "block.stride"), len(sp.strides))
    s[6] = _norm(_index(sp.channels, b.channels, "block.channels"), len(sp.channels))
    s[7] = _norm(_index(sp.repeats, b.repeats, "block.repeats"), len(sp.repeats))
    s[8] = _norm(_index(sp.activations, b.act, "block.act"), len(sp.activations))
    return s


def decode(vec: np.ndarray, space: SearchSpace = DEFAULT_SPACE) -> ArchSpec:
    """Vector -> nearest valid spec (see module doc for the repairs)."""
    sp = space
    v = np.clip(np.asarray(vec, dtype=float), 0.0, 1.0)
    if v.shape != (encoding_dim(sp),):
        raise SpecError(f"encoding must have shape ({encoding_dim(sp)},), got {v.shape}")
    kind = sp.fe_kinds[_idx(v[0], len(sp.fe_kinds))]
    n_mels = sp.n_mels[_idx(v[3], len(sp.n_mels))]
    n_mfcc = min(sp.n_mfcc[_idx(v[4], len(sp.n_mfcc))], n_mels) if kind == "mfcc" else FrontEndConfig().n_mfcc
    fe = FrontEndConfig(
        kind=kind,
        window_ms=sp.window_ms[_idx(v[1], len(sp.window_ms))],
        hop_ms=sp.hop_ms[_idx(v[2], len(sp.hop_ms))],
        n_mels=n_mels,
        n_mfcc=n_mfcc,
        sample_rate_hz=sp.sample_rate_hz,
        clip_ms=sp.clip_ms,
    )
    o = FE_DIM
    skind = sp.stem_kinds[_idx(v[o], len(sp.stem_kinds))]
    k = sp.stem_kernels[_idx(v[o + 1], len(sp.stem_kernels))]
    s = sp.stem_strides[_idx(v[o + 2], len(sp.stem_strides))]
    one_d = skind == "c1d"
    t, f = fe.output_shape
    k_f = 1 if one_d else min(k, f)
    stem = StemSpec(
        kind=skind,
        kernel=(min(k, t), k_f),
        stride=(s, 1) if one_d else (s, s),
        channels=sp.stem_channels[_idx(v[o + 3], len(sp.stem_channels))],
        act=sp.activations[_idx(v[o + 4], len(sp.activations))],
    )
    h, w = same_out(t, stem.stride[0]), (1 if one_d else same_out(f, stem.stride[1]))
    blocks: list[BlockSpec] = []
    for i in range(sp.max_blocks):
        slot = v[FE_DIM + STEM_DIM + i * SLOT_DIM : FE_DIM + STEM_DIM + (i + 1) * SLOT_DIM]
        if i > 0 and slot[0] < 0.5:
            continue
        b, h, w = _decode_block(slot, sp, one_d, h, w)
        wb = _bits_of(v, i, sp)
        blocks.append(b if wb == 8 else dataclasses.replace(b, weight_bits=wb))
    head_c = sp.head_channels[_idx(v[FE_DIM + STEM_DIM + sp.max_blocks * SLOT_DIM], len(sp.head_channels))]
    head = HeadSpec(channels=head_c, weight_bits=_bits_of(v, sp.max_blocks, sp))
    return ArchSpec(frontend=fe, stem=stem, blocks=tuple(blocks), head=head, n_classes=sp.n_classes)


def _decode_block(
    slot: np.ndarray, sp: SearchSpace, one_d: bool, h: int, w: int
) -> tuple[BlockSpec, int, int]:
    kind = sp.block_kinds[_idx(slot[1], len(sp.block_kinds))]
    if kind == "mqa":
        n_d = len(sp.mqa_key_dims)
        combo = _idx(slot[9], len(sp.mqa_heads) * n_d)
        return (
            MQASpec(
                heads=sp.mqa_heads[combo // n_d],
                key_dim=sp.mqa_key_dims[combo % n_d],
                kv_stride=1 + _idx(slot[5], 2),
            ),
            h,
            w,
        )
    s = sp.strides[_idx(slot[5], len(sp.strides))]
    stride = (s, 1) if one_d else (s, s)
    common = dict(
        channels=sp.channels[_idx(slot[6], len(sp.channels))],
        repeats=sp.repeats[_idx(slot[7], len(sp.repeats))],
        act=sp.activations[_idx(slot[8], len(sp.activations))],
    )
    if kind == "uib":
        a = sp.uib_kernels[_idx(slot[2], len(sp.uib_kernels))]
        k = sp.uib_kernels[_idx(slot[3], len(sp.uib_kernels))]
        if a == 0 and k == 0:
            stride = (1, 1)  # repair: an FFN block cannot stride
        stride = _repair_stride(stride, h, w)
        b: BlockSpec = UIBSpec(
            start_k=a,
            mid_k=k,
            expand=sp.expansions[_idx(slot[4], len(sp.expansions))],
            stride=stride,
            **common,
        )
    else:
        stride = _repair_stride(stride, h, w)
        b = DSSpec(kernel=sp.ds_kernels[_idx(slot[3], len(sp.ds_kernels))], stride=stride, **common)
    return b, same_out(h, stride[0]), same_out(w, stride[1])


def _repair_stride(stride: tuple[int, int], h: int, w: int) -> tuple[int, int]:
    if (stride[0] > 1 and h < 2) or (stride[1] > 1 and w < 2):
        return (1, 1)
    return stride


# --------------------------------------------------------------------------------------
# sampling, mutation, crossover
# --------------------------------------------------------------------------------------


def sample_spec(rng: np.random.Generator, space: SearchSpace = DEFAULT_SPACE) -> ArchSpec:
    """A uniformly drawn choice per coordinate; the number of blocks is uniform in 1..max_blocks."""
    v = rng.random(encoding_dim(space))
    n_blocks = int(rng.integers(1, space.max_blocks + 1))
    active = np.zeros(space.max_blocks)
    active[rng.choice(space.max_blocks, n_blocks, replace=False)] = 1.0
    active[0] = 1.0
    for i in range(space.max_blocks):
        v[FE_DIM + STEM_DIM + i * SLOT_DIM] = active[i]
    # MQA at most in a later slot and rarely: re-draw the kind of slot 0 among conv blocks
    kinds = space.block_kinds
    if "mqa" in kinds:
        conv_kinds = [k for k in kinds if k != "mqa"]
        v[FE_DIM + STEM_DIM + 1] = _norm(
            kinds.index(conv_kinds[int(rng.integers(len(conv_kinds)))]), len(kinds)
        )
    return decode(v, space)


def _active_dims(vec: np.ndarray, space: SearchSpace) -> list[int]:
    dims = list(range(FE_DIM + STEM_DIM))
    for i in range(space.max_blocks):
        base = FE_DIM + STEM_DIM + i * SLOT_DIM
        if i == 0 or vec[base] >= 0.5:
            dims += list(range(base + (0 if i else 1), base + SLOT_DIM))
        else:
            dims.append(base)  # the active flag itself
    dims.append(FE_DIM + STEM_DIM + space.max_blocks * SLOT_DIM)
    if space.mixed_precision:
        base = _bits_base(space)
        dims += [
            base + i
            for i in range(space.max_blocks)
            if i == 0 or vec[FE_DIM + STEM_DIM + i * SLOT_DIM] >= 0.5
        ]
        dims.append(base + space.max_blocks)
    return dims


def mutate(
    spec: ArchSpec, rng: np.random.Generator, space: SearchSpace = DEFAULT_SPACE, n_edits: int = 1
) -> ArchSpec:
    """Change ``n_edits`` random choices (a different value each); always returns a different valid spec."""
    base = encode(spec, space)
    for _ in range(100):
        v = base.copy()
        for _ in range(n_edits):
            d = int(rng.choice(_active_dims(v, space)))
            n = _n_choices(d, space)
            cur = _idx(v[d], n)
            v[d] = _norm(int((cur + rng.integers(1, n)) % n), n) if n > 1 else v[d]
        child = decode(v, space)
        if child != spec:
            return child
    return sample_spec(rng, space)  # pragma: no cover - only in degenerate spaces


def crossover(
    a: ArchSpec, b: ArchSpec, rng: np.random.Generator, space: SearchSpace = DEFAULT_SPACE
) -> ArchSpec:
    """Uniform crossover of whole groups: front-end, stem, each block slot and head come from a or b."""
    va, vb = encode(a, space), encode(b, space)
    # index groups: a block slot's weight-bits gene travels with its slot, the head's with the head
    bb = _bits_base(space)
    mp = space.mixed_precision
    groups = [list(range(0, FE_DIM)), list(range(FE_DIM, FE_DIM + STEM_DIM))]
    groups += [
        list(range(FE_DIM + STEM_DIM + i * SLOT_DIM, FE_DIM + STEM_DIM + (i + 1) * SLOT_DIM))
        + ([bb + i] if mp else [])
        for i in range(space.max_blocks)
    ]
    groups.append([bb - HEAD_DIM] + ([bb + space.max_blocks] if mp else []))
    child = va.copy()
    for idx in groups:
        if rng.random() < 0.5:
            child[idx] = vb[idx]
    return decode(child, space)


def _n_choices(d: int, sp: SearchSpace) -> int:
    fe = [len(sp.fe_kinds), len(sp.window_ms), len(sp.hop_ms), len(sp.n_mels), len(sp.n_mfcc)]
    stem = [
        len(sp.stem_kinds),
        len(sp.stem_kernels),
        len(sp.stem_strides),
        len(sp.stem_channels),
        len(sp.activations),
    ]
    if d < FE_DIM:
        return fe[d]
    if d < FE_DIM + STEM_DIM:
        return stem[d - FE_DIM]
    if d >= _bits_base(sp):
        return len(sp.weight_bits_choices)
    if d >= FE_DIM + STEM_DIM + sp.max_blocks * SLOT_DIM:
        return len(sp.head_channels)
    slot = [
        2,
        len(sp.block_kinds),
        len(sp.uib_kernels),
        max(len(sp.uib_kernels), len(sp.ds_kernels)),
        len(sp.expansions),
        len(sp.strides),
        len(sp.channels),
        len(sp.repeats),
        len(sp.activations),
        len(sp.mqa_heads) * len(sp.mqa_key_dims),
    ]
    return slot[(d - FE_DIM - STEM_DIM) % SLOT_DIM]
