"""``audio-nas measure``, ``audio-nas predictor fit|eval``, ``audio-nas energy``."""

from __future__ import annotations

from pathlib import Path

import typer

predictor_app = typer.Typer(help="Fit and evaluate the random-forest energy predictor.", no_args_is_help=True)


@predictor_app.command("fit")
def fit(
    board: str = typer.Option("nucleo-l4r5zi", "--board", help="Board profile name or YAML path."),
    source: str = typer.Option(
        "measured",
        "--source",
        help="Rows to fit on: measured (the firmware on the board: a real board, or QEMU instruction counts "
        "on an emulated board), or emulated-device (the Python emulated device: plumbing tests only). "
        "Cycle-model rows (emulated) are refused.",
    ),
    folds: int = typer.Option(5, "--folds", help="k of the held-out evaluation stored with the predictor."),
) -> None:
    """Fit on the board's rows of one source, evaluate it held out against the emulated source, and save both
    next to the measurements (the search uses the forest only where it wins)."""
    from audio_nas.energy import load_board
    from audio_nas.energy.measurements import MeasurementStore, store_path
    from audio_nas.energy.predictor import fit_from_store, predictor_path

    b = load_board(board)
    p = fit_from_store(MeasurementStore(store_path(b.name)), b, source, folds=folds)
    path = p.save(predictor_path(b))
    typer.echo(
        f"fitted on {p.meta['rows']} {source!r} rows of {b.name} ({p.meta['source_kind']}; energy: "
        f"{p.meta['energy_target']}; hash {p.fitted_on}) -> {path}"
    )
    h = p.meta.get("heldout")
    if h:
        typer.echo(_heldout_line(h))
        if h["better"] != "predicted":
            typer.echo(f"the forest loses here: searches on {b.name} should use `energy_source: emulated`")


def _heldout_line(h: dict) -> str:
    return (
        f"{h['n']} rows, {h['folds']}-fold held-out latency MAPE: random forest {h['rf_mape']:.1f}% (its "
        f"{h['interval']:.0%} interval covers {h['rf_interval_coverage']:.0%}), emulated source "
        f"{h['emulated_mape']:.1f}%, cycle model {h['cycle_model_mape']:.1f}%, MACs-linear "
        f"{h['macs_linear_mape']:.1f}%, analytic {h['analytic_mape']:.1f}% (one factor fitted on the "
        f"training folds for emulated/cycle/analytic); better: {h['better']}"
        + (
            f"; {h['emulated_in_sample_rows']} of these rows are in the per-op model's fitting data, so the "
            f"emulated figure is not held out for them"
            if h.get("emulated_in_sample_rows")
            else ""
        )
    )


@predictor_app.command("eval")
def evaluate(
    board: str = typer.Option("nucleo-l4r5zi", "--board", help="Board profile name or YAML path."),
    source: str = typer.Option("measured", "--source", help="Rows to evaluate on (see `predictor fit`)."),
    folds: int = typer.Option(5, "--folds", help="k of the k-fold cross-validation."),
) -> None:
    """k-fold held-out MAPE of the forest against the emulated source, the cycle model, MACs-linear and
    analytic, on the board's rows of one source."""
    from audio_nas.energy import load_board
    from audio_nas.energy.measurements import MeasurementStore, store_path
    from audio_nas.energy.predictor import cross_validate

    b = load_board(board)
    ms = MeasurementStore(store_path(b.name)).all(b.name, source)
    typer.echo(_heldout_line(cross_validate(ms, b, folds)))


def _energy_of_file(path: Path, board: str, as_json: bool) -> None:
    """``audio-nas energy --tflite FILE``: the emulated energy model on the ops read from the file."""
    import json

    from audio_nas.energy import load_board
    from audio_nas.energy.tflite_file import estimate_tflite
    from audio_nas.errors import ConfigError

    if not path.is_file():
        raise ConfigError(f"--tflite {path}: no such file")
    est = estimate_tflite(path.read_bytes(), load_board(board))
    if as_json:
        typer.echo(json.dumps(est.to_json()))
        return
    typer.echo(
        f"{path.name} on {est.board} ({est.kernels} kernels, {est.ops} ops, source {est.source}):\n"
        f"latency_ms   {est.latency_ms:.3f}\nenergy_uj    {est.energy_uj:.1f}\n"
        f"arena_bytes  {est.arena_bytes} (TFLM host interpreter)\nflash_bytes  {est.flash_bytes}"
    )


