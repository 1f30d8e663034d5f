"""``audio-nas data synthesize``: a dataset recovered from a teacher checkpoint (data-free);
``audio-nas data add-mixtures``: more teacher-labelled mixtures for such a set;
``audio-nas data merge-synth``: one larger inversion pool from sets synthesised separately;
``audio-nas data add-proxy``: teacher-labelled public proxy speech in such a set."""

from __future__ import annotations

from pathlib import Path

import typer


# options of several data-free commands
def _device_option():
    return typer.Option("auto", "--device", help="auto (a GPU when present, else CPU), cpu or cuda.")


def _overwrite_option():
    return typer.Option(False, "--overwrite", help="Replace an existing output directory.")


def _manifest_teacher_option():
    """``--teacher`` of the commands that grow an existing set (its manifest names the teacher)."""
    return typer.Option(
        None,
        "--teacher",
        help="Teacher checkpoint (default: the one the manifest names; its hash must match).",
    )


def synthesize_cmd(
    teacher: Path = typer.Option(
        ..., "--teacher", help="Teacher checkpoint directory (from `audio-nas train`)."
    ),
    per_class: int = typer.Option(100, "--per-class", help="Examples to synthesise per class."),
    out: Path = typer.Option(
        None, "--out", help="Output directory (default data/synth-<teacher hash>-n<N>-s<S>)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same set (on CPU)."),
    steps: int = typer.Option(200, "--steps", help="Optimisation steps per batch and calibration round."),
    rounds: int = typer.Option(2, "--rounds", help="Recursive label calibration rounds (1 = one-hot only)."),
    batch_size: int = typer.Option(48, "--batch-size", help="Examples optimised together (BN statistics)."),
    lr: float = typer.Option(0.1, "--lr", help="Adam step size on the features."),
    coarse: int = typer.Option(
        1,
        "--coarse",
        help="With --prior grid: optimise a grid this many times coarser in time and frequency "
        "(1 = per cell).",
    ),
    prior: str = typer.Option(
        "source-filter",
        "--prior",
        help="What the inversion optimises: source-filter (a formant synthesiser's parameters rendered "
        "through the teacher's mel front-end; for speech) or grid (the features themselves, per cell or "
        "--coarse; for other sounds).",
    ),
    mixtures: int = typer.Option(
        20_000,
        "--mixtures",
        help="Teacher-labelled mixtures of the synthesised examples added to the train split (0 = none).",
    ),
    frontend: str = typer.Option(
        None,
        "--frontend",
        help="Expected front-end (a kind like logmel or a token like fe:logmel_w30_h20_m40): error if the "
        "teacher's differs.",
    ),
    student: Path = typer.Option(
        None,
        "--student",
        help="A student checkpoint trained on an earlier set of this teacher: steer the new examples to "
        "where it disagrees with the teacher (Adaptive DeepInversion's competition term).",
    ),
    compete: float = typer.Option(
        1.0, "--compete", help="Weight of the competition term (with --student; the CE term weighs 1)."
    ),
    device: str = _device_option(),
    overwrite: bool = _overwrite_option(),
) -> None:
    """Invert a trained teacher into a class-balanced feature set with soft labels (use it as synth:DIR)."""
    import json

    from audio_nas.training.inversion import InversionConfig
    from audio_nas.training.synthesize import synthesize

    cfg = InversionConfig(
        per_class=per_class,
        steps=steps,
        rounds=rounds,
        batch_size=batch_size,
        lr=lr,
        coarse_factor=coarse,
        prior=prior,
        mixtures=mixtures,
        seed=seed,
        device=device,
        w_compete=compete if student is not None else 0.0,
    )
    path = synthesize(
        teacher, cfg, out, expected_frontend=frontend, student_path=student, overwrite=overwrite
    )
    meta = json.loads((path / "manifest.json").read_text())
    conf = meta["teacher_confidence"]
    typer.echo(
        f"{meta['n_examples']} examples ({per_class} per class, {len(meta['class_names'])} classes) in "
        f"{meta['wall_s']} s; front-end {meta['frontend_token']}; terms {', '.join(meta['terms_applied'])}"
    )
    if meta["terms_not_applied"]:
        typer.echo(
            f"not applied (the teacher has no batch-norm statistics): {', '.join(meta['terms_not_applied'])}"
        )
    typer.echo(
        f"teacher agrees with the targets on {conf['agreement']:.3f}; median confidence "
        f"{conf['confidence_median']:.3f}; mean entropy {conf['entropy_mean_nats']:.3f} nats"
    )
    if meta.get("mixtures", {}).get("n"):
        n_val = meta["mixtures"].get("validation", 0)
        val = f", {n_val} in the validation split" if n_val else ""
        typer.echo(f"+ {meta['mixtures']['n']} teacher-labelled mixtures in the train split{val}")
    typer.echo(f"-> {path}  (train on it with --dataset synth:{path})")


