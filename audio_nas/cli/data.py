"""``audio-nas data make|info``."""

from __future__ import annotations

from pathlib import Path

import typer

from audio_nas.cli.options import OnError, on_error_option, on_error_value

data_app = typer.Typer(help="Generate and inspect datasets.", no_args_is_help=True)


@data_app.command("make")
def make(
    name: str = typer.Argument(..., help="synth-kws, synth-events, or kws (keywords of your own: --words)"),
    words: str = typer.Option(
        None, "--words", help='kws only: comma-separated keywords, e.g. "hey nova,lights on,stop".'
    ),
    per_class: int = typer.Option(
        None,
        "--per-class",
        help="Clips per class (default: 300 for synth-kws, 150 for synth-events, 200 for kws).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same audio."),
    engines: str = typer.Option(
        None,
        "--engines",
        help="kws only: TTS engines, comma-separated "
        "(default espeak,flite,pico; also: festival, mbrola, rhvoice).",
    ),
    negatives: str = typer.Option(
        None, "--negatives", help="kws only: extra _unknown_ words, comma-separated (must not be keywords)."
    ),
    vocoder: float = typer.Option(
        0.0,
        "--vocoder",
        help="kws only: share (0-1) of train/validation speech re-synthesised by an LPC vocoder.",
    ),
    out: Path = typer.Option(None, "--out", help="Output directory (default data/<name>[-n<N>-s<S>])."),
    workers: int = typer.Option(None, "--workers", help="Worker processes (default: cores, at most 4)."),
) -> None:
    """Generate a synthetic dataset (WAVs + manifest.csv + manifest.json with the content hash)."""
    import json

    from audio_nas.errors import DataError

    if name == "kws":
        from audio_nas.data.kws import make_kws

        if not words:
            raise DataError('kws needs --words, e.g. --words "hey nova,lights on,stop"')
        path = make_kws(
            words,
            per_class=per_class,
            seed=seed,
            engines=engines,
            negatives=negatives,
            out_dir=out,
            workers=workers,
            vocoder=vocoder,
        )
    else:
        from audio_nas.data.synthetic import make_dataset

        given = [
            o
            for o, v in (
                ("--words", words),
                ("--engines", engines),
                ("--negatives", negatives),
                ("--vocoder", vocoder),
            )
            if v
        ]
        if given:
            raise DataError(f"{', '.join(given)} only apply to `data make kws`, not to {name}")
        path = make_dataset(name, per_class=per_class, seed=seed, out_dir=out, workers=workers)
    meta = json.loads((path / "manifest.json").read_text())
    typer.echo(
        f"{meta['name']}: {meta['n_clips']} clips, {len(meta['classes'])} classes, splits "
        f"{meta['split_counts']}"
    )
    typer.echo(
        f"content hash {meta['content_hash'][:16]}, generated in {meta['generation_time_s']} s -> {path}"
    )
    if name == "kws":
        typer.echo(f"hard negatives: {meta['negative_kinds']}")
        typer.echo(f"load it as dataset kws:{path}")


@data_app.command("info")
def info(
    name: str = typer.Argument(..., help="A dataset name or KIND:PATH."),
    on_error: OnError = on_error_option(),
) -> None:
    """Class counts per split and the content hash."""
    from audio_nas.data import load_dataset

    ds = load_dataset(name, on_error=on_error_value(on_error))
    counts = ds.counts()
    typer.echo(
        f"{ds.name}: {len(ds)} clips of {ds.clip_ms} ms at {ds.sample_rate_hz} Hz, hash "
        f"{ds.content_hash[:16]}"
    )
    typer.echo(f"{'class':<16}" + "".join(f"{s:>12}" for s in counts))
    for c in ds.class_names:
        typer.echo(f"{c:<16}" + "".join(f"{counts[s][c]:>12}" for s in counts))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
