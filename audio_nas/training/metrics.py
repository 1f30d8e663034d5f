"""Classification metrics for a trained model on one split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import confusion_matrix


@dataclass(frozen=True)
class EvalMetrics:
    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]  # rows: true class, cols: predicted
    n_examples: int


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, x: np.ndarray, *, batch_size: int = 256, device: str = "cpu"
) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[start : start + batch_size]), dtype=torch.float32, device=device)
        out.append(model(xb).float().cpu().numpy())
    n_out = getattr(model, "n_classes", None)
    return np.concatenate(out) if out else np.zeros((0, n_out or 0), np.float32)


def classification_metrics(
    logits: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]
) -> EvalMetrics:
    labels = np.asarray(labels)
    pred = logits.argmax(axis=1) if len(logits) else np.zeros(0, np.int64)
    k = len(class_names)
    cm = confusion_matrix(labels, pred, labels=list(range(k))) if len(labels) else np.zeros((k, k), int)
    support = cm.sum(axis=1)
    per_class = {
        name: (float(cm[i, i] / support[i]) if support[i] else float("nan"))
        for i, name in enumerate(class_names)
    }
    acc = float((pred == labels).mean()) if len(labels) else float("nan")
    return EvalMetrics(
        accuracy=acc, per_class_accuracy=per_class, confusion=cm.tolist(), n_examples=int(len(labels))
    )
