"""Random-forest latency/energy predictor fitted on measurements (scikit-learn).

Features come from the ArchSpec's analytic view (MACs per op type, parameters, activation sizes,
layer counts, channels, kernels, strides, elementwise work) and its front-end. The target is
log(latency / MACs), the cost per MAC, which is what MAC counts miss: trees cannot extrapolate a
scale, so the forest learns the ratio and MACs carry the scale (measured: on 30 emulated
architectures this cut k-fold MAPE from 35% with a log-latency target to the figure in
docs/benchmarks.md);
energy = latency x the board's active power. Per-prediction uncertainty: the standard deviation of
the individual trees' predictions. Saved with joblib (scikit-learn estimators need pickling) next to
JSON metadata holding the hash of the measurements it was fitted on and the scikit-learn version,
checked on load; only load predictors you made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold

from audio_nas.energy.boards import BoardProfile
from audio_nas.energy.measurements import Measurement, store_path
from audio_nas.energy.models import AnalyticModel, EnergyEstimate
from audio_nas.errors import EnergyModelError
from audio_nas.space import ArchSpec, arch_costs

OPS = ("conv2d", "depthwise_conv2d", "fully_connected", "batch_matmul")


def spec_features(spec) -> np.ndarray:

    c = arch_costs(spec)
    layers = c.layers
    by_op = [c.macs_by_op.get(o, 0) for o in OPS]
    counts = [
        sum(l.op == o for l in layers) for o in ("conv2d", "depthwise_conv2d", "add", "hard_swish", "reshape")
    ]
    out_sizes = [np.prod(l.out_shape) for l in layers]
    chans = [l.out_shape[-1] for l in layers]
    kernels = [l.kernel_hw[0] * l.kernel_hw[1] for l in layers if l.op in ("conv2d", "depthwise_conv2d")]
    odd_ch = sum(l.in_shape[-1] % 4 != 0 for l in layers if l.op == "conv2d")
    fe = spec.frontend
    return np.array(
        [
            np.log1p(c.macs),
            *np.log1p(by_op),
            np.log1p(c.params),
            np.log1p(c.peak_ram_bytes),
            len(layers),
            *counts,
            np.log1p(sum(out_sizes)),
            np.log1p(max(out_sizes)),
            np.mean(chans),
            np.max(chans),
            np.mean(kernels) if kernels else 0,
            odd_ch,
            np.log1p(sum(l.elementwise_ops for l in layers)),
            fe.n_bins,
            fe.hop_ms,
            fe.window_ms,
            float(fe.kind == "mfcc"),
            float(spec.is_1d),
        ],
        dtype=np.float64,
    )


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_pred - y_true) / y_true) * 100)


@dataclass
class RandomForestEnergyPredictor:
    board: BoardProfile
    n_estimators: int = 300
    seed: int = 0
    model: RandomForestRegressor | None = None
    fitted_on: str | None = None

    def fit(
        self, specs: list, latencies_ms: np.ndarray, measurements_hash: str | None = None
    ) -> RandomForestEnergyPredictor:
        if len(specs) < 5:
            raise EnergyModelError(
                f"the predictor needs at least 5 measurements, got {len(specs)}; run `audio-nas measure` first"
            )
        X = np.stack([spec_features(s) for s in specs])
        self.model = RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=1, random_state=self.seed, n_jobs=1
        ).fit(X, np.log(np.asarray(latencies_ms)) - X[:, 0])
        self.fitted_on = measurements_hash
        return self

    def predict_latency(self, specs: list) -> tuple[np.ndarray, np.ndarray]:
        if self.model is None:
            raise EnergyModelError("the predictor is not fitted; run `audio-nas predictor fit` first")
        X = np.stack([spec_features(s) for s in specs])
        per_tree = np.exp(np.stack([t.predict(X) for t in self.model.estimators_]) + X[:, 0])
        return per_tree.mean(axis=0), per_tree.std(axis=0)

    def predict(self, specs: list) -> tuple[np.ndarray, np.ndarray]:
        """Energy per inference (µJ): mean and per-tree standard deviation."""
        lat, lat_sd = self.predict_latency(specs)
        to_uj = self.board.active_power_mw  # ms x mW = µJ
        return lat * to_uj, lat_sd * to_uj

    def most_uncertain(self, specs: list, k: int) -> list:
        """The k specs whose energy prediction is least certain (relative spread): measure these next."""
        mean, sd = self.predict(specs)
        order = np.argsort(-(sd / mean))
        return [specs[i] for i in order[:k]]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.model, path.with_suffix(".joblib"))
        path.with_suffix(".json").write_text(
            json.dumps(
                {
                    "board": self.board.name,
                    "fitted_on": self.fitted_on,
                    "sklearn": sklearn.__version__,
                    "n_estimators": self.n_estimators,
                    "features": len(spec_features.__code__.co_varnames),
                }
            )
        )
        return path.with_suffix(".joblib")

    @classmethod
    def load(
        cls, path: str | Path, board: BoardProfile, expect_hash: str | None = None
    ) -> RandomForestEnergyPredictor:
        path = Path(path)
        meta_path = path.with_suffix(".json")
        if not meta_path.exists():
            raise EnergyModelError(
                f"no predictor at {path}; run `audio-nas predictor fit --board {board.name}`"
            )
        meta = json.loads(meta_path.read_text())
        if meta["sklearn"] != sklearn.__version__:
            raise EnergyModelError(
                f"predictor {path} was saved with scikit-learn {meta['sklearn']}, this is "
                f"{sklearn.__version__}; refit it with `audio-nas predictor fit`"
            )
        if expect_hash and meta["fitted_on"] != expect_hash:
            raise EnergyModelError(
                f"predictor {path} was fitted on other measurements ({meta['fitted_on']}); refit it"
            )
        p = cls(board, n_estimators=meta["n_estimators"])
        p.model, p.fitted_on = joblib.load(path.with_suffix(".joblib")), meta["fitted_on"]
        return p


def cross_validate(
    measurements: list[Measurement], board: BoardProfile, folds: int = 5, seed: int = 0
) -> dict:
    """k-fold MAPE of the random forest against a MACs-linear fit and the analytic model."""

    specs = [ArchSpec.from_str(m.spec) for m in measurements]
    y = np.array([m.latency_ms for m in measurements])
    analytic = np.array([AnalyticModel().estimate(s, board).latency_ms for s in specs])
    return {**cross_validate_specs(specs, y, board, folds, seed), "analytic_mape": mape(y, analytic)}


def cross_validate_specs(
    specs: list, y: np.ndarray, board: BoardProfile, folds: int = 5, seed: int = 0
) -> dict:
    """k-fold MAPE of the random forest and of a MACs-linear fit on any cost ``y`` of ``specs`` (latency,
    cycles, instructions)."""

    y = np.asarray(y, float)
    macs = np.array([arch_costs(s).macs for s in specs], float).reshape(-1, 1)
    rf_err, lin_err = [], []
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(specs):
        p = RandomForestEnergyPredictor(board, seed=seed).fit([specs[i] for i in tr], y[tr])
        rf_err.append(mape(y[te], p.predict_latency([specs[i] for i in te])[0]))
        lin = LinearRegression().fit(macs[tr], y[tr])
        lin_err.append(mape(y[te], np.maximum(lin.predict(macs[te]), 1e-3)))
    return {
        "n": len(specs),
        "folds": folds,
        "rf_mape": float(np.mean(rf_err)),
        "macs_linear_mape": float(np.mean(lin_err)),
    }


class PredictedModel:
    """The random forest fitted on this board's measurements (``audio-nas predictor fit``)."""

    source = "predicted"

    def __init__(self):
        self._cache: dict[str, Any] = {}

    def estimate(self, spec, board, *, layers=None):
        if board.name not in self._cache:
            self._cache[board.name] = RandomForestEnergyPredictor.load(
                store_path(board.name).with_name("predictor"), board
            )
        lat, sd = self._cache[board.name].predict_latency([spec])
        uj_per_ms = board.active_power_mw
        return EnergyEstimate(
            latency_ms=float(lat[0]),
            energy_uj=float(lat[0] * uj_per_ms),
            source=self.source,
            uncertainty_uj=float(sd[0] * uj_per_ms),
            cycles=float(lat[0] * 1e-3 * board.clock_hz),
        )