def add_mixtures_cmd(
    synth_set: str = typer.Argument(..., help="The synthesised set (DIR or synth:DIR)."),
    n: int = typer.Option(..., "--n", help="Teacher-labelled train mixtures to add."),
    validation: int = typer.Option(
        0,
        "--validation",
        help="Teacher-labelled validation mixtures to add (of the validation inversions only).",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Output directory (default <set>-m<train mixtures after the addition>, with -v<validation "
        "mixtures> when --validation is given).",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed; the same seed and set give the same mixtures (on CPU)."
    ),
    warp: float = typer.Option(
        0.0,
        "--warp",
        help="Give each new mixture its own pitch, vocal tract, tempo and level (source-filter sets): 1 = "
        "up to +-4 semitones, x1.15, x1.25, +-10 dB; 0 = none.",
    ),
    teacher: Path = _manifest_teacher_option(),
    device: str = _device_option(),
    overwrite: bool = _overwrite_option(),
) -> None:
    """Write a copy of a synthesised set with more teacher-labelled train mixtures (no new inversion)."""
    import json

    from audio_nas.training.grow_synth import add_mixtures

    path = add_mixtures(
        synth_set,
        n,
        out,
        n_validation=validation,
        seed=seed,
        warp=warp,
        teacher_path=teacher,
        device=device,
        overwrite=overwrite,
    )
    meta = json.loads((path / "manifest.json").read_text())
    mix = meta["mixtures"]
    typer.echo(
        f"+ {n} + {validation} teacher-labelled mixtures (train + validation) in "
        f"{mix['added'][-1]['wall_s']} s: {mix['n']} in the train split, "
        f"{mix.get('validation', 0)} in the validation split; {meta['n_examples']} examples"
    )
    typer.echo(f"-> {path}  (train on it with --dataset synth:{path})")


def merge_synth_cmd(
    synth_sets: list[str] = typer.Argument(
        ..., help="Two or more synthesised sets (DIR or synth:DIR) of one teacher, different seeds."
    ),
    out: Path = typer.Option(..., "--out", help="Output directory of the merged set."),
    inversions_only: bool = typer.Option(
        False,
        "--inversions-only",
        help="Keep the inversions only (then add mixtures of the whole pool with `data add-mixtures`).",
    ),
    overwrite: bool = _overwrite_option(),
) -> None:
    """Merge synthesised sets of one teacher into one larger inversion pool (run `data synthesize` with
    different --seed in several processes or machines, then merge)."""
    import json

    from audio_nas.training.grow_synth import merge_synth_sets

    path = merge_synth_sets(synth_sets, out, inversions_only=inversions_only, overwrite=overwrite)
    meta = json.loads((path / "manifest.json").read_text())
    n_inv = sum(m["inversions"] for m in meta["merged_from"])
    mix = meta["mixtures"]
    typer.echo(
        f"{len(meta['merged_from'])} sets merged: {n_inv} inversions, {mix['n']} train and "
        f"{mix['validation']} validation mixtures; {meta['n_examples']} examples"
    )
    if not mix["n"]:
        typer.echo(f"add mixtures of the whole pool with `audio-nas data add-mixtures synth:{path} --n N`")
    typer.echo(f"-> {path}  (train on it with --dataset synth:{path})")


def add_proxy_cmd(
    synth_set: str = typer.Argument(..., help="The synthesised set (DIR or synth:DIR)."),
    audio: str = typer.Option(
        ...,
        "--audio",
        help="Public speech that is not the private data (any dataset name, e.g. kws:DIR made by `audio-nas "
        "data make kws` with other words and engines). Its labels are never used; clips that say a teacher "
        "keyword or sound like one are dropped.",
    ),
    n: int = typer.Option(
        ..., "--n", help="Proxy examples: every clip once, then teacher-labelled pairs of clips."
    ),
    replace_mixtures: int = typer.Option(
        0,
        "--replace-mixtures",
        help="Drop this many random train mixtures first (the measured setting replaced half of them).",
    ),
    out: Path = typer.Option(
        None, "--out", help="Output directory (default <set>-px<N>, with -r<replaced> when mixtures go)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed, set and audio give the same set (CPU)."),
    max_shift_s: float = typer.Option(
        0.25, "--max-shift-s", help="Largest circular shift of a pair's second clip, seconds."
    ),
    select_from: int = typer.Option(
        1,
        "--select-from",
        help="Draw this many candidates per proxy example and keep N, class-balanced by the teacher's top "
        "class, most confident first (1: no selection).",
    ),
    teacher: Path = _manifest_teacher_option(),
    device: str = _device_option(),
    overwrite: bool = _overwrite_option(),
) -> None:
    """Write a copy of a synthesised set with teacher-labelled public proxy speech in its train split (a
    relaxed data-free setting: the teacher plus speech that is neither the private data nor its words)."""
    import json

    from audio_nas.training.proxy_speech import add_proxy

    path = add_proxy(
        synth_set,
        audio,
        n,
        out,
        replace_mixtures=replace_mixtures,
        seed=seed,
        max_shift_s=max_shift_s,
        select_from=select_from,
        teacher_path=teacher,
        device=device,
        overwrite=overwrite,
    )
    meta = json.loads((path / "manifest.json").read_text())
    px = meta["proxy"]
    typer.echo(
        f"+ {px['n']} teacher-labelled proxy examples ({px['alone']} clips alone and {px['pairs']} pairs, "
        f"of {px['clips']} clips of {px['audio']}; dropped as teacher keywords: "
        f"{px['dropped_keyword_clips']}) in "
        f"{px['wall_s']} s; {px['replaced_mixtures']} train mixtures replaced; {meta['n_examples']} examples"
    )
    typer.echo(
        f"teacher's top probability on them: median {px['teacher_top_probability_median']}; its classes: "
        + ", ".join(f"{c} {k}" for c, k in zip(meta["class_names"], px["teacher_class_counts"], strict=True))
    )
    typer.echo(f"-> {path}  (train on it with --dataset synth:{path})")


def register(app: typer.Typer) -> None:
    from audio_nas.cli.data import data_app

    data_app.command("synthesize")(synthesize_cmd)
    data_app.command("add-mixtures")(add_mixtures_cmd)
    data_app.command("merge-synth")(merge_synth_cmd)
    data_app.command("add-proxy")(add_proxy_cmd)
