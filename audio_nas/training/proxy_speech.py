"""Public proxy speech for a synthesised set: clips that are not the private data, labelled by the teacher.

Why: a data-free student learns the teacher's keyword regions from the inversions and their mixtures, but
those are formant-synthesiser renderings, unlike speech; on synth-kws the 40 k-MAC student C9 stayed 12-14
points below its real-data twin on every pool of them. Speech the user may use (any public corpus, or the
offline synthesisers of ``audio-nas data make kws`` saying *other* words) shows the teacher's behaviour on
real speech sounds. Labelled by the teacher alone (its logits are the soft labels; the proxy's own labels
are never used), half of the pool's train mixtures replaced by such clips raised C9 from 0.612 to 0.660
(docs/benchmarks.md, "Data-free: public proxy speech beside the inversions"). This relaxes the strict
setting (the teacher alone) to the teacher plus speech that is neither the private recordings nor their
words; the manifest records it.

A proxy example is a clip, or a pair of clips overlaid (power weights ``w`` and ``1 - w``, the second one
circularly shifted)::

    audio = sqrt(w) * clip[a] + sqrt(1 - w) * roll(clip[b], shift)      (w = 1: the clip alone)

The clips (int16) and the pair recipe are stored in ``proxy_audio.npz``, so the examples render in *any*
front-end (``portable_synth.render_synth_features``), not only the teacher's. The proxy rows come last,
after the inversions and the mixtures, in the train split only; the validation split is unchanged.
``replace_mixtures`` drops that many random train mixtures first, so the set keeps its size (the measured
setting replaced half of them; replacing all did worse: the students then match the teacher on fewer
validation inversions).

Clips that say a teacher keyword, or a word that sounds like one (``data.words.too_similar`` on espeak-ng
phonemes), are dropped: the proxy must not leak the private words. The word of a clip is its per-clip
``word`` in a generated ``kws:`` set's manifest, else its class name.

Hand-written: no library builds teacher-labelled proxy sets for a synthesised-set format of this project.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from audio_nas.data.dataset import AudioDataset, fix_length, load_dataset
from audio_nas.data.engines import phonemes
from audio_nas.data.kws import read_manifest
from audio_nas.data.words import too_similar
from audio_nas.errors import ConfigError, DataError
from audio_nas.features.frontends import make_frontend
from audio_nas.features.synthset import SynthSet, load_synth_set, write_synth_set
from audio_nas.progress import Progress
from audio_nas.training.grow_synth import DERIVED_KEYS, check_out_dir, layout, teacher_of
from audio_nas.training.inversion import resolve_device
from audio_nas.training.portable_synth import (
    CHUNK,
    INT16_SCALE,
    PARAMS_FILE,
    PROXY_FILE,
    RECIPE_FILE,
    MixtureRecipe,
    ProxyRecipe,
    is_portable,
    render_proxy,
)

log = logging.getLogger(__name__)


def _clip_words(audio: str | AudioDataset, ds: AudioDataset) -> list[str]:
    """The word each clip says: a generated kws set's per-clip ``word``, else its class name; "" where it
    says none (``_silence_``, ``_unknown_`` and other reserved class names are not words)."""
    names = ["" if c.startswith("_") else c for c in ds.class_names]
    by_class = [names[int(lab)] for lab in ds.labels]
    if isinstance(audio, str) and audio.startswith("kws:"):
        _, rows = read_manifest(audio.split(":", 1)[1])
        if len(rows) == len(ds) and all("word" in r for r in rows):
            return [r["word"] or w for r, w in zip(rows, by_class, strict=True)]
    return by_class


def keyword_clips(words: list[str], keywords: tuple[str, ...]) -> np.ndarray:
    """bool [N]: clips whose word is a keyword or sounds like one (phonemes within ``too_similar``)."""
    norm = [" ".join(w.replace("_", " ").lower().split()) for w in words]
    speech = sorted({w for w in norm if w})
    ph = phonemes(list(dict.fromkeys([*keywords, *speech]))) if speech else {}
    bad = {w for w in speech if w in keywords or any(too_similar(ph[w], ph[k]) for k in keywords)}
    return np.array([w in bad for w in norm], bool)


def teacher_keywords(class_names: tuple[str, ...]) -> tuple[str, ...]:
    """The spoken keywords of a teacher's classes (``_unknown_`` / ``_silence_`` are not words)."""
    return tuple(c.replace("_", " ").strip() for c in class_names if not c.startswith("_"))


