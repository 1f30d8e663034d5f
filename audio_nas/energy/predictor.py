"""Random-forest latency/energy predictor fitted on measurements (scikit-learn).

What it learns from: measurements only (``energy.measurements.MEASURED_SOURCES``: the firmware on a real
board, or QEMU instruction counts on an emulated board), one source at a time, recorded in its metadata.
Never the emulated source's own outputs (rows of source "emulated"): a forest fitted on them learns that
model, and its error against them says nothing about a board. Rows of the Python emulated device
("emulated-device", the same model served over the bridge) are accepted only when asked for by name
(plumbing tests), with a warning.

Features come from the ArchSpec's analytic view (MACs per op type, parameters, activation sizes,
layer counts, channels, kernels, strides, elementwise work) and its front-end. The target is
log(latency / MACs), the cost per MAC, which is what MAC counts miss: trees cannot extrapolate a
scale, so the forest learns the ratio and MACs carry the scale (measured: on 30 emulated
architectures this cut k-fold MAPE from 35% with a log-latency target to the figure in
docs/benchmarks.md);
energy = latency x the board's active power, unless the rows carry a power monitor's energy (``energy_from ==
"monitor"``): then a second forest learns log(energy / MACs) from that column. Per-prediction uncertainty:
the standard deviation of the individual trees' predictions (intervals: their quantiles). Saved with joblib
(scikit-learn estimators need pickling) next to
JSON metadata holding the hash of the measurements it was fitted on and the scikit-learn version,
checked on load; only load predictors you made. ``PredictedModel`` refuses a predictor whose measurements
changed since it was fitted (fix: ``audio-nas predictor fit --board B``), and one whose stored held-out
evaluation says the emulated source predicts this board's measurements better (fix: ``energy_source:
emulated``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold

from audio_nas.energy.boards import BoardProfile
from audio_nas.energy.cycle_model import model_cycles
from audio_nas.energy.measurements import (
    MEASURED_SOURCES,
    ROW_SOURCES,
    Measurement,
    MeasurementStore,
    store_path,
)
from audio_nas.energy.models import AnalyticModel, EmulatedModel, EnergyEstimate
from audio_nas.energy.op_model import read_csv_gz, table_paths
from audio_nas.errors import EnergyModelError
from audio_nas.space import ArchSpec, arch_costs

log = logging.getLogger(__name__)
# sources a forest may be fitted on: measurements, plus the Python emulated device when named (plumbing tests)
FIT_SOURCES: tuple[str, ...] = (*MEASURED_SOURCES, "emulated-device")
INTERVAL = 0.9  # the prediction interval the held-out evaluation checks (per-tree 5th-95th percentiles)
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


def check_fit_rows(measurements: list[Measurement], board: BoardProfile) -> str:
    """The one source ``measurements`` come from, refusing cycle-model rows and mixed sources."""
    sources = sorted({m.source for m in measurements})
    if len(sources) != 1:
        raise EnergyModelError(
            f"the forest fits on one source at a time, got rows of {sources} for {board.name}; pick one "
            f"(`audio-nas predictor fit --board {board.name} --source measured`)"
        )
    (source,) = sources
    if source not in FIT_SOURCES:
        raise EnergyModelError(
            f"rows of source {source!r} ({ROW_SOURCES.get(source, 'unknown')}) are the emulated model's own "
            f"outputs: "
            f"a forest fitted on them learns that model. Measure the board "
            f"(`audio-nas measure --board {board.name} --backend device --port P`)"
        )
    if source not in MEASURED_SOURCES:
        log.warning(
            "fitting the forest on %r rows (%s): this tests the plumbing, it learns no board",
            source,
            ROW_SOURCES[source],
        )
    return source


def energy_targets(measurements: list[Measurement], board: BoardProfile) -> np.ndarray | None:
    """The monitor-measured energies (µJ) when every row has one; None when none has (energy = latency x
    power)."""
    monitored = [m.energy_from == "monitor" for m in measurements]
    if not any(monitored):
        return None
    if not all(monitored):
        raise EnergyModelError(
            f"{sum(monitored)} of {len(measurements)} rows of {board.name} carry a power monitor's "
            f"energy and the others latency x profile power: the forest would learn two different "
            f"energies. Re-measure the others with --monitor, or measure into a separate board profile"
        )
    return np.array([m.energy_uj for m in measurements], float)


@dataclass
class RandomForestEnergyPredictor:
    board: BoardProfile
    n_estimators: int = 300
    seed: int = 0
    model: RandomForestRegressor | None = None
    energy_model: RandomForestRegressor | None = None  # fitted on monitor-measured energy when present
    fitted_on: str | None = None
    meta: dict = field(default_factory=dict)  # source, rows, energy target, held-out evaluation

    def _forest(self, X: np.ndarray, y: np.ndarray) -> RandomForestRegressor:
        return RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=1, random_state=self.seed, n_jobs=1
        ).fit(X, np.log(np.asarray(y, float)) - X[:, 0])

    def fit(
        self,
        specs: list,
        latencies_ms: np.ndarray,
        measurements_hash: str | None = None,
        *,
        energies_uj: np.ndarray | None = None,
    ) -> RandomForestEnergyPredictor:
        """Fit on ``latencies_ms`` (and on ``energies_uj`` measured by a power monitor, when given)."""
        if len(specs) < 5:
            raise EnergyModelError(
                f"the predictor needs at least 5 measurements, got {len(specs)}; "
                f"run `audio-nas measure` first"
            )
        X = np.stack([spec_features(s) for s in specs])
        self.model = self._forest(X, latencies_ms)
        self.energy_model = self._forest(X, energies_uj) if energies_uj is not None else None
        self.fitted_on = measurements_hash
        self.meta["energy_target"] = (
            "power monitor (measured energy column)" if energies_uj is not None else "latency x profile power"
        )
        return self

    def _per_tree(self, forest: RandomForestRegressor, specs: list) -> np.ndarray:
        X = np.stack([spec_features(s) for s in specs])
        return np.exp(np.stack([t.predict(X) for t in forest.estimators_]) + X[:, 0])

    def predict_latency(self, specs: list) -> tuple[np.ndarray, np.ndarray]:
        if self.model is None:
            raise EnergyModelError("the predictor is not fitted; run `audio-nas predictor fit` first")
        per_tree = self._per_tree(self.model, specs)
        return per_tree.mean(axis=0), per_tree.std(axis=0)

    def latency_interval(self, specs: list, coverage: float = INTERVAL) -> tuple[np.ndarray, np.ndarray]:
        """A ``coverage`` prediction interval of the latency: the trees' (1-c)/2 and (1+c)/2 quantiles."""
        if self.model is None:
            raise EnergyModelError("the predictor is not fitted; run `audio-nas predictor fit` first")
        per_tree = self._per_tree(self.model, specs)
        q = (1 - coverage) / 2
        return np.quantile(per_tree, q, axis=0), np.quantile(per_tree, 1 - q, axis=0)

    def predict(self, specs: list) -> tuple[np.ndarray, np.ndarray]:
        """Energy per inference (µJ): mean and per-tree standard deviation; from the energy forest when the
        predictor was fitted on monitor-measured energy, else latency x the board's active power."""
        if self.energy_model is not None:
            per_tree = self._per_tree(self.energy_model, specs)
            return per_tree.mean(axis=0), per_tree.std(axis=0)
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
        joblib.dump({"latency": self.model, "energy": self.energy_model}, path.with_suffix(".joblib"))
        path.with_suffix(".json").write_text(
            json.dumps(
                {
                    **self.meta,
                    "board": self.board.name,
                    "fitted_on": self.fitted_on,
                    "sklearn": sklearn.__version__,
                    "n_estimators": self.n_estimators,
                    "features": len(spec_features.__code__.co_varnames),
                },
                indent=1,
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
                f"{sklearn.__version__}; refit it with `audio-nas predictor fit --board {board.name}`"
            )
        if expect_hash and meta["fitted_on"] != expect_hash:
            raise EnergyModelError(
                f"predictor {path} was fitted on other measurements ({meta['fitted_on']}, the store now "
                f"hashes to {expect_hash}); refit it with `audio-nas predictor fit --board {board.name}`"
            )
        p = cls(board, n_estimators=meta["n_estimators"])
        saved = joblib.load(path.with_suffix(".joblib"))
        if isinstance(saved, dict):
            p.model, p.energy_model = saved["latency"], saved["energy"]
        else:  # saved before the energy forest existed
            p.model = saved
        p.fitted_on = meta["fitted_on"]
        p.meta = {k: v for k, v in meta.items() if k not in ("board", "fitted_on", "sklearn", "n_estimators")}
        return p


def predictor_path(board: BoardProfile) -> Path:
    """Where ``audio-nas predictor fit`` saves the board's predictor (beside its measurements)."""
    return store_path(board.name).with_name("predictor")


def fit_from_store(
    store: MeasurementStore,
    board: BoardProfile,
    source: str = "measured",
    *,
    folds: int = 5,
    seed: int = 0,
    n_estimators: int = 300,
) -> RandomForestEnergyPredictor:
    """The forest on the board's rows of ONE ``source`` (default: measurements), with its held-out evaluation
    against the cycle model in its metadata (``PredictedModel`` reads it to decide whether the forest may be
    used).
    """
    ms = store.all(board.name, source)
    if not ms:
        have = store.sources(board.name)
        raise EnergyModelError(
            f"no {source!r} rows for {board.name} (the store has {have or 'nothing'}); measure the board "
            f"first: "
            f"`audio-nas measure --board {board.name} --backend device --port P`"
        )
    check_fit_rows(ms, board)
    energies = energy_targets(ms, board)
    specs = [ArchSpec.from_str(m.spec) for m in ms]
    p = RandomForestEnergyPredictor(board, n_estimators=n_estimators, seed=seed).fit(
        specs,
        np.array([m.latency_ms for m in ms]),
        store.content_hash(board.name, source),
        energies_uj=energies,
    )
    p.meta.update(
        source=source,
        source_kind=(
            f"{ROW_SOURCES[source]}"
            + (
                " -- here QEMU instruction counts (emulated board)"
                if board.emulated and source == "measured"
                else ""
            )
        ),
        rows=len(ms),
    )
    if len(ms) >= max(folds, 10):
        p.meta["heldout"] = cross_validate(ms, board, folds=folds, seed=seed)
    else:
        p.meta["heldout"] = None
        log.warning("only %d rows: no held-out evaluation stored (needs %d)", len(ms), max(folds, 10))
    return p


def _one_factor(y_train: np.ndarray, x_train: np.ndarray) -> float:
    """The single factor that best maps a model's outputs onto measured values (geometric mean of the
    ratio)."""
    return float(np.exp(np.mean(np.log(y_train / x_train))))


def cross_validate(
    measurements: list[Measurement], board: BoardProfile, folds: int = 5, seed: int = 0
) -> dict:
    """Held-out (k-fold) latency MAPE on measured rows of one source: the random forest (and the coverage of
    its
    90% per-tree interval) against the board's ``emulated`` source as shipped, the hand-set per-op cycle model
    (``energy.cycle_model``, fitted on no measurement), a MACs-linear fit and the analytic model.

    The forest and the MACs-linear fit are fitted on the training folds; the other models get one factor
    fitted
    on the training folds (only their relative costs are judged: QEMU counts instructions, not a board's
    cycles).
    The ``emulated`` source may contain a per-op model fitted on measured counts (``energy.op_model``); where
    those included these specs, its figure is not held out (``emulated_mape`` is then optimistic, which can
    only
    make the forest look worse). ``better`` names the source the search should use: "predicted" only when the
    forest beats both the shipped emulated source and the cycle model.
    """
    check_fit_rows(measurements, board)
    specs = [ArchSpec.from_str(m.spec) for m in measurements]
    y = np.array([m.latency_ms for m in measurements])
    refs = {
        "emulated": np.array([EmulatedModel().estimate(s, board).latency_ms for s in specs]),
        "cycle_model": np.array(
            [model_cycles(arch_costs(s).layers, board.kernels, board.core)[0] for s in specs], float
        ),
        "analytic": np.array([AnalyticModel().estimate(s, board).latency_ms for s in specs]),
    }
    r = cross_validate_specs(specs, y, board, folds, seed, references=refs)
    r["source"] = measurements[0].source
    r["emulated_in_sample_rows"] = _op_model_overlap(specs, board)
    r["better"] = "predicted" if r["rf_mape"] < min(r["emulated_mape"], r["cycle_model_mape"]) else "emulated"
    return r


def _op_model_overlap(specs: list, board: BoardProfile) -> int:
    """How many of ``specs`` are in the measured table the shipped per-op model was fitted on (for those the
    emulated source is not held out); 0 where the board's emulated source does not use the per-op model."""
    if board.kernels == "tflm-reference" and board.emulated:  # the hand-set reference-kernel cycle model
        return 0
    _, models_path, _ = table_paths()
    if not models_path.exists():
        return 0
    fitted = {r["spec"] for r in read_csv_gz(models_path)}
    return sum(s.to_str() in fitted for s in specs)


def cross_validate_specs(
    specs: list,
    y: np.ndarray,
    board: BoardProfile,
    folds: int = 5,
    seed: int = 0,
    references: dict[str, np.ndarray] | None = None,
) -> dict:
    """k-fold MAPE of the random forest and of a MACs-linear fit on any cost ``y`` of ``specs`` (latency,
    cycles, instructions), the coverage of the forest's 90% interval, and for each ``references`` model (its
    outputs for ``specs``) the MAPE after one factor fitted on the training folds. ``y`` must be measured."""

    y = np.asarray(y, float)
    macs = np.array([arch_costs(s).macs for s in specs], float).reshape(-1, 1)
    rf_err, lin_err, covered = [], [], []
    ref_err: dict[str, list[float]] = {k: [] for k in references or {}}
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(specs):
        p = RandomForestEnergyPredictor(board, seed=seed).fit([specs[i] for i in tr], y[tr])
        test_specs = [specs[i] for i in te]
        rf_err.append(mape(y[te], p.predict_latency(test_specs)[0]))
        lo, hi = p.latency_interval(test_specs)
        covered.extend((lo <= y[te]) & (y[te] <= hi))
        lin = LinearRegression().fit(macs[tr], y[tr])
        lin_err.append(mape(y[te], np.maximum(lin.predict(macs[te]), 1e-3)))
        for k, x in (references or {}).items():
            x = np.asarray(x, float)
            ref_err[k].append(mape(y[te], x[te] * _one_factor(y[tr], x[tr])))
    return {
        "n": len(specs),
        "folds": folds,
        "rf_mape": float(np.mean(rf_err)),
        "rf_interval_coverage": float(np.mean(covered)),
        "interval": INTERVAL,
        "macs_linear_mape": float(np.mean(lin_err)),
        **{f"{k}_mape": float(np.mean(v)) for k, v in ref_err.items()},
    }


class PredictedModel:
    """The random forest fitted on this board's measurements (``audio-nas predictor fit``).

    Refuses (EnergyModelError naming the fix) a predictor fitted on measurements that have changed since
    (stale),
    and one whose stored held-out evaluation says the cycle model predicts the board's measurements better.
    """

    source = "predicted"

    def __init__(self, store_file: str | Path | None = None, predictor_file: str | Path | None = None):
        self._cache: dict[str, Any] = {}
        self.store_file, self.predictor_file = store_file, predictor_file

    def load(self, board: BoardProfile) -> RandomForestEnergyPredictor:
        if board.name in self._cache:
            return self._cache[board.name]
        path = Path(self.predictor_file) if self.predictor_file else predictor_path(board)
        p = RandomForestEnergyPredictor.load(path, board)
        source = p.meta.get("source", "measured")
        store = MeasurementStore(self.store_file or store_path(board.name))
        try:
            now = store.content_hash(board.name, source)
        finally:
            store.close()
        if now != p.fitted_on:
            raise EnergyModelError(
                f"the predictor at {path} is stale: it was fitted on {board.name}'s {source!r} measurements "
                f"with hash {p.fitted_on}, the store now hashes to {now}; refit it: "
                f"`audio-nas predictor fit --board {board.name}`"
            )
        held = p.meta.get("heldout")
        if held and held.get("better") != "predicted":
            raise EnergyModelError(
                f"the forest loses on {board.name}'s measurements ({held['n']} rows, {held['folds']}-fold "
                f"latency MAPE: forest {held['rf_mape']:.1f}%, emulated source {held['emulated_mape']:.1f}%, "
                f"cycle model {held['cycle_model_mape']:.1f}%): use `energy_source: emulated` for this board"
            )
        if held is None:
            log.warning(
                "predictor for %s has no held-out evaluation (too few rows): use with care", board.name
            )
        self._cache[board.name] = p
        return p

    def estimate(self, spec, board, *, layers=None):
        p = self.load(board)
        lat, _ = p.predict_latency([spec])
        energy, energy_sd = p.predict([spec])
        return EnergyEstimate(
            latency_ms=float(lat[0]),
            energy_uj=float(energy[0]),
            source=self.source,
            uncertainty_uj=float(energy_sd[0]),
            cycles=float(lat[0] * 1e-3 * board.clock_hz),
        )
