"""Synthesised sets that any mel front-end can read: the source-filter parameters and a mixture recipe are
stored beside the features, so a candidate with another front-end than the teacher's gets the *same*
examples rendered through its own framing, filterbank and log / DCT / PCEN.

Why: with features alone a data-free search is pinned to the teacher's front-end, and on synth-kws the
real-data search's cheapest models use other front-ends (32-bin MFCC at 30 ms hops); the pinned data-free
front had no model below 320 µJ (docs/benchmarks.md, "A source-filter prior"). A source-filter example is
a set of curves over the clip's time and over frequency in Hz (``training.source_filter``), so it has no
frame rate or filterbank of its own; only the mixtures had one, because they were mixed, rolled and masked
in the teacher's feature space. Here they are defined where every front-end can follow them:

  mixture = weight * foreground_a + (1 - weight) * foreground_b     (linear power: two sounds at once)
            with foreground removed inside time masks (s) and frequency bands (Hz),
          + weight * background_a + (1 - weight) * background_b     (the floor stays: a drop-out, not a hole)
  both curves delayed by ``shift_s`` (the roll of the feature-space mixtures, continuous, ends held)
  and, for mixtures drawn with a ``WarpRange`` (``add-mixtures --warp``), both sounds re-voiced: pitch,
  vocal-tract length, tempo and foreground level of the mixture's own (``source_filter_power``'s ``warp``)

Proxy speech (``training.proxy_speech``, ``audio-nas data add-proxy``): clips of public speech and pairs of
them, stored as int16 audio with their pair recipe (``ProxyRecipe``), come after the mixtures and render
through any front-end as audio does.

The teacher labels each mixture once, on its rendering in the teacher's front-end; a candidate's rendering
of the same mixture gets that label. Renderings for other front-ends are written once into
``DIR/rendered/`` (atomic) and memory-mapped by every later trial.

Hand written: the rendering is ``training.source_filter``'s, and no library makes teacher-labelled mixture
recipes.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audio_nas.errors import ConfigError, TrainingError
from audio_nas.features.cache import FeatureSet
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.frontends import FrontEnd, MelFrontEnd, make_frontend
from audio_nas.features.synthset import SynthSet, frontend_value_range
from audio_nas.progress import Progress
from audio_nas.space.spec import frontend_to_str
from audio_nas.training.config import SpecAugmentConfig
from audio_nas.training.source_filter import frame_centres_s, full_scale_power, source_filter_power

log = logging.getLogger(__name__)

PARAMS_FILE = "source_filter_params.npz"
RECIPE_FILE = "mixture_recipe.npz"
RENDER_DIR = "rendered"
RENDER_VERSION = 1  # bump when the rendering changes: old files under rendered/ are then not reused
CHUNK = 256  # examples rendered per forward pass
PROXY_FILE = "proxy_audio.npz"  # proxy speech clips and pair recipe (training.proxy_speech)
INT16_SCALE = 32767.0


@dataclass(frozen=True)
class MixtureRecipe:
    """How each teacher-labelled mixture is made from two inversions, in units every front-end shares."""

    a: np.ndarray  # int64 [n]: row of the first inversion in the set (of the mixture's own split)
    b: np.ndarray  # int64 [n]: row of the second
    weight: np.ndarray  # float32 [n]: power weight of a; b gets 1 - weight
    shift_s: np.ndarray  # float32 [n]: delay of both, seconds (may be negative)
    time_masks_s: np.ndarray  # float32 [n, k, 2]: (start, end) of each time mask, seconds
    freq_masks_hz: np.ndarray  # float32 [n, k, 2]: (low, high) of each frequency mask, Hz
    # a speaker's and a speaking rate's variation of both sounds (``source_filter_power``'s ``warp``);
    # None = none (recipes written before it, and mixtures drawn without ``warp``)
    f0_scale: np.ndarray | None = None  # float32 [n]: pitch factor
    formant_scale: np.ndarray | None = None  # float32 [n]: vocal-tract factor (formants, frication band)
    tempo: np.ndarray | None = None  # float32 [n]: > 1 faster
    gain_db: np.ndarray | None = None  # float32 [n]: foreground level, dB

    def __len__(self) -> int:
        return len(self.a)

    def _filled(self) -> MixtureRecipe:
        """The same recipe with every warp array present (identity where it had none)."""
        n = len(self)
        ident = {"f0_scale": 1.0, "formant_scale": 1.0, "tempo": 1.0, "gain_db": 0.0}
        return replace(
            self,
            **{k: np.full(n, v, np.float32) for k, v in ident.items() if getattr(self, k) is None},
        )

    @property
    def warped(self) -> bool:
        return any(getattr(self, k) is not None for k in WARP_FIELDS)

    def rows(self, sl: slice) -> MixtureRecipe:
        return MixtureRecipe(
            **{f.name: None if (v := getattr(self, f.name)) is None else v[sl] for f in fields(self)}
        )

    def concat(self, other: MixtureRecipe) -> MixtureRecipe:
        a, b = (self._filled(), other._filled()) if self.warped or other.warped else (self, other)
        return MixtureRecipe(
            **{
                f.name: None
                if getattr(a, f.name) is None
                else np.concatenate([getattr(a, f.name), getattr(b, f.name)])
                for f in fields(self)
            }
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def warp_tensors(self) -> dict[str, torch.Tensor] | None:
        if not self.warped:
            return None
        return {
            k: torch.from_numpy(np.asarray(v, np.float32))
            for k, v in self._filled().arrays().items()
            if k in WARP_FIELDS
        }

    @classmethod
    def load(cls, path: Path) -> MixtureRecipe:
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls) if f.name in z.files})


WARP_FIELDS = ("f0_scale", "formant_scale", "tempo", "gain_db")


@dataclass(frozen=True)
class WarpRange:
    """How far a warped mixture may move from its two inversions; each factor is drawn log-uniformly
    (the level uniformly in dB) within +- the range. ``strength`` scales all four (0: no warp)."""

    f0_semitones: float = 4.0  # pitch +- 4 semitones (x 0.79-1.26)
    formant_ratio: float = 1.15  # vocal tract x 1/1.15 - 1.15 (an adult's range is about +-15 %)
    tempo_ratio: float = 1.25  # speaking rate x 0.8-1.25
    gain_db: float = 10.0  # foreground level +- 10 dB against the background

    def scaled(self, strength: float) -> WarpRange:
        if strength < 0:
            raise ConfigError(f"the warp strength must be >= 0, got {strength}")
        return WarpRange(
            self.f0_semitones * strength,
            self.formant_ratio**strength,
            self.tempo_ratio**strength,
            self.gain_db * strength,
        )

    def draw(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        def log_uniform(ratio: float) -> np.ndarray:
            return np.exp(rng.uniform(-np.log(ratio), np.log(ratio), n)).astype(np.float32)

        return {
            "f0_scale": log_uniform(2 ** (self.f0_semitones / 12)),
            "formant_scale": log_uniform(self.formant_ratio),
            "tempo": log_uniform(self.tempo_ratio),
            "gain_db": rng.uniform(-self.gain_db, self.gain_db, n).astype(np.float32),
        }


@dataclass(frozen=True)
class ProxyRecipe:
    """The proxy clips and how each proxy example is made from them."""

    clips: np.ndarray  # int16 [P, samples]: the proxy clips at the teacher's rate and clip length
    a: np.ndarray  # int64 [n]: first clip
    b: np.ndarray  # int64 [n]: second clip (== a with weight 1 for a clip alone)
    weight: np.ndarray  # float32 [n]: power weight of a; b gets 1 - weight
    shift_samples: np.ndarray  # int64 [n]: circular shift of b

    def __len__(self) -> int:
        return len(self.a)

    def audio(self, sl: slice) -> np.ndarray:
        """float32 [k, samples] waveforms of the examples ``sl``."""
        a, b = self.a[sl], self.b[sl]
        first = self.clips[a].astype(np.float32) / INT16_SCALE
        second = (
            np.stack(
                [np.roll(self.clips[j], int(s)) for j, s in zip(b, self.shift_samples[sl], strict=True)]
            ).astype(np.float32)
            / INT16_SCALE
        )
        w = self.weight[sl].astype(np.float32)[:, None]
        return np.sqrt(w) * first + np.sqrt(1.0 - w) * second

    def subset(self, rows: np.ndarray) -> ProxyRecipe:
        """The examples ``rows`` (the clips stay as they are)."""
        return ProxyRecipe(
            self.clips, self.a[rows], self.b[rows], self.weight[rows], self.shift_samples[rows]
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def load(cls, path: Path) -> ProxyRecipe:
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})


def render_proxy(recipe: ProxyRecipe, frontend: FrontEnd, sl: slice) -> np.ndarray:
    """The proxy examples ``sl`` through ``frontend`` (built once by the caller: a filterbank per chunk
    would be rebuilt for nothing; float32 [k, T, F]). A stateful front-end (PCEN) starts from its steady
    state in every clip here: no lead-in, unlike the real-data feature cache."""
    return np.asarray(frontend(recipe.audio(sl)), np.float32)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)


def draw_recipe(
    n: int,
    pool: np.ndarray,
    frontend: FrontEndConfig,
    rng: np.random.Generator,
    *,
    jitter_frames: int = 5,
    specaugment: SpecAugmentConfig | None = None,
    warp: WarpRange | None = None,
) -> MixtureRecipe:
    """``n`` mixtures of the rows ``pool`` (the inversions of one split). Shifts, mask widths and positions
    follow the feature-space recipe (``training.function_matching``: up to ``jitter_frames`` frames,
    SpecAugment's mask counts and widths) converted to seconds and to Hz on the teacher's mel scale.
    With ``warp`` each mixture also gets its own pitch, vocal tract, tempo and level (drawn after
    everything else, so the rest of the draw is the same as without it)."""
    if n < 1:
        raise ConfigError(f"the number of mixtures must be >= 1, got {n}")
    if len(pool) < 2:
        raise ConfigError(f"mixing needs at least 2 synthesised examples, got {len(pool)}")
    sa = specaugment or SpecAugmentConfig()
    pool = np.asarray(pool, np.int64)
    hop_s = frontend.hop_samples / frontend.sample_rate_hz
    clip_s = frontend.clip_ms / 1000.0
    a = pool[rng.integers(0, len(pool), n)]
    b = pool[rng.integers(0, len(pool), n)]
    weight = rng.uniform(0.0, 1.0, n).astype(np.float32)
    shift = (rng.uniform(-jitter_frames - 0.5, jitter_frames + 0.5, n) * hop_s).astype(np.float32)
    width_t = rng.uniform(0, sa.time_mask_frames, (n, sa.time_masks)) * hop_s
    start_t = rng.uniform(0, 1, (n, sa.time_masks)) * (clip_s - width_t)
    mel_lo, mel_hi = _hz_to_mel(frontend.fmin_hz), _hz_to_mel(frontend.fmax_hz_effective)
    mel_bin = (mel_hi - mel_lo) / frontend.n_mels
    width_m = rng.uniform(0, sa.freq_mask_bins, (n, sa.freq_masks)) * mel_bin
    start_m = mel_lo + rng.uniform(0, 1, (n, sa.freq_masks)) * (mel_hi - mel_lo - width_m)
    return MixtureRecipe(
        a=a,
        b=b,
        weight=weight,
        shift_s=shift,
        time_masks_s=np.stack([start_t, start_t + width_t], -1).astype(np.float32),
        freq_masks_hz=np.stack([_mel_to_hz(start_m), _mel_to_hz(start_m + width_m)], -1).astype(np.float32),
        **(warp.draw(n, rng) if warp is not None else {}),
    )


class Renderer:
    """Source-filter parameters (and mixtures of them) -> features of one mel front-end."""

    def __init__(self, params: dict[str, np.ndarray], span_s: tuple[float, float], frontend: FrontEndConfig):
        fe = make_frontend(frontend)
        if not isinstance(fe, MelFrontEnd):
            raise ConfigError(f"a source-filter set renders in mel front-ends only, not {frontend.kind!r}")
        self.fe, self.cfg = fe, frontend
        self.params = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in params.items()}
        self.span_s = (float(span_s[0]), float(span_s[1]))
        self.scale = full_scale_power(frontend)
        lo, hi = frontend_value_range(frontend)
        self.lo, self.hi = torch.from_numpy(lo), torch.from_numpy(hi)

    def _power(
        self, rows: np.ndarray, shift_s: torch.Tensor | None, warp: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(np.asarray(rows, np.int64))
        rows_params = {k: v[idx] for k, v in self.params.items()}
        return source_filter_power(rows_params, self.cfg, self.span_s, shift_s, warp)

    def _features(self, power: torch.Tensor) -> torch.Tensor:
        x = self.fe.from_mel_power(self.fe.mel_of_power(self.scale * power))
        return torch.max(torch.min(x, self.hi), self.lo)  # the inversion's value-range prior

    @torch.no_grad()
    def examples(self, rows: np.ndarray) -> torch.Tensor:
        fg, bg = self._power(rows, None)
        return self._features(fg + bg)

    @torch.no_grad()
    def mixtures(self, recipe: MixtureRecipe) -> torch.Tensor:
        shift = torch.from_numpy(recipe.shift_s)
        warp = recipe.warp_tensors()
        fg_a, bg_a = self._power(recipe.a, shift, warp)
        fg_b, bg_b = self._power(recipe.b, shift, warp)
        w = torch.from_numpy(recipe.weight)[:, None, None]
        fg = w * fg_a + (1 - w) * fg_b
        bg = w * bg_a + (1 - w) * bg_b
        t = torch.as_tensor(frame_centres_s(self.cfg), dtype=torch.float32)
        f = torch.linspace(0.0, self.cfg.sample_rate_hz / 2, fg.shape[-1])
        keep = torch.ones_like(fg)
        for k in range(recipe.time_masks_s.shape[1]):
            s, e = torch.from_numpy(recipe.time_masks_s[:, k]).unbind(-1)
            keep = keep * ~((t[None] >= s[:, None]) & (t[None] < e[:, None]))[:, :, None]
        for k in range(recipe.freq_masks_hz.shape[1]):
            lo, hi = torch.from_numpy(recipe.freq_masks_hz[:, k]).unbind(-1)
            keep = keep * ~((f[None] >= lo[:, None]) & (f[None] < hi[:, None]))[:, None, :]
        return self._features(fg * keep + bg)


def label_mixtures(
    model: nn.Module, renderer: Renderer, recipe: MixtureRecipe, *, device: Any = "cpu", progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The mixtures rendered in the teacher's front-end and the teacher's logits on them."""
    n = len(recipe)
    out_x = np.empty((n, *renderer.cfg.output_shape), np.float32)
    out_logits: list[np.ndarray] = []
    model = model.to(device).eval()
    bar = Progress(f"label {n} teacher mixtures", n, unit="example", logger=log, enabled=progress)
    try:
        with bar, torch.no_grad():
            for start in range(0, n, CHUNK):
                xb = renderer.mixtures(recipe.rows(slice(start, start + CHUNK)))
                out_x[start : start + len(xb)] = xb.numpy()
                out_logits.append(model(xb.to(device)).float().cpu().numpy())
                bar.update(len(xb))
    finally:
        model.cpu()
    return out_x, np.concatenate(out_logits).astype(np.float32)


def portable_manifest(span_s: tuple[float, float], has_recipe: bool) -> dict[str, Any]:
    return {
        "params": PARAMS_FILE,
        "mixture_recipe": RECIPE_FILE if has_recipe else None,
        "span_s": [float(span_s[0]), float(span_s[1])],
        "render_version": RENDER_VERSION,
    }


def is_portable(synth: SynthSet) -> bool:
    """Whether the set can be rendered in front-ends other than the teacher's."""
    p = synth.manifest.get("portable")
    return bool(p) and (synth.path / p["params"]).exists()


def _cache_name(frontend: FrontEndConfig) -> str:
    token = re.sub(r"[^A-Za-z0-9_.-]+", "_", frontend_to_str(frontend))
    return f"{token}-r{RENDER_VERSION}.npy"


def check_renderable(synth: SynthSet, frontend: FrontEndConfig) -> None:
    """Raise a TrainingError naming the problem when ``synth`` cannot be read with ``frontend``."""
    teacher = synth.features.frontend
    if frontend == teacher:
        return
    if not is_portable(synth):
        raise TrainingError(
            f"front-end {frontend_to_str(frontend)} differs from the synthesised set's "
            f"{frontend_to_str(teacher)} (the teacher's), and {synth.path} stores features only (made with "
            "--prior grid or before source-filter sets stored their parameters); use the teacher's "
            "front-end or synthesise again with --prior source-filter"
        )
    if (frontend.sample_rate_hz, frontend.clip_ms) != (teacher.sample_rate_hz, teacher.clip_ms):
        raise TrainingError(
            f"front-end {frontend_to_str(frontend)} reads {frontend.sample_rate_hz} Hz, "
            f"{frontend.clip_ms} ms clips; the synthesised set was made for {teacher.sample_rate_hz} Hz, "
            f"{teacher.clip_ms} ms"
        )


def render_synth_features(synth: SynthSet, frontend: FrontEndConfig, *, progress: bool = True) -> FeatureSet:
    """The set's examples (inversions, then mixtures, then proxy speech, in the stored order) in
    ``frontend``; the teacher's own front-end returns the stored features. Cached under ``DIR/rendered/``
    (written atomically)."""
    check_renderable(synth, frontend)
    if frontend == synth.features.frontend:
        return synth.features
    meta = synth.manifest["portable"]
    target = synth.path / RENDER_DIR / _cache_name(frontend)
    n = len(synth.features.labels)
    shape = (n, *frontend.output_shape)
    x = None
    if target.exists():
        try:
            x = np.load(target, mmap_mode="r")
        except (ValueError, OSError):  # a damaged cache file: render again (it is only a cache)
            log.warning("%s is not a readable rendering; rendering the set again", target)
        if x is not None and x.shape != shape:
            x = None
    if x is None:
        x = _render_all(synth, meta, frontend, shape, target, progress)
    return FeatureSet(
        x=x,
        labels=synth.features.labels,
        split=synth.features.split,
        class_names=synth.features.class_names,
        frontend=frontend,
        key=f"{synth.features.key}:{_cache_name(frontend)}",
    )


def _load_proxy(synth: SynthSet) -> ProxyRecipe | None:
    if not synth.n_proxy:
        return None
    try:
        return ProxyRecipe.load(synth.path / synth.manifest["proxy"]["file"])
    except (ValueError, OSError, KeyError) as exc:
        raise TrainingError(
            f"{synth.path}: the stored proxy speech cannot be read ({exc}); add it again with `audio-nas "
            "data add-proxy`, or train on the teacher's front-end"
        ) from exc


def _render_all(
    synth: SynthSet, meta: dict, frontend: FrontEndConfig, shape: tuple, target: Path, progress: bool
) -> np.ndarray:
    try:
        with np.load(synth.path / meta["params"]) as z:
            params = {k: z[k] for k in z.files}
        recipe_file = meta.get("mixture_recipe")
        recipe = MixtureRecipe.load(synth.path / recipe_file) if recipe_file else None
    except (ValueError, OSError, KeyError) as exc:
        raise TrainingError(
            f"{synth.path}: the stored source-filter parameters or mixture recipe cannot be read ({exc}); "
            "synthesise the set again, or train on the teacher's front-end"
        ) from exc
    proxy = _load_proxy(synth)
    renderer = Renderer(params, tuple(meta["span_s"]), frontend)
    n_inv = len(next(iter(params.values())))
    n_mix = len(recipe) if recipe is not None else 0
    n_proxy = len(proxy) if proxy is not None else 0
    if n_inv + n_mix + n_proxy != shape[0]:
        raise TrainingError(
            f"{synth.path}: {n_inv} stored parameter rows, {n_mix} mixtures and {n_proxy} proxy examples do "
            f"not make its {shape[0]} examples; synthesise the set again"
        )
    out = np.empty(shape, np.float32)
    bar = Progress(
        f"render the synthesised set in {frontend_to_str(frontend)}",
        shape[0],
        unit="example",
        logger=log,
        enabled=progress,
    )
    with bar:
        for s in range(0, n_inv, CHUNK):
            rows = np.arange(s, min(n_inv, s + CHUNK))
            out[rows] = renderer.examples(rows).numpy()
            bar.update(len(rows))
        for s in range(0, n_mix, CHUNK):
            part = recipe.rows(slice(s, s + CHUNK))
            out[n_inv + s : n_inv + s + len(part)] = renderer.mixtures(part).numpy()
            bar.update(len(part))
        proxy_fe = make_frontend(frontend)
        for s in range(0, n_proxy, CHUNK):
            part = render_proxy(proxy, proxy_fe, slice(s, s + CHUNK))
            out[n_inv + n_mix + s : n_inv + n_mix + s + len(part)] = part
            bar.update(len(part))
    target.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, out)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return np.load(target, mmap_mode="r")