def draw_proxy(n: int, n_clips: int, max_shift: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every clip alone once (random order) while ``n`` allows, then random pairs (weights uniform 0-1,
    shifts uniform within +-``max_shift`` samples)."""
    if n_clips < 1:
        raise DataError("the proxy speech holds no usable clip")
    alone = rng.permutation(n_clips)[: min(n, n_clips)]
    k = n - len(alone)
    a = np.concatenate([alone, rng.integers(0, n_clips, k)]).astype(np.int64)
    b = np.concatenate([alone, rng.integers(0, n_clips, k)]).astype(np.int64)
    w = np.concatenate([np.ones(len(alone)), rng.uniform(0.0, 1.0, k)]).astype(np.float32)
    shift = np.concatenate([np.zeros(len(alone)), rng.integers(-max_shift, max_shift + 1, k)])
    shift = shift.astype(np.int64)
    return {"a": a, "b": b, "weight": w, "shift_samples": shift}


def balanced_pick(logits: np.ndarray, n: int) -> np.ndarray:
    """Indices (sorted) of ``n`` rows, as even a share of each teacher top class as the rows allow, the
    teacher's most confident rows of a class first; a class with too few rows leaves its share to the most
    confident rows left. The selection of data-free distillation from unlabelled "wild" data (DFND, Chen
    et al. 2021): the teacher's rare classes - the keywords, on other words - are what the student lacks."""
    probs = torch.softmax(torch.from_numpy(np.asarray(logits, np.float32)), 1).numpy()
    top, conf = probs.argmax(1), probs.max(1)
    n_classes = logits.shape[1]
    quota = [n // n_classes + (c < n % n_classes) for c in range(n_classes)]
    chosen = np.zeros(len(logits), bool)
    for c in range(n_classes):
        rows = np.flatnonzero(top == c)
        chosen[rows[np.argsort(-conf[rows], kind="stable")[: quota[c]]]] = True
    rest = np.flatnonzero(~chosen)
    chosen[rest[np.argsort(-conf[rest], kind="stable")[: n - int(chosen.sum())]]] = True
    return np.flatnonzero(chosen)


def default_proxy_dir(synth: SynthSet, n: int, replace_mixtures: int, select_from: int = 1) -> Path:
    name = f"{synth.path.name}-px{n}"
    if replace_mixtures:
        name += f"-r{replace_mixtures}"
    if select_from > 1:
        name += f"-sel{select_from}"
    return synth.path.with_name(name)


def add_proxy(
    set_path: str | Path,
    audio: str | AudioDataset,
    n: int,
    out_dir: str | Path | None = None,
    *,
    replace_mixtures: int = 0,
    seed: int = 0,
    max_shift_s: float = 0.25,
    select_from: int = 1,
    teacher_path: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``set_path`` with ``n`` teacher-labelled proxy examples of ``audio`` (a dataset name such as
    ``kws:DIR``, or an AudioDataset) appended to its train split, after dropping ``replace_mixtures``
    random train mixtures, to ``out_dir``; returns it. Deterministic from ``seed`` on CPU.
    ``select_from`` > 1 draws that many candidates per example and keeps ``n`` of them, class-balanced
    by the teacher's top class (``balanced_pick``)."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1 proxy examples, got {n}")
    if replace_mixtures < 0:
        raise ConfigError(f"--replace-mixtures must be >= 0, got {replace_mixtures}")
    if max_shift_s < 0:
        raise ConfigError(f"the pair shift must be >= 0 s, got {max_shift_s}")
    if select_from < 1:
        raise ConfigError(f"--select-from must be >= 1 candidates per proxy example, got {select_from}")
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    synth = load_synth_set(set_path)
    if synth.n_proxy:
        raise DataError(
            f"{synth.path} already holds {synth.n_proxy} proxy examples; add proxy speech to the set "
            f"it was made from ({(synth.manifest.get('proxy') or {}).get('from')}) instead"
        )
    out = Path(out_dir) if out_dir else default_proxy_dir(synth, n, replace_mixtures, select_from)
    check_out_dir(out, synth, overwrite)
    n_inv, n_train_mix, n_val_mix = layout(synth)
    split = np.asarray(synth.features.split, np.uint8)
    mix_train = n_inv + np.flatnonzero(split[n_inv : n_inv + n_train_mix + n_val_mix] == 0)
    if replace_mixtures > len(mix_train):
        raise ConfigError(
            f"--replace-mixtures {replace_mixtures}: {synth.path} holds only {len(mix_train)} train mixtures"
        )
    teacher = teacher_of(synth, teacher_path)
    fe = teacher.frontend
    t0 = time.perf_counter()
    ds = audio if isinstance(audio, AudioDataset) else load_dataset(audio, sample_rate_hz=fe.sample_rate_hz)
    if ds.sample_rate_hz != fe.sample_rate_hz:
        raise DataError(
            f"the proxy speech {ds.name} is at {ds.sample_rate_hz} Hz; the teacher reads "
            f"{fe.sample_rate_hz} Hz"
        )
    words = _clip_words(audio, ds)
    leak = keyword_clips(words, teacher_keywords(synth.features.class_names))
    keep = np.flatnonzero(~leak)
    if not len(keep):
        raise DataError(
            f"every clip of {ds.name} says a teacher keyword or sounds like one; use other speech"
        )
    clips = np.stack([fix_length(ds.waveforms[i], fe.clip_samples) for i in keep])
    clips16 = np.round(np.clip(clips, -1.0, 1.0) * INT16_SCALE).astype(np.int16)
    rng = np.random.default_rng([int(seed), len(split)])
    drop = np.sort(rng.choice(mix_train, replace_mixtures, replace=False)) if replace_mixtures else []
    n_draw = n * select_from
    recipe = ProxyRecipe(
        clips=clips16, **draw_proxy(n_draw, len(clips16), int(round(max_shift_s * fe.sample_rate_hz)), rng)
    )
    dev = resolve_device(device)
    frontend = make_frontend(fe)
    xs, logits = [], []
    model = teacher.model.to(dev).eval()
    bar = Progress(f"label {n_draw} proxy examples", n_draw, unit="example", logger=log, enabled=progress)
    try:
        with bar, torch.no_grad():
            for s in range(0, n_draw, CHUNK):
                x = render_proxy(recipe, frontend, slice(s, s + CHUNK))
                xs.append(x)
                logits.append(model(torch.from_numpy(x).to(dev)).float().cpu().numpy())
                bar.update(len(x))
    finally:
        model.cpu()
    px, pl = np.concatenate(xs), np.concatenate(logits).astype(np.float32)
    if select_from > 1:
        chosen = balanced_pick(pl, n)
        px, pl, recipe = px[chosen], pl[chosen], recipe.subset(chosen)
    keep_rows = np.setdiff1d(np.arange(len(split)), drop)
    manifest = {k: v for k, v in synth.manifest.items() if k not in DERIVED_KEYS}
    extra: dict[str, dict[str, np.ndarray]] = {PROXY_FILE: recipe.arrays()}
    if is_portable(synth):
        with np.load(synth.path / PARAMS_FILE) as z:
            extra[PARAMS_FILE] = {k: z[k] for k in z.files}
        if synth.manifest["portable"].get("mixture_recipe"):
            old = MixtureRecipe.load(synth.path / RECIPE_FILE)
            kept_mix = keep_rows[keep_rows >= n_inv] - n_inv
            extra[RECIPE_FILE] = {k: v[kept_mix] for k, v in old.arrays().items()}
    meta_mix = dict(synth.manifest.get("mixtures") or {})
    if replace_mixtures:
        meta_mix["n"] = n_train_mix - replace_mixtures
        meta_mix["replaced_by_proxy"] = int(replace_mixtures)
    manifest["mixtures"] = meta_mix
    probs = torch.softmax(torch.from_numpy(pl), 1).numpy()
    manifest["proxy"] = {
        "n": int(n),
        "file": PROXY_FILE,
        "audio": audio if isinstance(audio, str) else ds.name,
        "audio_content_hash": ds.content_hash,
        "clips": int(len(clips16)),
        "alone": int((recipe.weight == 1.0).sum()),  # examples that are one clip as it is
        "pairs": int((recipe.weight < 1.0).sum()),
        "dropped_keyword_clips": int(leak.sum()),
        "replaced_mixtures": int(replace_mixtures),
        "seed": int(seed),
        "max_shift_s": float(max_shift_s),
        "select_from": int(select_from),
        "teacher_class_counts": np.bincount(pl.argmax(1), minlength=pl.shape[1]).tolist(),
        "teacher_top_probability_median": round(float(np.median(probs.max(1))), 4),
        "labels": "the teacher's logits on each example in its front-end; the proxy's own labels unused",
        "setting": "relaxed: the teacher plus public speech that is not the private data or its words",
        "wall_s": round(time.perf_counter() - t0, 1),
        "from": str(synth.path),
    }
    new_split = np.concatenate([split[keep_rows], np.zeros(n, np.uint8)])
    manifest["split_counts"] = {
        "train": int((new_split == 0).sum()),
        "validation": int((new_split == 1).sum()),
    }
    x_old = np.asarray(synth.features.x, np.float32)
    path = write_synth_set(
        out,
        x=np.concatenate([x_old[keep_rows], px]),
        labels=np.concatenate(
            [np.asarray(synth.features.labels, np.int64)[keep_rows], pl.argmax(1).astype(np.int64)]
        ),
        split=new_split,
        teacher_logits=np.concatenate([synth.teacher_logits[keep_rows], pl]),
        class_names=tuple(synth.features.class_names),
        frontend=synth.features.frontend,
        manifest=manifest,
        overwrite=overwrite,
        extra_npz=extra,
    )
    log.info(
        "added %d teacher-labelled proxy examples (%d clips of %s, %d dropped as keywords; %d mixtures "
        "replaced) in %.0f s -> %s",
        n,
        len(clips16),
        ds.name,
        int(leak.sum()),
        replace_mixtures,
        manifest["proxy"]["wall_s"],
        path,
    )
    return path
