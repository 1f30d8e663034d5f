"""Datasets: the embedded synthetic sets, real-dataset loaders and the registry."""

from audio_nas.data import hard_negatives, kws, loaders, more_train, stream_windows, synthetic  # noqa: F401  (importing them registers their datasets)
from audio_nas.data.dataset import (
    DATASETS,
    KWS12_CLASSES,
    SPLITS,
    AudioDataset,
    load_dataset,
    register_dataset,
)
from audio_nas.data.synthetic import make_dataset

__all__ = [
    "AudioDataset",
    "load_dataset",
    "register_dataset",
    "DATASETS",
    "KWS12_CLASSES",
    "SPLITS",
    "make_dataset",
]
