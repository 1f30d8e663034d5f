"""Training: trainer, metrics, SpecAugment, distillation, checkpoints."""

from audio_nas.training.checkpoint import load_checkpoint, save_checkpoint
from audio_nas.training.config import SpecAugmentConfig, TrainConfig
from audio_nas.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "SpecAugmentConfig", "TrainResult", "train", "save_checkpoint", "load_checkpoint"]
