from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from audio_nas.config import config_hash, dump_yaml, from_dict, load_yaml, to_dict
from audio_nas.errors import ConfigError
from audio_nas.features.config import FrontEndConfig


@dataclass(frozen=True, kw_only=True)
class Inner:
    depth: int = 2


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = "x"
    rate_hz: float = 1.0
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = Inner()
    maybe: int | None = None


def test_unknown_key_names_key_and_suggestion():
    with pytest.raises(ConfigError, match=r"'rate_h'.*did you mean 'rate_hz'"):
        from_dict(Outer, {"rate_h": 2})


def test_nested_unknown_key_has_dotted_path():
    with pytest.raises(ConfigError, match=r"inner\.dept"):
        from_dict(Outer, {"inner": {"dept": 3}})


@pytest.mark.parametrize(
    "data, key",
    [
        ({"rate_hz": "fast"}, "rate_hz"),
        ({"mode": "c"}, "mode"),
        ({"sizes": [1, "x"]}, r"sizes\[1\]"),
        ({"inner": {"depth": 2.5}}, "inner.depth"),
        ({"maybe": "no"}, "maybe"),
        ({"name": 3}, "name"),
    ],
)
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(Outer, data)


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="depth"):
        from_dict(Outer, {"inner": {"depth": True}})


def test_round_trip_yaml(tmp_path):
    cfg = from_dict(Outer, {"rate_hz": 3, "sizes": [4, 5], "inner": {"depth": 7}, "maybe": 1})
    assert cfg.rate_hz == 3.0 and cfg.sizes == (4, 5) and cfg.inner.depth == 7
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(Outer, tmp_path / "c.yaml") == cfg
    assert config_hash(cfg) == config_hash(from_dict(Outer, to_dict(cfg)))
    assert config_hash(cfg) != config_hash(Outer())


def test_exponent_numbers_that_yaml_1_1_reads_as_strings_are_floats(tmp_path):
    (tmp_path / "c.yaml").write_text("rate_hz: 1.0e10\n")  # PyYAML: the string '1.0e10'
    assert load_yaml(Outer, tmp_path / "c.yaml").rate_hz == 1.0e10
    assert from_dict(Outer, {"rate_hz": "2e-3"}).rate_hz == 2e-3
    with pytest.raises(ConfigError, match="rate_hz"):
        from_dict(Outer, {"rate_hz": "1e"})
    with pytest.raises(ConfigError, match="inner.depth"):  # integers stay strict
        from_dict(Outer, {"inner": {"depth": "1e3"}})


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(Outer, tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(Outer, tmp_path / "bad.yaml")


def test_frontend_shape_matches_micro_speech_and_mlperf():
    # TFLM micro_speech: 16 kHz, 30 ms window, 20 ms stride, 40 channels -> 49 frames
    assert FrontEndConfig(window_ms=30, hop_ms=20, n_mels=40).output_shape == (49, 40)
    # MLPerf Tiny KWS: 49x10 MFCC with a 40 ms window and 20 ms hop
    assert FrontEndConfig(kind="mfcc", window_ms=40, hop_ms=20, n_mfcc=10).output_shape == (49, 10)
    assert FrontEndConfig(window_ms=30).n_fft_effective == 512


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"kind": "wavelet"}, "kind"),
        ({"hop_ms": 40, "window_ms": 30}, "hop_ms"),
        ({"n_mfcc": 50, "kind": "mfcc"}, "n_mfcc"),
        ({"fmax_hz": 9000}, "fmax_hz"),
        ({"n_fft": 128}, "n_fft"),
        ({"clip_ms": 10}, "clip_ms"),
    ],
)
def test_frontend_rejects_bad_values_naming_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        FrontEndConfig(**kwargs)


@dataclass(frozen=True, kw_only=True)
class Fixed:
    point: tuple[float, float, int] = (1.0, 2.0, 3)


def test_fixed_length_tuple_fields():
    assert from_dict(Fixed, {"point": [0.5, 1, 7]}).point == (0.5, 1.0, 7)
    with pytest.raises(ConfigError, match=r"point: expected 3 items"):
        from_dict(Fixed, {"point": [1.0, 2.0]})
    with pytest.raises(ConfigError, match=r"point\[2\]"):
        from_dict(Fixed, {"point": [1.0, 2.0, 3.5]})
