"""Named architectures in the same grammar: the research baselines and the TinyML references.

All are adapted to spectrogram input, as the NAS-for-always-on-audio papers do:
- ``mobilenet_v1_x*``: MobileNetV1 (Howard et al. 2017) — 3x3/2 stem conv, 13 depthwise-separable
  blocks with the paper's channel/stride schedule, width multiplier on every layer (rounded to a
  multiple of 8). Input 49x40 log-mel; five stride-2 stages take it to 2x2.
- ``mobilenet_v2_x*``: MobileNetV2 (Sandler et al. 2018) — inverted residuals (t, c, n, s) from the
  paper, ReLU6, 1x1 head conv to 1280 channels. Our IB always has its 1x1 expansion conv, also for
  t = 1 (the paper skips it there): a few hundred extra parameters, stated here.
- ``ds_cnn_s``: MLPerf Tiny keyword spotting reference DS-CNN (49x10 MFCC from 40 ms windows and
  20 ms hops; conv 64 10x4/2; 4 DS blocks of 64; average pool; FC 12).
- ``micro_speech_tiny_conv``: TFLM micro_speech's tiny_conv (49x40 features; conv 8 10x8/2; flatten; FC).
"""

from __future__ import annotations

from audio_nas.errors import SpecError
from audio_nas.space.spec import ArchSpec

LOGMEL_49x40 = "fe:logmel_w30_h20_m40"
MFCC_49x10 = "fe:mfcc_w40_h20_m40_c10"


def _div8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


def mobilenet_v1(alpha: float) -> str:
    schedule = (
        [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    )
    blocks = [f"ds_k3_s{s}_c{_div8(c * alpha)}_r1_relu" for c, s in schedule]
    return "|".join([LOGMEL_49x40, f"stem:c2d_k3_s2_c{_div8(32 * alpha)}_relu", *blocks, "head:c0", "n12"])


def mobilenet_v2(alpha: float) -> str:
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    blocks = [f"uib_a0_k3_e{t}_s{s}_c{_div8(c * alpha)}_r{n}_relu6" for t, c, n, s in settings]
    return "|".join(
        [LOGMEL_49x40, f"stem:c2d_k3_s2_c{_div8(32 * alpha)}_relu6", *blocks, "head:c1280_relu6", "n12"]
    )


PRESETS: dict[str, str] = {
    "mobilenet_v1_x0.25": mobilenet_v1(0.25),
    "mobilenet_v1_x0.5": mobilenet_v1(0.5),
    "mobilenet_v1_x1.0": mobilenet_v1(1.0),
    "mobilenet_v2_x0.35": mobilenet_v2(0.35),
    "mobilenet_v2_x0.5": mobilenet_v2(0.5),
    "mobilenet_v2_x1.0": mobilenet_v2(1.0),
    "ds_cnn_s": f"{MFCC_49x10}|stem:c2d_k10x4_s2_c64_relu|ds_k3_s1_c64_r4_relu|head:c0|n12",
    "micro_speech_tiny_conv": f"{LOGMEL_49x40}|stem:c2d_k10x8_s2_c8_relu|head:c0_flatten|n12",
}

BASELINES: tuple[str, ...] = ("mobilenet_v1_x0.25", "mobilenet_v2_x0.35", "ds_cnn_s")


def resolve_arch(text: str) -> ArchSpec:
    """A preset name or a spec string -> ArchSpec."""
    text = text.strip()
    if text in PRESETS:
        return ArchSpec.from_str(PRESETS[text])
    if "|" not in text and ":" not in text:
        raise SpecError(f"{text!r} is neither a preset nor a spec string; presets: {', '.join(PRESETS)}")
    return ArchSpec.from_str(text)
