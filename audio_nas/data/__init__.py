"""Datasets: the embedded synthetic sets, real-dataset loaders and the registry."""

from audio_nas.data.dataset import (
    DATASETS,
    KWS12_CLASSES,
    SPLITS,
    AudioDataset,
    load_dataset,
    register_dataset,
)

__all__ = [
    "AudioDataset",
    "load_dataset",
    "register_dataset",
    "DATASETS",
    "KWS12_CLASSES",
    "SPLITS",
    "make_dataset",
]


def make_dataset(*args, **kwargs):
    from audio_nas.data.synthetic import make_dataset as _make

    return _make(*args, **kwargs)
