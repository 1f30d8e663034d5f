"""Model inversion in feature space: recover class-balanced inputs (log-mel, MFCC or PCEN frames) from a
trained teacher alone, in the spirit of DeepInversion (Yin et al. 2020) and data-free NAS with recursive
label calibration (Liu et al. 2022), adapted to spectrograms.

Each batch starts from the teacher front-end's features of random noise (data-free: noise is not data),
then the inputs are optimised with Adam on

  ce         cross-entropy of the teacher's output to the target distribution (see "rounds" below)
  bn         batch-norm statistics matching: every BN layer's batch mean/variance of its input against
             its running statistics (forward hooks), the first layer ``first_bn_multiplier`` x heavier
  feature    feature-level regularisation: each *example's* per-channel mean/variance at the first
             ``feature_layers`` BN layers close to the running statistics, in units of the running std
             (batch-level matching alone lets a batch of extreme examples average out to the right stats)
  diversity  mean positive cosine similarity of the penultimate embeddings of same-class examples in
             the batch (fights mode collapse; the classifier's input is hooked)
  tv_time, tv_freq   squared differences along time and along frequency (spectrogram smoothness)
  compete    (only with a ``student``, Adaptive DeepInversion, Yin et al. 2020) 1 - the Jensen-Shannon
             divergence (base 2) between the teacher's and the student's predictions: the examples move to
             where a student trained on the set so far disagrees with the teacher, i.e. where it still has
             something to learn; the student sees them rendered in its own front-end (source-filter prior)
and the features the teacher sees are clamped to the per-bin range the front-end can produce on probe
audio (``features.synthset.frontend_value_range``): the energy/value-range prior.

Coarse parametrisation (``coarse_factor`` k > 1): the optimised variable is a grid k times coarser in
time and in frequency, bilinearly upsampled to the feature shape before the teacher sees it, so every
synthesised input is smooth at the scale of k frames and k bins: a prior of spectrogram shapes (formant
and energy blobs) instead of per-cell texture. With teacher-labelled mixtures it did not separate from
per-cell inversion (docs/benchmarks.md, "Data-free search"), so the default is 1.

Source-filter prior (``prior="source-filter"``, ``training.source_filter``): instead of the features,
the variables are the parameters of a formant synthesiser (pitch contour, four formant tracks, voicing
and frication envelopes, a stationary background), rendered through the teacher's own mel front-end, so
every synthesised input is a speech-like spectrum; the default since it more than doubled a student's real
test accuracy (docs/benchmarks.md, "A source-filter prior"). ``prior="grid"`` optimises the features
themselves, per cell or coarse (for teachers of sounds other than speech).

Regional updates (grid prior only): at every step each example only takes the update inside a random
time-frequency rectangle (at least ``region_min_frac`` of each axis). With either prior the teacher sees
the batch rolled in time by up to ``jitter_frames``: examples of one class grow different regions instead
of one template.

Recursive label calibration (``rounds``): round 0 optimises to one-hot targets. After each round the
teacher's own prediction on the round's result, softened by ``calibration_temperature``, becomes the
target of the next round, which starts again from fresh noise (as the reference code of Liu et al. does),
so the final examples carry the teacher's relative class similarities instead of a maximally confident
one-hot. An example whose calibrated prediction left its class keeps the one-hot target, which keeps the
set class-balanced. The stored soft labels are the teacher's logits on the final features.

Deterministic from the seed on CPU (all randomness comes from one ``torch.Generator`` and one numpy
Generator); on a GPU, cuDNN kernels can differ in the last bits.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audio_nas.errors import ConfigError, TrainingError
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.frontends import MelFrontEnd, make_frontend
from audio_nas.features.synthset import frontend_value_range
from audio_nas.progress import Progress
from audio_nas.space.spec import frontend_to_str
from audio_nas.training.source_filter import SourceFilterPrior
from audio_nas.training.teacher import Teacher

log = logging.getLogger(__name__)

ALL_TERMS = ("ce", "bn", "feature", "diversity", "tv_time", "tv_freq", "range")
BN_TERMS = ("bn", "feature")
PRIORS = ("grid", "source-filter")


@dataclass(frozen=True, kw_only=True)
class InversionConfig:
    per_class: int = 100
    steps: int = 200  # optimisation steps per batch and round
    rounds: int = 2  # recursive label calibration rounds (1 = one-hot targets only)
    batch_size: int = 48
    lr: float = 0.1
    w_ce: float = 1.0
    w_bn: float = 0.1
    first_bn_multiplier: float = 10.0
    w_feature: float = 0.01
    feature_layers: int = 2
    w_diversity: float = 0.1
    w_tv_time: float = 0.02
    w_tv_freq: float = 0.02
    w_compete: float = 0.0  # weight of the teacher-student competition term (needs a student)
    calibration_temperature: float = 2.0
    region_min_frac: float = 0.5
    jitter_frames: int = 3
    coarse_factor: int = 1  # optimise a grid this many times coarser in time and frequency (1 = per cell)
    prior: str = "source-filter"  # or grid (the features themselves, per cell or coarse); module doc
    # teacher-labelled mixtures added to the train split: in the power domain for the source-filter prior
    # (training.portable_synth), of the feature matrices for the grid prior (training.function_matching)
    mixtures: int = 20_000
    val_fraction: float = 0.15
    seed: int = 0
    device: str = "auto"  # cpu, cuda or auto (a GPU when present)

    def __post_init__(self) -> None:
        for name in ("per_class", "steps", "rounds", "batch_size", "coarse_factor"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mixtures < 0:
            raise ConfigError(f"mixtures must be >= 0, got {self.mixtures}")
        if not (0 < self.region_min_frac <= 1):
            raise ConfigError(f"region_min_frac must be in (0, 1], got {self.region_min_frac}")
        if not (0 <= self.val_fraction < 1):
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.w_compete < 0:
            raise ConfigError(f"w_compete must be >= 0, got {self.w_compete}")
        if self.lr <= 0 or self.calibration_temperature <= 0:
            raise ConfigError("lr and calibration_temperature must be > 0")
        if self.prior not in PRIORS:
            raise ConfigError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if self.prior == "source-filter" and self.coarse_factor != 1:
            raise ConfigError(
                "coarse_factor applies to the grid prior only; leave it at 1 with prior source-filter"
            )
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"device must be cpu, cuda or auto, got {self.device!r}")

    def weights(self) -> dict[str, float]:
        return {
            "ce": self.w_ce,
            "bn": self.w_bn,
            "feature": self.w_feature,
            "diversity": self.w_diversity,
            "tv_time": self.w_tv_time,
            "tv_freq": self.w_tv_freq,
            "compete": self.w_compete,
        }


@dataclass
class InversionResult:
    x: np.ndarray  # float32 [N, T, F]
    labels: np.ndarray  # int64 [N] target classes
    split: np.ndarray  # uint8 [N] 0 train / 1 validation
    teacher_logits: np.ndarray  # float32 [N, classes]
    terms: tuple[str, ...]  # the loss terms that applied
    loss_history: list[dict[str, float]]  # per (batch, round): first and last step's terms
    wall_s: float
    device: str = "cpu"  # where the inversion ran
    params: dict[str, np.ndarray] | None = None  # the prior's final parameters per example (source-filter)


class _BNHooks:
    """Forward hooks on BN layers: batch-level and per-example statistics of each layer's input."""

    def __init__(self, layers: list[nn.Module], feature_layers: int):
        self.layers = layers
        self.feature_layers = feature_layers
        self.bn: list[torch.Tensor] = []
        self.feature: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(layers)]

    def _hook(self, index: int):
        def fn(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
            x = inputs[0]
            dims = [0] + list(range(2, x.ndim))
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            rm, rv = module.running_mean, module.running_var
            self.bn.append(torch.linalg.vector_norm(mean - rm) + torch.linalg.vector_norm(var - rv))
            if index < self.feature_layers and x.ndim > 2:
                sd = torch.sqrt(rv + module.eps)
                m_i = x.mean(list(range(2, x.ndim)))  # [B, C]
                v_i = x.var(list(range(2, x.ndim)), unbiased=False)
                z_mean = ((m_i - rm) / sd).pow(2).mean()
                z_var = (torch.log((v_i + module.eps) / (rv + module.eps))).pow(2).mean()
                self.feature.append(z_mean + z_var)

        return fn

    def reset(self) -> None:
        self.bn.clear()
        self.feature.clear()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _embedding_hook(model: nn.Module) -> tuple[list[torch.Tensor], Any]:
    """Hook the input of the last Linear (or the model's ``classifier``): the penultimate embedding."""
    target = getattr(model, "classifier", None)
    if target is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        target = linears[-1] if linears else None
    store: list[torch.Tensor] = []
    if target is None:
        return store, None
    handle = target.register_forward_pre_hook(lambda _m, inp: store.append(inp[0].flatten(1)))
    return store, handle


def _bn_layers_run(model: nn.Module, hooks: _BNHooks, teacher: Teacher, device: torch.device) -> bool:
    """Whether a forward pass calls the BN layers (a QAT teacher folds them and never does)."""
    hooks.reset()
    with torch.no_grad():
        model(torch.zeros(2, *teacher.frontend.output_shape, device=device))
    ran = bool(hooks.bn)
    hooks.reset()
    return ran


def applicable_terms(teacher: Teacher, has_embedding: bool) -> tuple[str, ...]:
    terms = [t for t in ALL_TERMS if teacher.bn_layers or t not in BN_TERMS]
    return tuple(t for t in terms if has_embedding or t != "diversity")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device is 'cuda' but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def _noise_init(teacher: Teacher, n: int, rng: np.random.Generator) -> np.ndarray:
    """The front-end's features of white/brown-ish noise at random levels (-50..-5 dBFS)."""
    fe = teacher.frontend
    white = rng.standard_normal((n, fe.clip_samples))
    colour = rng.uniform(0, 1, (n, 1))  # mix of white and integrated (low-pass) noise
    brown = np.cumsum(white, axis=1)
    brown -= brown.mean(axis=1, keepdims=True)
    brown /= brown.std(axis=1, keepdims=True) + 1e-9
    audio = (1 - colour) * white + colour * brown
    gain = 10 ** (rng.uniform(-50, -5, (n, 1)) / 20)
    audio = np.clip(audio * gain, -1, 1).astype(np.float32)
    return make_frontend(fe)(audio)


def _coarse_shape(t: int, f: int, factor: int) -> tuple[int, int]:
    return max(1, math.ceil(t / factor)), max(1, math.ceil(f / factor))


def _render(z: torch.Tensor, t: int, f: int) -> torch.Tensor:
    """The coarse variable [B, t', f'] upsampled (bilinear, corners aligned) to features [B, t, f]."""
    if z.shape[1:] == (t, f):
        return z
    return F.interpolate(z[:, None], size=(t, f), mode="bilinear", align_corners=True)[:, 0]


def _region_mask(b: int, t: int, f: int, frac: float, gen: torch.Generator) -> torch.Tensor:
    """[B, T, F] masks of one random rectangle each, covering at least ``frac`` of each axis."""
    u = torch.rand(b, 4, generator=gen)
    lt = torch.clamp((frac + (1 - frac) * u[:, 0]) * t, min=1).round().long()
    lf = torch.clamp((frac + (1 - frac) * u[:, 1]) * f, min=1).round().long()
    st = ((t - lt).float() * u[:, 2]).floor().long()
    sf = ((f - lf).float() * u[:, 3]).floor().long()
    ti = torch.arange(t)[None, :]
    fi = torch.arange(f)[None, :]
    mt = (ti >= st[:, None]) & (ti < (st + lt)[:, None])
    mf = (fi >= sf[:, None]) & (fi < (sf + lf)[:, None])
    return (mt[:, :, None] & mf[:, None, :]).float()


def _losses(
    x: torch.Tensor,
    targets: torch.Tensor,
    teacher: nn.Module,
    hooks: _BNHooks | None,
    emb: list[torch.Tensor],
    cfg: InversionConfig,
    labels: torch.Tensor,
    shift: int,
    student_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    if hooks is not None:
        hooks.reset()
    emb.clear()
    xin = torch.roll(x, shifts=shift, dims=1) if shift else x
    logits = teacher(xin)
    terms: dict[str, torch.Tensor] = {
        "ce": -(targets * F.log_softmax(logits, dim=1)).sum(1).mean(),
        "tv_time": (x[:, 1:] - x[:, :-1]).pow(2).mean(),
        "tv_freq": (x[:, :, 1:] - x[:, :, :-1]).pow(2).mean(),
    }
    if hooks is not None and hooks.bn:
        scale = [cfg.first_bn_multiplier] + [1.0] * (len(hooks.bn) - 1)
        terms["bn"] = sum(s * v for s, v in zip(scale, hooks.bn, strict=True)) / len(hooks.bn)
        if hooks.feature:
            terms["feature"] = sum(hooks.feature) / len(hooks.feature)
    if emb:
        e = F.normalize(emb[-1], dim=1)
        sim = e @ e.T
        same = (labels[:, None] == labels[None, :]) & ~torch.eye(
            len(labels), dtype=torch.bool, device=x.device
        )
        terms["diversity"] = (sim.clamp(min=0) * same).sum() / same.sum().clamp(min=1)
    if student_logits is not None:
        terms["compete"] = 1 - js_divergence(logits, student_logits).mean()
    w = cfg.weights()
    total = sum(w[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def js_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Per-example Jensen-Shannon divergence of two predictions, base 2 (0: the same, 1: disjoint)."""
    lp, lq = F.log_softmax(logits_p, dim=1), F.log_softmax(logits_q, dim=1)
    lm = torch.logsumexp(torch.stack([lp, lq]), dim=0) - math.log(2)
    js = 0.5 * (lp.exp() * (lp - lm)).sum(1) + 0.5 * (lq.exp() * (lq - lm)).sum(1)
    return js / math.log(2)


class StudentView:
    """A frozen student in the inversion loop: its front-end, value range and model."""

    def __init__(self, student: Teacher, teacher: Teacher, prior: str, device: torch.device):
        if tuple(student.class_names) != tuple(teacher.class_names):
            raise ConfigError(
                f"the student {student.path} has classes {list(student.class_names)}, the teacher "
                f"{list(teacher.class_names)}: pass a student trained on a set of this teacher"
            )
        same_fe = student.frontend == teacher.frontend
        if not same_fe and prior != "source-filter":
            raise ConfigError(
                f"the student's front-end ({frontend_to_str(student.frontend)}) is not the teacher's "
                f"({frontend_to_str(teacher.frontend)}); with --prior {prior} the examples exist in the "
                "teacher's front-end only: use a student with the teacher's front-end, or the source-filter "
                "prior"
            )
        self.cfg = student.frontend
        self.fe = None if same_fe else make_frontend(student.frontend)
        if self.fe is not None:
            if not isinstance(self.fe, MelFrontEnd):
                raise ConfigError(
                    f"a student with front-end {frontend_to_str(student.frontend)} cannot see source-filter "
                    "examples: they render in mel front-ends (logmel, mfcc) only"
                )
            self.fe.mel = self.fe.mel.to(device)
        lo, hi = frontend_value_range(student.frontend)
        self.lo, self.hi = torch.from_numpy(lo).to(device), torch.from_numpy(hi).to(device)
        self.model = student.model.to(device).eval()
        for q in self.model.parameters():
            q.requires_grad_(False)

    def logits(self, prior: InversionVariables, x_teacher: torch.Tensor) -> torch.Tensor:
        """The student's logits on the prior's current examples (in its own front-end)."""
        x = x_teacher if self.fe is None else prior.render_in(self.cfg, self.fe)
        return self.model(torch.max(torch.min(x, self.hi), self.lo))


class InversionVariables(Protocol):
    """What an inversion prior gives the optimisation loop (a plug-in point: ``PRIORS``)."""

    def variables(self) -> list[torch.Tensor]: ...

    def draw_update_mask(self, gen: torch.Generator) -> None: ...

    def render(self) -> torch.Tensor: ...  # [B, T, F] features before the value-range clamp

    def step(self, opt: torch.optim.Optimizer) -> None: ...

    def state(self) -> dict[str, np.ndarray] | None: ...  # parameters to store (None: the features are all)

    def render_in(self, frontend: FrontEndConfig, fe: MelFrontEnd) -> torch.Tensor: ...  # another front-end


class _GridPrior:
    """The features themselves as the variable, per cell or on a ``coarse_factor`` x coarser grid, with
    regional updates (each example moves only inside a random rectangle per step)."""

    def __init__(self, x0: torch.Tensor, cfg: InversionConfig, lo: torch.Tensor, hi: torch.Tensor):
        self.t, self.f = x0.shape[1:]
        self.zt, self.zf = _coarse_shape(self.t, self.f, cfg.coarse_factor)
        self.z = F.adaptive_avg_pool2d(x0[:, None], (self.zt, self.zf))[:, 0].clone().requires_grad_(True)
        self.region_min_frac = cfg.region_min_frac
        self.lo, self.hi = lo, hi
        self.mask: torch.Tensor | None = None

    def variables(self) -> list[torch.Tensor]:
        return [self.z]

    def draw_update_mask(self, gen: torch.Generator) -> None:
        b = self.z.shape[0]
        self.mask = _region_mask(b, self.zt, self.zf, self.region_min_frac, gen).to(self.z.device)

    def render(self) -> torch.Tensor:
        return _render(self.z, self.t, self.f)

    def step(self, opt: torch.optim.Optimizer) -> None:
        before = self.z.detach().clone()
        opt.step()
        with torch.no_grad():
            if self.mask is not None:
                self.z.copy_(before + self.mask * (self.z - before))  # regional update
            if self.z.shape[1:] == (self.t, self.f):  # per-cell: keep the variable in range
                self.z.copy_(torch.max(torch.min(self.z, self.hi), self.lo))

    def state(self) -> None:
        return None

    def render_in(self, frontend: FrontEndConfig, fe: MelFrontEnd) -> torch.Tensor:
        raise ConfigError("grid examples exist in the teacher's front-end only")


class _SourceFilterVariables:
    """``training.source_filter.SourceFilterPrior`` in the inversion loop (no regional updates: every
    parameter shapes the whole example)."""

    def __init__(self, teacher: Teacher, n: int, rng: np.random.Generator, device: torch.device):
        self.prior = SourceFilterPrior(teacher.frontend, n, rng, device)

    def variables(self) -> list[torch.Tensor]:
        return self.prior.variables()

    def draw_update_mask(self, gen: torch.Generator) -> None:
        pass

    def render(self) -> torch.Tensor:
        return self.prior.render()

    def step(self, opt: torch.optim.Optimizer) -> None:
        opt.step()

    def state(self) -> dict[str, np.ndarray]:
        return self.prior.state()

    def render_in(self, frontend: FrontEndConfig, fe: MelFrontEnd) -> torch.Tensor:
        return self.prior.render_in(frontend, fe)


def _make_prior(
    cfg: InversionConfig,
    teacher: Teacher,
    n: int,
    rng: np.random.Generator,
    device: torch.device,
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> InversionVariables:
    if cfg.prior == "source-filter":
        return _SourceFilterVariables(teacher, n, rng, device)
    x0 = torch.from_numpy(_noise_init(teacher, n, rng)).to(device).clamp(lo, hi)
    return _GridPrior(x0, cfg, lo, hi)


def invert_teacher(
    teacher: Teacher, cfg: InversionConfig, *, student: Teacher | None = None, progress: bool = True
) -> InversionResult:
    """Synthesise ``cfg.per_class`` examples of every class of ``teacher``; see the module doc. With a
    ``student`` (and ``cfg.w_compete`` > 0) the competition term steers them to where it disagrees."""
    if (student is not None) != (cfg.w_compete > 0):
        raise ConfigError(
            "the competition term needs both a student and w_compete > 0 "
            f"(got {'a' if student is not None else 'no'} student and w_compete {cfg.w_compete})"
        )
    device = resolve_device(cfg.device)
    view = StudentView(student, teacher, cfg.prior, device) if student is not None else None
    model = teacher.model.to(device).eval()
    k = len(teacher.class_names)
    t_frames, n_bins = teacher.frontend.output_shape
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    lo_np, hi_np = frontend_value_range(teacher.frontend)
    lo = torch.from_numpy(lo_np).to(device)
    hi = torch.from_numpy(hi_np).to(device)

    bn_layers = teacher.bn_layers
    hooks = _BNHooks(bn_layers, cfg.feature_layers) if bn_layers else None
    emb, emb_handle = _embedding_hook(model)
    terms = applicable_terms(teacher, emb_handle is not None) + (("compete",) if view is not None else ())
    if hooks is not None and not _bn_layers_run(model, hooks, teacher, device):
        # e.g. a quantisation-aware teacher: its BN statistics are folded into the convolutions, the BN
        # modules never run, so their hooks see nothing
        hooks.close()
        hooks, bn_layers = None, []
        terms = tuple(t for t in terms if t not in BN_TERMS)
    if not bn_layers:
        log.warning(
            "teacher %s has no batch-norm layers that run with running statistics (none, or folded into the "
            "convolutions by quantisation-aware training): batch-norm statistics matching and the "
            "feature-level term do not apply; inverting with %s only",
            teacher.path,
            ", ".join(terms),
        )
    labels = np.tile(np.arange(k), cfg.per_class)
    labels = labels[rng.permutation(len(labels))]  # class-mixed batches, as real data batches are
    n = len(labels)
    out_x = np.empty((n, t_frames, n_bins), np.float32)
    history: list[dict[str, float]] = []
    states: list[dict[str, np.ndarray]] = []
    n_batches = math.ceil(n / cfg.batch_size)
    t0 = time.perf_counter()
    bar = Progress(
        f"synthesize {n} examples ({k} classes)",
        n_batches * cfg.rounds,
        unit="round",
        logger=log,
        enabled=progress,
    )
    try:
        with bar:
            for b in range(n_batches):
                sl = slice(b * cfg.batch_size, min(n, (b + 1) * cfg.batch_size))
                yb = torch.from_numpy(labels[sl]).to(device)
                onehot = F.one_hot(yb, k).float()
                targets = onehot
                for r in range(cfg.rounds):
                    prior = _make_prior(cfg, teacher, len(yb), rng, device, lo, hi)
                    opt = torch.optim.Adam(prior.variables(), lr=cfg.lr, betas=(0.5, 0.9))
                    first: dict[str, float] = {}
                    for step in range(cfg.steps):
                        for g in opt.param_groups:  # cosine decay
                            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
                        shift = int(
                            torch.randint(-cfg.jitter_frames, cfg.jitter_frames + 1, (1,), generator=gen)
                        )
                        prior.draw_update_mask(gen)
                        opt.zero_grad(set_to_none=True)
                        x = torch.max(torch.min(prior.render(), hi), lo)  # value-range prior
                        s_logits = view.logits(prior, x) if view is not None else None
                        loss, parts = _losses(x, targets, model, hooks, emb, cfg, yb, shift, s_logits)
                        if not math.isfinite(float(loss.detach())):
                            raise TrainingError(
                                f"inversion loss became {loss.item()} (batch {b + 1}, round {r + 1}); "
                                f"lower the step size (now {cfg.lr})"
                            )
                        if step == 0:
                            first = parts
                        loss.backward()
                        prior.step(opt)
                    with torch.no_grad():
                        x = torch.max(torch.min(prior.render(), hi), lo)
                    history.append(
                        {
                            "batch": b,
                            "round": r,
                            **{f"first_{a}": v for a, v in first.items()},
                            **{f"last_{a}": v for a, v in parts.items()},
                        }
                    )
                    with torch.no_grad():
                        logits = model(x)
                    if r + 1 < cfg.rounds:  # recursive label calibration
                        soft = F.softmax(logits / cfg.calibration_temperature, dim=1)
                        keep = (soft.argmax(1) == yb)[:, None]
                        targets = torch.where(keep, soft, onehot)
                    bar.update(1, ce=f"{parts['ce']:.3f}", bn=f"{parts.get('bn', float('nan')):.3f}")
                out_x[sl] = x.detach().cpu().numpy()
                state = prior.state()
                if state is not None:
                    states.append(state)
    finally:
        if hooks is not None:
            hooks.close()
        if emb_handle is not None:
            emb_handle.remove()
        if view is not None:
            view.model.cpu()
    logits_all = teacher_logits_of(model, out_x, device)
    model.cpu()
    split = np.zeros(n, np.uint8)
    for c in range(k):  # class-balanced validation split
        idx = np.flatnonzero(labels == c)
        split[idx[: int(round(cfg.val_fraction * len(idx)))]] = 1
    return InversionResult(
        x=out_x,
        labels=labels.astype(np.int64),
        split=split,
        teacher_logits=logits_all,
        terms=terms,
        loss_history=history,
        wall_s=time.perf_counter() - t0,
        device=str(device),
        params={k: np.concatenate([s[k] for s in states]) for k in states[0]} if states else None,
    )


@torch.no_grad()
def teacher_logits_of(model: nn.Module, x: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    out = []
    for s in range(0, len(x), 256):
        out.append(model(torch.as_tensor(np.asarray(x[s : s + 256]), device=device)).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def confidence_stats(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Teacher confidence on synthesised data: agreement with the targets, max-probability quantiles."""
    p = torch.softmax(torch.from_numpy(logits), 1).numpy()
    conf = p.max(1)
    agree = p.argmax(1) == labels
    ent = -(p * np.log(p + 1e-12)).sum(1)
    k = logits.shape[1]
    per_class = {int(c): float(agree[labels == c].mean()) for c in range(k) if (labels == c).any()}
    return {
        "agreement": float(agree.mean()),
        "agreement_per_class": per_class,
        "confidence_median": float(np.median(conf)),
        "confidence_q10_q90": [float(np.quantile(conf, 0.1)), float(np.quantile(conf, 0.9))],
        "entropy_mean_nats": float(ent.mean()),
        "class_counts": {int(c): int((labels == c).sum()) for c in range(k)},
    }