def register(app: typer.Typer) -> None:
    @app.command("measure")
    def measure(
        board: str = typer.Option("nucleo-l4r5zi", "--board", help="Board profile name or YAML path."),
        count: int = typer.Option(50, "--count", help="Architectures to sample and measure."),
        seed: int = typer.Option(0, "--seed", help="Seed of the architecture sample (same seed, same list)."),
        backend: str = typer.Option(
            "emulated", "--backend", help="emulated (TFLM host + cycle model) or device."
        ),
        port: str = typer.Option(None, "--port", help="Serial port of the board (device backend)."),
        active: int = typer.Option(
            0,
            "--active",
            help="Rounds of active learning after the first COUNT (device backend only: the forest "
            "learns from measurements): each round refits the predictor and measures the candidates it is "
            "least sure about.",
        ),
        per_round: int = typer.Option(10, "--per-round", help="Architectures measured per active round."),
        pool_run: str = typer.Option(
            None,
            "--pool-run",
            help="Draw active candidates from this search run's "
            "trials (default: a fresh random sample of 200 per round).",
        ),
        monitor: str = typer.Option(
            None,
            "--monitor",
            help="External power monitor for energy: ppk2 (needs "
            "pip install 'audio-nas[ppk2]'; wire the board's marker pin to its input 0).",
        ),
        monitor_port: str = typer.Option(
            None, "--monitor-port", help="The monitor's serial port (default: first found)."
        ),
    ) -> None:
        """Measure N sampled architectures; results are stored as they arrive and the run resumes."""
        from audio_nas.energy import load_board
        from audio_nas.energy.measurements import store_path
        from audio_nas.firmware_bridge.campaign import run_active_campaign, run_campaign, search_pool

        b = load_board(board)
        if active and backend != "device":
            from audio_nas.errors import EnergyModelError

            raise EnergyModelError(
                "--active fits the forest on measurements; the emulated backend is the cycle model. "
                "Measure a board: --backend device --port P"
            )
        mon = None
        if monitor:
            from audio_nas.errors import EnergyModelError
            from audio_nas.firmware_bridge.ppk2 import MONITORS

            if monitor not in MONITORS:
                raise EnergyModelError(f"unknown monitor {monitor!r}; choose one of {', '.join(MONITORS)}")
            mon = MONITORS[monitor](monitor_port)
        store = run_campaign(b, count, seed=seed, backend=backend, port=port, monitor=mon)
        if active:
            pool = search_pool(pool_run) if pool_run else None
            for r in run_active_campaign(
                b, active, per_round, pool_specs=pool, seed=seed, backend=backend, store=store, port=port
            ):
                typer.echo(
                    f"active round {r.round}: {r.chosen} measured (tree spread "
                    f"{r.mean_relative_spread:.3f}), error of the prediction made before measuring them: "
                    f"{r.prequential_mape:.1f}% MAPE; {r.measured_total} in all"
                )
        typer.echo(f"{len(store.all(b.name))} measurements for {b.name} in {store_path(b.name)}")

    @app.command("energy")
    def energy(
        arch: str = typer.Option(None, "--arch", help="Preset name or spec string."),
        tflite: Path = typer.Option(
            None,
            "--tflite",
            help="Any int8 .tflite instead of --arch: emulated latency/energy, TFLM arena, flash.",
        ),
        board: str = typer.Option("nucleo-l4r5zi", "--board", help="Board profile name or YAML path."),
        rate_hz: float = typer.Option(
            1.0, "--rate-hz", help="Inferences per second for the always-on day figure."
        ),
        as_json: bool = typer.Option(False, "--json", help="With --tflite: print one JSON object."),
    ) -> None:
        """Latency and energy of one architecture from every available source, and its energy per day;
        or, with --tflite, latency, energy, TFLM arena and flash of a model file."""
        if (arch is None) == (tflite is None):
            raise typer.BadParameter("give exactly one of --arch and --tflite")
        if tflite is not None:
            _energy_of_file(tflite, board, as_json)
            return
        from audio_nas.energy import ENERGY_MODELS, always_on_energy_per_day_j, load_board
        from audio_nas.errors import EnergyModelError
        from audio_nas.space import resolve_arch

        spec, b = resolve_arch(arch), load_board(board)
        for name, cls in ENERGY_MODELS.items():
            try:
                e = cls().estimate(spec, b)
            except EnergyModelError as exc:
                typer.echo(f"{name:<10} unavailable: {exc}")
                continue
            day = always_on_energy_per_day_j(e, spec, b, rate_hz)
            typer.echo(
                f"{name:<10} {e.latency_ms:8.2f} ms {e.energy_uj:9.1f} µJ/inference   per day at "
                f"{rate_hz}/s: {day['total_j']:.1f} J (inference {day['inference_j']:.1f}, front-end "
                f"{day['frontend_j']:.1f}, sleep {day['sleep_j']:.1f})"
            )

    app.add_typer(predictor_app, name="predictor")
