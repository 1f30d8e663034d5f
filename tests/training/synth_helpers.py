"""Constants of the data-free training tests (the fixture that uses them is in this folder's conftest.py)."""

from audio_nas.features import FrontEndConfig

TINY_TEACHER_SPEC = "fe:logmel_w30_h20_m20_l300|stem:c2d_k3_s2_c8_relu|ds_k3_s1_c8_r1_relu|head:c0|n3"
TINY_SYNTHESIS = dict(per_class=4, steps=6, batch_size=12, rounds=1, mixtures=24, device="cpu")
OTHER_FRONTEND = FrontEndConfig(kind="mfcc", window_ms=40, hop_ms=30, n_mels=32, n_mfcc=13, clip_ms=300)
