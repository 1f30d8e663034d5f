"""``audio-nas stream``: live detections from a synthetic stream, a file or the microphone."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from audio_nas.cli.options import OnError, on_error_option, on_error_value


def _view(class_names, jsonl):
    """A rich live view on a terminal; plain lines otherwise (CI, pipes)."""
    import numpy as np

    if not sys.stdout.isatty():

        def plain(t, p, d, chunk):
            if d is not None:
                typer.echo(f"{t:8.2f} s  DETECTED {d.label:<10} score {d.score:.2f}")
                jsonl.write(d.to_json() + "\n")

        return plain, None
    from rich.live import Live
    from rich.table import Table

    recent: list[str] = []
    live = Live(refresh_per_second=10)

    def update(t, p, d, chunk):
        if d is not None:
            recent.insert(0, f"{t:7.2f} s  {d.label} ({d.score:.2f})")
            jsonl.write(d.to_json() + "\n")
        table = Table(title=f"audio-nas stream  t = {t:6.1f} s")
        table.add_column("class")
        table.add_column("score")
        for i in np.argsort(-p)[:3]:
            table.add_row(class_names[i], "█" * int(30 * p[i]) + f" {p[i]:.2f}")
        level = float(np.sqrt(np.mean(chunk**2)) + 1e-9)
        table.add_row("level", "▮" * int(max(0, 60 + 20 * np.log10(level)) / 2))
        for line in recent[:5]:
            table.add_row("detected", line)
        live.update(table)

    return update, live


def register(app: typer.Typer) -> None:
    @app.command("stream")
    def stream(
        model: Path = typer.Option(
            None, "--model", help="Exported model directory (model.tflite + summary.json)."
        ),
        demo: bool = typer.Option(
            False, "--demo", help="Pick the newest searched model (or train a small one)."
        ),
        synthetic: float = typer.Option(
            None, "--synthetic", help="Minutes of synthetic stream from the test split."
        ),
        wav: Path = typer.Option(None, "--wav", help="A WAV/FLAC/OGG file (any rate/channels; resampled)."),
        mic: bool = typer.Option(False, "--mic", help="Listen to the microphone."),
        seconds: float = typer.Option(None, "--seconds", help="Stop the microphone after this long."),
        dataset: str = typer.Option(
            "synth-kws", "--dataset", help="Dataset for class names and the synthetic stream."
        ),
        threshold: float = typer.Option(
            None,
            "--threshold",
            help="Detection threshold on averaged posteriors (default 0.7; with --demo the threshold "
            "chosen for the model at 1 false alarm per hour, when known).",
        ),
        stride_ms: float = typer.Option(
            100.0,
            "--stride-ms",
            help="Run the model every this many ms of audio "
            "(100 ms: host real-time factor <= 0.05 for DS-CNN, docs/benchmarks.md).",
        ),
        evaluate: bool = typer.Option(
            False, "--evaluate", help="Score detections against the synthetic ground truth."
        ),
        out: Path = typer.Option(Path("detections.jsonl"), "--out", help="Detections as JSON lines."),
        device: str = typer.Option(
            None, "--device", help="Run inference on a board: serial port or socket:// URL."
        ),
        on_error: OnError = on_error_option(),
    ) -> None:
        """Always-on detection with a live view; detections are written to JSONL."""
        from audio_nas.data import load_dataset
        from audio_nas.errors import StreamingError
        from audio_nas.streaming.metrics import evaluate as score
        from audio_nas.streaming.metrics import frr_at_fa_per_hour
        from audio_nas.streaming.pipeline import TflmModel, run_stream
        from audio_nas.streaming.recognizer import Recognizer
        from audio_nas.streaming.sources import chunked, file_source, mic_source, synthetic_stream

        if sum(x is not None and x is not False for x in (synthetic, wav, mic or None)) != 1:
            raise StreamingError("choose exactly one source: --synthetic MINUTES, --wav FILE or --mic")
        window_s = None  # the recognizer's smoothing: its default, or the one chosen for the demo model
        if model is None:
            if not demo:
                raise StreamingError("give --model DIR (an exported model) or --demo")
            from audio_nas.streaming.demo import frr_at_1_fa_h, pick_model

            model, why = pick_model(dataset, on_error=on_error_value(on_error))
            typer.echo(f"model: {model} ({why})")
            fig = frr_at_1_fa_h(model, dataset, on_error=on_error_value(on_error))
            typer.echo(f"spec: {TflmModel(model).spec.to_str()}")
            typer.echo(
                f"FRR at 1 false alarm/hour on the long held-out test stream: {fig.frr:.3f} (test FA/h "
                f"{fig.fa_h:.2f}; recognizer chosen on the validation stream: threshold {fig.threshold:.3f}, "
                f"smoothing {fig.smoothing_s:.1f} s; from {fig.source})"
            )
            if threshold is None:
                threshold, window_s = fig.threshold, fig.smoothing_s
        threshold = 0.7 if threshold is None else threshold
        window_s = Recognizer.average_window_s if window_s is None else window_s
        m = TflmModel(model)
        ds = load_dataset(dataset, on_error=on_error_value(on_error))
        sr = m.spec.frontend.sample_rate_hz
        chunk = int(0.1 * sr)
        events = None
        if synthetic is not None:
            audio, events = synthetic_stream(ds, synthetic)
            source = chunked(audio, chunk)
        elif wav is not None:
            source = chunked(file_source(wav, sr), chunk)
        else:
            source = mic_source(sr, chunk, seconds)
        with open(out, "w") as jsonl:
            update, live = _view(ds.class_names, jsonl)
            rec = Recognizer(ds.class_names, threshold=threshold, average_window_s=window_s)
            if device:
                from audio_nas.firmware_bridge.client import DeviceClient
                from audio_nas.streaming.pipeline import run_stream_device

                with DeviceClient(device) as client:
                    client.upload_model((Path(model) / "model.tflite").read_bytes())
                    client.activate()
                    res = run_stream_device(
                        client,
                        m,
                        source,
                        sr,
                        ds.class_names,
                        stride_ms=stride_ms,
                        threshold=threshold,
                        on_update=update,
                    )
                if evaluate:
                    r = score(res.detections, events or [], res.audio_s)
                    typer.echo(
                        f"board: recall {r['recall']:.3f}, false alarms/hour {r['false_alarms_per_hour']:.1f}"
                    )
                typer.echo(
                    f"{len(res.detections)} detections from the board in {res.audio_s:.0f} s of audio -> "
                    f"{out}"
                )
                return
            with live if live is not None else contextlib.nullcontext():
                res = run_stream(
                    m,
                    source,
                    sr,
                    ds.class_names,
                    stride_ms=stride_ms,
                    recognizer=rec,
                    on_update=update,
                    keep_scores=evaluate,
                )
        typer.echo(
            f"{len(res.detections)} detections in {res.audio_s:.0f} s of audio -> {out}; "
            f"real-time factor {res.real_time_factor:.4f}"
        )
        if evaluate:
            if events is None:
                raise StreamingError("--evaluate needs --synthetic (the only source with ground truth)")
            r = score(res.detections, events, res.audio_s)
            f = frr_at_fa_per_hour(res.scores, events, res.audio_s, ds.class_names)
            typer.echo(
                f"recall {r['recall']:.3f}, false alarms/hour {r['false_alarms_per_hour']:.1f}, "
                f"median latency {r['median_latency_s']:.2f} s (threshold {round(threshold, 3):g}); "
                f"on this short stream: FRR at 1 FA/h {f['frr']:.3f} "
                + (
                    f"(threshold {f['threshold']:.2f})"
                    if f["threshold"] is not None
                    else "(no threshold reaches 1 FA/h)"
                )
            )

    @app.command("stream-eval")
    def stream_eval(
        model: Path = typer.Option(
            ...,
            "--model",
            help="Exported model directory (model.tflite + summary.json; its checkpoint "
            "beside it, as a search's pareto/trial-* has, for the fast integer simulation).",
        ),
        dataset: str = typer.Option("synth-kws", "--dataset", help="Dataset whose splits build the streams."),
        hours: float = typer.Option(1.0, "--hours", help="Hours of negatives in each stream."),
        events_per_hour: float = typer.Option(360.0, "--events-per-hour", help="Keyword events per hour."),
        seed: int = typer.Option(0, "--seed", help="Stream seed."),
        on_error: OnError = on_error_option(),
    ) -> None:
        """FRR at 0.5 / 1 / 2 false alarms per hour on long held-out streams (recognizer chosen on the
        validation stream, reported on the test stream), as the search report gives it."""
        from audio_nas.data import load_dataset
        from audio_nas.streaming.search_eval import build_streams, composition_lines, evaluate_exported
        from audio_nas.streaming.stream_eval import FA_TARGETS, overshoot_note, target_key

        ds = load_dataset(dataset, on_error=on_error_value(on_error))
        streams = build_streams(ds, hours, events_per_hour, seed)
        for line in composition_lines(streams)[:2]:
            typer.echo(line)
        r = evaluate_exported({0: model}, ds, streams, on_error_value(on_error))[0]
        typer.echo(f"model: {model} (posteriors: {r['posteriors']})")
        for t in FA_TARGETS:
            x = r["targets"][target_key(t)]
            typer.echo(
                f"FRR at {t:g} FA/h: {x['frr']:.3f} (test FA/h {x['fa_h']:.2f}; threshold "
                f"{x['threshold']:.3f}, smoothing {x['smoothing_s']:.1f} s"
                + ("" if x["val_reached"] else "; no recognizer reached the target on validation")
                + ")"
            )
            if x.get("test_false_alarms_by_source"):
                src = ", ".join(f"{k} {n}" for k, n in x["test_false_alarms_by_source"].items())
                typer.echo(f"  test false alarms by source: {src}")
            if x.get("test_misses_by_cause"):
                m = x["test_misses_by_cause"]
                typer.echo(
                    f"  test misses: {m['missed']} (the clip alone missed too: {m['clip_alone']}; "
                    f"lost in the stream only: {m['in_stream']})"
                )
        note = overshoot_note(r["targets"], hours)
        if note:
            typer.echo(note)
