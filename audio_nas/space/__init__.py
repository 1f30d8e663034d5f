"""Search space: ArchSpec grammar, primitives, builder, analytic costs, sampling/encoding, presets."""

from audio_nas.space.builder import AudioNet, build_model
from audio_nas.space.costs import ArchCosts, arch_costs
from audio_nas.space.plan import LayerCost, plan_layers
from audio_nas.space.presets import BASELINES, PRESETS, resolve_arch
from audio_nas.space.spec import ArchSpec, ConvSpec, DSSpec, HeadSpec, MQASpec, StemSpec, UIBSpec
from audio_nas.space.tflm_arena import TflmArena, tflm_arena

__all__ = [
    "ArchSpec",
    "StemSpec",
    "UIBSpec",
    "DSSpec",
    "ConvSpec",
    "MQASpec",
    "HeadSpec",
    "LayerCost",
    "plan_layers",
    "TflmArena",
    "tflm_arena",
    "AudioNet",
    "build_model",
    "ArchCosts",
    "arch_costs",
    "PRESETS",
    "BASELINES",
    "resolve_arch",
]

from audio_nas.space.sampling import (  # noqa: E402
    DEFAULT_SPACE,
    ENCODING_DIM,
    SearchSpace,
    crossover,
    decode,
    encode,
    mutate,
    sample_spec,
)

__all__ += [
    "SearchSpace",
    "DEFAULT_SPACE",
    "ENCODING_DIM",
    "sample_spec",
    "mutate",
    "crossover",
    "encode",
    "decode",
]
