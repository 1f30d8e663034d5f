"""Dataset benchmark: generation time and sizes of the embedded datasets, and load time."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from audio_nas.bench.report import markdown_table, write_section


def run_bench(quick: bool = False) -> None:
    from audio_nas.data.synthetic import RECIPES, load_generated, make_dataset

    rows = []
    tmp = Path(tempfile.mkdtemp())
    try:
        for name, recipe in RECIPES.items():
            per_class = 20 if quick else recipe.default_per_class
            t0 = time.perf_counter()
            path = make_dataset(name, per_class=per_class, out_dir=tmp / name, progress=False)
            gen_s = time.perf_counter() - t0
            meta = json.loads((path / "manifest.json").read_text())
            t0 = time.perf_counter()
            load_generated(path)
            load_s = time.perf_counter() - t0
            size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
            rows.append(
                [
                    name,
                    len(meta["classes"]),
                    per_class,
                    meta["n_clips"],
                    meta["split_counts"]["train"],
                    meta["split_counts"]["validation"],
                    meta["split_counts"]["test"],
                    f"{gen_s:.0f}",
                    f"{meta['n_clips'] / gen_s:.0f}",
                    f"{load_s:.2f}",
                    f"{size_mb:.0f}",
                ]
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    body = markdown_table(
        [
            "dataset",
            "classes",
            "per class",
            "clips",
            "train",
            "val",
            "test",
            "generate s",
            "clips/s",
            "load s",
            "MB",
        ],
        rows,
    )
    write_section(
        "data", "Embedded datasets: generation", "audio-nas bench data" + (" --quick" if quick else ""), body
    )


# --------------------------------------------------------------------------------------
# Cross-synthesiser generalisation on a generated kws set (issue 17 item 3)
# --------------------------------------------------------------------------------------


def _standard_plan(engines: list[str]) -> list[tuple[str, list[str]]]:
    """(row name, engines trained on): each engine alone (two engines) or all-but-each (more), then all."""
    plan = [(f"{e}", [e]) for e in engines] if len(engines) == 2 else []
    plan += [(f"all-but-{e}", [o for o in engines if o != e]) for e in engines if len(engines) > 2]
    return plan + [("all", list(engines))]


def _select_plan(engines: list[str], train_sets: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """The named rows, or engine subsets joined by "+" (``flite+festival``), for controlled comparisons."""
    named = dict(_standard_plan(engines))
    custom = {n: n.split("+") for n in train_sets if n not in named and set(n.split("+")) <= set(engines)}
    unknown = sorted(set(train_sets) - set(named) - set(custom))
    if unknown:
        raise SystemExit(
            f"unknown train set(s) {unknown}; this dataset has {list(named)}, or join engines with +: "
            f"{'+'.join(engines[:2])}"
        )
    return [(n, named.get(n) or custom[n]) for n in train_sets]


def cross_synth(
    dataset: str,
    *,
    arch: str = "ds_cnn_s",
    seeds: tuple[int, ...] = (0, 1),
    epochs: int | None = None,
    domain_adversarial: float = 0.0,
    equal_clips: bool = False,
    train_sets: tuple[str, ...] | None = None,
    train_overrides: dict | None = None,
    write: bool = True,
) -> list[dict]:
    """Train on one engine's clips (train/validation splits), test on every engine's test split.

    ``dataset`` is ``kws:PATH`` of a set made with two or more ``--engines`` (the ``engine`` column).
    _silence_ clips have no engine: they are in every train and test set. With more than two engines,
    ``all-but-X`` trains on every engine but X. The best epoch is chosen on the training engines'
    validation clips only; test clips of the held-out engine are never seen before the final score.

    ``domain_adversarial`` > 0 trains every model that hears two or more engines with a DANN head on the
    engine label (``audio_nas.training.domain``; _silence_ clips have none). ``equal_clips`` gives the
    all-engine model (the in-engine reference) as many train clips as the smallest all-but-one model, a
    random subset, so the gap is not partly a difference in data quantity. ``train_sets`` runs only the
    named rows (e.g. ``("all-but-espeak", "all")``) or engine subsets joined by ``+``
    (``"flite+festival"``). ``train_overrides`` are TrainConfig fields (as in a search config's
    ``train:``), e.g. ``{"specaugment": {"freq_mask_bins": 8}}``.
    """
    import dataclasses

    import numpy as np
    import torch

    from audio_nas.config import from_dict
    from audio_nas.data import load_dataset
    from audio_nas.data.dataset import SPLIT_IDS
    from audio_nas.data.kws import read_manifest
    from audio_nas.features import compute_features
    from audio_nas.training.config import TrainConfig
    from audio_nas.training.metrics import classification_metrics, predict_logits
    from audio_nas.training.pipeline import spec_for_dataset
    from audio_nas.training.trainer import train

    if not dataset.startswith("kws:"):
        raise SystemExit("cross-synth needs a generated keyword set, kws:PATH (audio-nas data make kws ...)")
    path = Path(dataset.split(":", 1)[1])
    meta, rows = read_manifest(path)
    ds = load_dataset(dataset)
    engine = np.array([r["engine"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    engines = [e for e in meta["engines"]]
    if len(engines) < 2:
        raise SystemExit(f"{dataset} was made with one engine ({engines}); cross-synth needs two or more")
    spec = spec_for_dataset(arch, ds)
    feats = compute_features(ds, spec.frontend)
    split = np.asarray(feats.split)
    test_mask = {e: (split == SPLIT_IDS["test"]) & ((engine == e) | (engine == "")) for e in engines}
    plan = _standard_plan(engines)
    is_train = split == SPLIT_IDS["train"]
    fewest = (
        min(int((is_train & (np.isin(engine, u) | (engine == ""))).sum()) for n, u in plan if n != "all")
        if len(engines) > 2
        else None
    )
    if train_sets is not None:
        plan = _select_plan(engines, train_sets)
    out: list[dict] = []
    for name, used in plan:
        keep = np.isin(engine, used) | (engine == "")
        for seed in seeds:
            new_split = np.where(keep & (split != SPLIT_IDS["test"]), split, 255).astype(np.uint8)
            dann = domain_adversarial if len(used) > 1 else 0.0
            cap = fewest if (equal_clips and name == "all" and fewest) else None
            cfg = from_dict(
                TrainConfig,
                {
                    **(train_overrides or {}),
                    "seed": seed,
                    "domain_adversarial": dann,
                    **({"max_train_examples": cap} if cap else {}),
                    **({"epochs": epochs} if epochs else {}),
                },
            )
            fs = dataclasses.replace(feats, split=new_split)
            tr = new_split == SPLIT_IDS["train"]
            domains = (  # the engine's index among those trained on; -1 for _silence_ (no engine)
                np.array([used.index(e) if e in used else -1 for e in engine[tr]], np.int64) if dann else None
            )
            t0 = time.perf_counter()
            res = train(spec, fs, cfg, domain_labels=domains, progress=False)
            row = {
                "train_on": name,
                "seed": seed,
                # what the run was asked for, the same in every row of it (--rows checks)
                "options": {
                    "arch": arch,
                    "epochs": epochs,
                    "domain_adversarial": domain_adversarial,
                    "equal_clips": equal_clips,
                    "train_overrides": train_overrides or {},
                },
                "torch_threads": torch.get_num_threads(),
                "epochs": cfg.epochs,
                "domain_adversarial": dann,
                "equal_clips": bool(cap),
                "train_clips": min(cfg.max_train_examples or int(tr.sum()), int(tr.sum())),
                "val_acc": res.val_accuracy,
                "train_s": round(time.perf_counter() - t0, 1),
            }
            for e in engines:
                x = np.asarray(feats.x[np.flatnonzero(test_mask[e])])
                y = np.asarray(feats.labels)[test_mask[e]]
                m = classification_metrics(predict_logits(res.model, x), y, tuple(feats.class_names))
                row[f"test_{e}"] = m.accuracy
                row[f"n_test_{e}"] = m.n_examples
            if name == "all":  # accuracy per clip kind on all test clips: how often hard negatives pass
                te = np.flatnonzero(split == SPLIT_IDS["test"])
                pred = predict_logits(res.model, np.asarray(feats.x[te])).argmax(axis=1)
                ok = pred == np.asarray(feats.labels)[te]
                row["by_kind"] = {
                    k: [float(ok[kind[te] == k].mean()), int((kind[te] == k).sum())]
                    for k in sorted(set(kind[te]))
                }
            out.append(row)
            print(json.dumps(row), flush=True)
    if write:
        _write_cross_synth(
            dataset, meta, arch, seeds, epochs, engines, out, domain_adversarial, equal_clips, train_overrides
        )
    return out


def write_cross_synth_rows(dataset: str, row_files: list[str], *, arch: str = "ds_cnn_s") -> None:
    """Write the section from rows printed by ``--no-write`` runs (JSON lines), e.g. seeds side by side.

    Rows name the options they were made with; ``arch`` is for rows from before they did.
    """
    from audio_nas.data.kws import read_manifest

    rows = [
        json.loads(line)
        for f in row_files
        for line in Path(f).read_text().splitlines()
        if line.startswith("{")
    ]
    if not rows:
        raise SystemExit(f"no result rows (JSON lines) in {row_files}")
    keys = [(r["train_on"], r["seed"]) for r in rows]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise SystemExit(f"rows for the same (train set, seed) in more than one place: {twice}; keep one")
    if len({json.dumps(r.get("options"), sort_keys=True) for r in rows}) > 1:
        raise SystemExit(
            "the rows were made with different options (arch, DANN, ...); write separate sections"
        )
    opts = rows[0].get("options") or {}
    arch = opts.get("arch", arch)
    meta, _ = read_manifest(Path(dataset.split(":", 1)[1]))
    order = {n: i for i, n in enumerate(dict.fromkeys(r["train_on"] for r in rows))}
    rows.sort(key=lambda r: (order[r["train_on"]], r["seed"]))
    dann = max(r.get("domain_adversarial", 0.0) for r in rows)  # 0 for single-engine rows
    equal = any(r.get("equal_clips") for r in rows)
    seeds = tuple(sorted({r["seed"] for r in rows}))
    from audio_nas.training.config import TrainConfig

    epochs = rows[0]["epochs"] if rows[0]["epochs"] != TrainConfig().epochs else None
    overrides = opts.get("train_overrides", rows[0].get("train_overrides")) or None  # older rows: top level
    _write_cross_synth(
        dataset, meta, arch, seeds, epochs, list(meta["engines"]), rows, dann, equal, overrides
    )


# the recipe of the first sets measured (docs/benchmarks.md): their sections are keyed by engines alone;
# a set made otherwise gets its own section (without this, a 1000-per-class run, then a vocoder run,
# replaced the section of the set with the same engines)
FIRST_SETS = {
    "keywords": ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"],
    "negatives": [],
    "per_class": 300,
    "seed": 0,
    "vocoder": 0.0,
}


def _set_suffix(meta: dict) -> tuple[str, str]:
    """(section-name suffix, title suffix) naming how the set differs from ``FIRST_SETS``."""
    diff = {k: meta.get(k, v) for k, v in FIRST_SETS.items() if meta.get(k, v) != v}
    per_class = diff.pop("per_class", None)
    section = f"-n{per_class}" if per_class else ""
    title = f", {per_class} clips per class" if per_class else ""
    if diff:
        section += "-" + hashlib.sha256(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:8]
        title += ", " + ", ".join(f"{k} {v}" for k, v in diff.items())
    return section, title


def _write_cross_synth(
    dataset,
    meta,
    arch,
    seeds,
    epochs,
    engines,
    rows,
    domain_adversarial=0.0,
    equal_clips=False,
    train_overrides=None,
) -> None:
    import numpy as np
    import yaml

    overrides_yaml = (
        yaml.safe_dump(train_overrides, default_flow_style=True).strip() if train_overrides else ""
    )

    threads = sorted({r["torch_threads"] for r in rows if r.get("torch_threads")})

    def agg(train_on: str, e: str) -> tuple[float, float]:
        v = [r[f"test_{e}"] for r in rows if r["train_on"] == train_on]
        return float(np.mean(v)), float(np.std(v))

    head = ["trained on", "train clips"] + [f"test {e} (n={rows[0][f'n_test_{e}']})" for e in engines]
    table = []
    for name in dict.fromkeys(r["train_on"] for r in rows):
        n = next(r["train_clips"] for r in rows if r["train_on"] == name)
        table.append([name, n] + [f"{agg(name, e)[0]:.3f} ± {agg(name, e)[1]:.3f}" for e in engines])
    gaps = []
    for e in engines:
        others = [o for o in engines if o != e]
        cross = "all-but-" + e if len(engines) > 2 else others[0]
        # in-engine: a model that heard e in training; with two engines the one trained on e alone, with
        # more the one trained on all of them (it has more clips than all-but-e: stated in the text)
        inside = e if len(engines) == 2 else "all"
        gaps.append(
            f"held-out {e}: cross-engine ({cross}) {agg(cross, e)[0]:.3f} vs in-engine ({inside}) "
            f"{agg(inside, e)[0]:.3f} ({100 * (agg(cross, e)[0] - agg(inside, e)[0]):+.1f} points)"
            if any(r["train_on"] == inside for r in rows)
            else f"held-out {e}: cross-engine {agg(cross, e)[0]:.3f}"
        )
    per_seed = "; ".join(
        f"{r['train_on']} s{r['seed']}: " + ", ".join(f"{e} {r[f'test_{e}']:.3f}" for e in engines)
        for r in rows
    )
    kinds = [r["by_kind"] for r in rows if "by_kind" in r]
    kind_line = ""
    if kinds:
        kind_line = (
            "\n\nModel trained on all engines, test accuracy per clip kind (mean over seeds; n): "
            + ", ".join(f"{k} {np.mean([d[k][0] for d in kinds]):.3f} ({kinds[0][k][1]})" for k in kinds[0])
        )
    body = (
        "Machine shared with other jobs (2 cores). "
        f"Dataset `{dataset}` ({meta['command']}; {meta['n_clips']} clips, generated in "
        f"{meta['generation_time_s']} s with {meta['workers']} workers, hash {meta['content_hash'][:12]}). "
        f"{arch}, `TrainConfig()` defaults"
        + (f" but {epochs} epochs" if epochs else "")
        + (f" but `{overrides_yaml}`" if train_overrides else "")
        + (
            f"; domain-adversarial (DANN) head on the engine label, weight {domain_adversarial}, for every"
            " model trained on two or more engines"
            if domain_adversarial
            else ""
        )
        + (
            "; the all-engine model gets a random subset of its train clips, as many as the smallest"
            " all-but-one model has"
            if equal_clips
            else ""
        )
        + f", seeds {list(seeds)}"
        " (training seed; one dataset). Train and validation clips of the named engine(s) only (best epoch on"
        " their validation clips); test = each engine's test-voice clips, plus the _silence_ test clips"
        " (no engine) in every column. Accuracy, mean ± std over seeds.\n\n"
        + markdown_table(head, table)
        + "\n\n"
        + "\n".join(f"- {g}" for g in gaps)
        + kind_line
        + f"\n\nPer seed: {per_seed}."
        + (
            f" Torch threads per training: {', '.join(map(str, threads))} (the machine line above describes"
            " the process that wrote this section)."
            if threads
            else ""
        )
    )
    default_arch = arch == "ds_cnn_s"
    cmd = (
        f"python -m audio_nas.bench.data cross-synth --dataset {dataset} --seeds {','.join(map(str, seeds))}"
        + (f" --epochs {epochs}" if epochs else "")
        + ("" if default_arch else f" --arch '{arch}'")
        + (f" --domain-adversarial {domain_adversarial}" if domain_adversarial else "")
        + (" --equal-clips" if equal_clips else "")
        + (f" --train '{overrides_yaml}'" if train_overrides else "")
    )
    # two engines keep the first section; a set with more engines gets its own beside it, and so does
    # another architecture (front-end) on the same set
    section = "kws-cross-synth" if len(engines) == 2 else f"kws-cross-synth-{len(engines)}"
    title = "Keywords from text: cross-synthesiser generalisation" + (
        "" if len(engines) == 2 else f" ({len(engines)} engines: {', '.join(engines)})"
    )
    set_section, set_title = _set_suffix(meta)
    section += set_section
    title += set_title
    if not default_arch:
        section += "-" + hashlib.sha256(arch.encode()).hexdigest()[:8]
        title += f", {arch.split('|')[0]}"
    if domain_adversarial:
        section += f"-dann{domain_adversarial:g}"
        title += f", DANN {domain_adversarial:g}"
    if equal_clips:
        section += "-eq"
        title += ", equal clips"
    if train_overrides:
        section += "-" + hashlib.sha256(overrides_yaml.encode()).hexdigest()[:8]
        title += f", train {overrides_yaml}"
    write_section(section, title, cmd, body)


if __name__ == "__main__":
    import argparse

    import yaml

    p = argparse.ArgumentParser(description="audio_nas.bench.data extras")
    p.add_argument("what", choices=["cross-synth"])
    p.add_argument("--dataset", required=True, help="kws:PATH of a set made with two or more engines")
    p.add_argument("--arch", default="ds_cnn_s")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument(
        "--domain-adversarial", type=float, default=0.0, help="DANN weight on the engine label (0 = off)"
    )
    p.add_argument(
        "--equal-clips", action="store_true", help="the all-engine model gets as many clips as all-but-one"
    )
    p.add_argument("--train-sets", default=None, help="comma-separated rows to run, e.g. all-but-espeak,all")
    p.add_argument(
        "--train", default=None, help='TrainConfig fields as YAML, e.g. "{specaugment: {freq_mask_bins: 8}}"'
    )
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    p.add_argument(
        "--rows",
        nargs="+",
        default=None,
        help="write the section from --no-write outputs instead of training",
    )
    a = p.parse_args()
    if a.rows:
        write_cross_synth_rows(a.dataset, a.rows, arch=a.arch)
    else:
        cross_synth(
            a.dataset,
            arch=a.arch,
            seeds=tuple(int(s) for s in a.seeds.split(",")),
            epochs=a.epochs,
            domain_adversarial=a.domain_adversarial,
            equal_clips=a.equal_clips,
            train_sets=tuple(a.train_sets.split(",")) if a.train_sets else None,
            train_overrides=yaml.safe_load(a.train) if a.train else None,
            write=not a.no_write,
        )
