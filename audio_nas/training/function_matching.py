"""Teacher-labelled mixtures of synthesised inputs: function matching for data-free distillation.

A student distilled on a few hundred inverted examples learns little of the teacher: the examples sit
where the teacher is confident, and stored soft labels stop matching their inputs as soon as training
augments them. "Knowledge distillation: a good teacher is patient and consistent" (Beyer et al. 2022)
shows that a student matches its teacher's *function* when both see the same, aggressively mixed input;
we apply that to the synthesised pool: each new example is a mixup of two inverted train examples
(weight uniform in [0, 1]), rolled in time by up to ``jitter_frames`` and SpecAugment-masked, and its
soft label is the teacher's logits on exactly that input. The mixtures go into the train split only
(they are made from train-split inversions), so the validation split stays pure inversions; the
student then trains on them without further augmentation (``datafree_train_config``), since any change
to an input would break its label.

Measured in docs/benchmarks.md ("Data-free search"): on synth-kws a student trained on 300 inversions
alone scores 0.086 real test accuracy (chance 0.083), on the same inversions plus 20,000 mixtures 0.213;
the same distillation from mixtures of the *real* train features gives 0.847 (0.639 without mixtures),
so what limits it is the synthesised pool, not the matching.

This feature-space recipe serves sets made with the grid prior; source-filter sets mix in the linear
power domain instead, so that any front-end can render the same mixture (``training.portable_synth``).

Hand-written because no library we use makes teacher-labelled mixture sets (torchvision's MixUp makes
label mixtures, not teacher labels, and works on images).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from audio_nas.errors import ConfigError
from audio_nas.progress import Progress
from audio_nas.training.augment import spec_augment
from audio_nas.training.config import SpecAugmentConfig

log = logging.getLogger(__name__)

CHUNK = 256  # mixtures labelled per teacher forward pass


def teacher_mixtures(
    model: nn.Module,
    x: np.ndarray,
    n: int,
    *,
    seed: int,
    jitter_frames: int = 5,
    specaugment: SpecAugmentConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` mixtures of the examples ``x`` [N, T, F] and the teacher's logits on them.

    Deterministic from ``seed`` on CPU: pairs, weights and shifts come from a numpy Generator; the masks
    from torch's global generator (``spec_augment`` takes no generator), seeded here and restored after.
    """
    if n < 1:
        raise ConfigError(f"the number of mixtures must be >= 1, got {n}")
    if len(x) < 2:
        raise ConfigError(f"mixing needs at least 2 synthesised train examples, got {len(x)}")
    sa = specaugment or SpecAugmentConfig()
    rng = np.random.default_rng(seed)
    pool = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    out_x = np.empty((n, *pool.shape[1:]), np.float32)
    out_logits: list[np.ndarray] = []
    model = model.to(device).eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # spec_augment draws its masks from torch's global generator
    bar = Progress(f"label {n} teacher mixtures", n, unit="example", logger=log, enabled=progress)
    try:
        with bar, torch.no_grad():
            for start in range(0, n, CHUNK):
                m = min(CHUNK, n - start)
                a = torch.from_numpy(rng.integers(0, len(pool), m))
                b = torch.from_numpy(rng.integers(0, len(pool), m))
                lam = torch.from_numpy(rng.uniform(0.0, 1.0, (m, 1, 1)).astype(np.float32))
                xb = lam * pool[a] + (1 - lam) * pool[b]
                shifts = rng.integers(-jitter_frames, jitter_frames + 1, m)
                xb = torch.stack([torch.roll(row, int(s), dims=0) for row, s in zip(xb, shifts, strict=True)])
                xb = spec_augment(xb, sa)
                out_x[start : start + m] = xb.numpy()
                out_logits.append(model(xb.to(device)).float().cpu().numpy())
                bar.update(m)
    finally:
        torch.random.set_rng_state(state)
        model.cpu()
    return out_x, np.concatenate(out_logits).astype(np.float32)
