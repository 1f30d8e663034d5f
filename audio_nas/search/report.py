"""What a search hands back: pareto.csv, plots with the baselines on the same axes, report.md/.html,
and the Pareto models retrained in full and exported to TFLM."""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import logging
import time
from pathlib import Path

import numpy as np

from audio_nas.config import from_dict, to_dict
from audio_nas.energy.boards import board_memory
from audio_nas.energy.op_model import expected_error_note
from audio_nas.errors import ExportError
from audio_nas.export import export_model
from audio_nas.export.graph import lower_model
from audio_nas.features.cache import SPLITS
from audio_nas.progress import Progress
from audio_nas.search.datafree import frontend_is_pinned, real_test_accuracy, with_frontend
from audio_nas.search.evaluate import cheap_objectives, evaluate_trial, training_data
from audio_nas.search.executors import make_executor
from audio_nas.search.objectives import hypervolume_curve
from audio_nas.search.retrain import retrain_epochs
from audio_nas.search.runner import SearchRunner
from audio_nas.space import ArchSpec, build_model, resolve_arch
from audio_nas.training import save_checkpoint, train
from audio_nas.training.config import TrainConfig
from audio_nas.training.trainer import train_examples_cap

log = logging.getLogger(__name__)

RETRAIN_FILE = "retrain.json"  # per exported Pareto model: the recipe, epochs, time and test accuracy


def evaluate_baselines(runner: SearchRunner) -> dict[str, dict]:
    """Each baseline preset with the same evaluator and recipe, once per run directory (in the store).

    With ``workers`` > 1 the baselines train in parallel in the search's executor (each with the recipe's
    ``num_threads``): trained one after another in this process, they left all but one core idle.
    """

    todo = [name for name in runner.cfg.baselines if runner.store.get_baseline(name) is None]
    if not todo:
        return {name: runner.store.get_baseline(name) for name in runner.cfg.baselines}
    payloads = {name: _baseline_payload(runner, name) for name in todo}
    with Progress("baselines", len(todo), unit="model", logger=log) as bar:
        for name, res in _run_all(runner, evaluate_trial, payloads):
            cheap = payloads[name]["cheap"]
            runner.store.set_baseline(name, {**cheap, **res, "spec": payloads[name]["spec"]})
            acc = res.get("accuracy")
            bar.update(1, **{f"{name} acc": "failed" if acc is None else f"{acc:.3f}"})
    return {name: runner.store.get_baseline(name) for name in runner.cfg.baselines}


def _run_all(runner: SearchRunner, fn, payloads: dict[str, dict]):
    """Yield ``(key, fn(payload))`` as they finish: in the search's executor when it has more than one
    worker and the work is training, else here one after another (a pool costs seconds to start)."""
    workers = min(runner.cfg.workers, len(payloads))
    if workers <= 1 or runner.cfg.evaluator != "train":
        for key, payload in payloads.items():
            log.info("evaluating %s", key)
            yield key, fn(payload)
        return
    executor = make_executor(runner.cfg.executor, workers, runner.cfg.ray_address)
    try:
        pending = {executor.submit(fn, payload): key for key, payload in payloads.items()}
        while pending:
            for handle in executor.wait_any(list(pending)):
                yield pending.pop(handle), executor.result(handle)
    finally:
        executor.shutdown()


def _baseline_payload(runner: SearchRunner, name: str) -> dict:
    spec = dataclasses.replace(resolve_arch(name), n_classes=runner.space.n_classes)
    if runner.synth is not None and frontend_is_pinned(runner.space):  # data-free, teacher's front-end only
        spec = with_frontend(spec, runner.synth.features.frontend, runner.space.n_classes)
    return {
        "spec": spec.to_str(),
        "evaluator": runner.cfg.evaluator,
        "surrogate_table": runner.cfg.surrogate_table,
        "dataset": runner.train_dataset,
        "on_error": runner.cfg.on_error,
        "train": to_dict(runner.cfg.train),
        "pruner": {"kind": "none", "warmup_epochs": 1, "min_peers": 1},
        "peers": [],
        "cheap": cheap_objectives(spec, runner.board, runner.cfg.energy_source),
    }


def write_report(runner: SearchRunner, export: bool | None = None, stream_eval=None) -> Path:
    """``stream_eval``: ``(runner, front) -> report`` with ``columns``, ``values`` {trial id: {column:
    text}} and ``markdown`` lines (``streaming.search_eval.evaluate_front``; the CLI passes it, this layer
    cannot import streaming); used when the config's ``stream_eval`` is on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, run_dir = runner.cfg, runner.run_dir
    trials = runner.store.trials()
    done = [t for t in trials if t.has_objectives and t.state == "complete"]
    front, _ = runner.front()
    baselines = evaluate_baselines(runner)

    memory = {t.id: board_memory(ArchSpec.from_str(t.spec), runner.board) for t in front}
    with open(run_dir / "pareto.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "trial",
                "origin",
                "val_accuracy",
                "test_accuracy",
                "energy_uj",
                "energy_source",
                "latency_ms",
                "model_ram_bytes",
                "total_ram_bytes",
                "ram_source",
                "model_flash_bytes",
                "total_flash_bytes",
                "flash_source",
                "params",
                "macs",
                "spec",
            ]
        )
        for t in sorted(front, key=lambda t: t.energy_uj):
            w.writerow(
                [
                    t.id,
                    t.origin,
                    f"{t.accuracy:.4f}",
                    _num(t.test_accuracy, ".4f"),
                    f"{t.energy_uj:.1f}",
                    t.energy_source,
                    f"{t.latency_ms:.2f}",
                    memory[t.id].model_ram_bytes,
                    memory[t.id].total_ram_bytes,
                    memory[t.id].ram_source,
                    memory[t.id].model_flash_bytes,
                    memory[t.id].total_flash_bytes,
                    memory[t.id].flash_source,
                    t.params,
                    t.macs,
                    t.spec,
                ]
            )

    finished = [t for t in trials if t.state in ("complete", "pruned", "failed", "infeasible")]
    F_all = (
        np.stack([runner.objectives(t) if t.has_objectives else np.array([1.0, 9.0, 9.0]) for t in finished])
        if finished
        else np.zeros((0, 3))
    )
    hv = hypervolume_curve(F_all, cfg.hv_reference)

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    for ax, key, label in [
        (axes[0], "energy_uj", "energy per inference (µJ)"),
        (axes[1], "peak_ram_bytes", "board RAM (bytes): model + firmware"),
    ]:
        ax.scatter(
            [getattr(t, key) for t in done], [t.accuracy for t in done], s=12, c="#999", label="trials"
        )
        fr = sorted(front, key=lambda t: getattr(t, key))
        ax.plot([getattr(t, key) for t in fr], [t.accuracy for t in fr], "o-", c="C0", label="Pareto front")
        for i, (name, b) in enumerate(baselines.items()):
            if b.get("accuracy") is not None:
                ax.scatter([b[key]], [b["accuracy"]], marker="*", s=160, c=f"C{i + 1}", label=name)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(f"accuracy vs energy ({runner.board.name})")
    axes[1].set_title("accuracy vs RAM")
    axes[2].plot(range(1, len(hv) + 1), hv)
    axes[2].set_xlabel("evaluations")
    axes[2].set_ylabel("hypervolume")
    axes[2].set_title(f"hypervolume (ref {cfg.hv_reference})")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "pareto.png", dpi=110)
    plt.close(fig)

    exported = export_front(runner, front) if (cfg.export_pareto if export is None else export) else {}
    streaming = stream_eval(runner, front) if stream_eval is not None and cfg.stream_eval else None
    if exported:
        shipped = {
            tid: {
                "retrain_epochs": str(e.get("retrain_epochs") or ""),
                "retrained_test_accuracy": _num(e["test_accuracy"], ".4f") if "test_accuracy" in e else "",
            }
            for tid, e in exported.items()
        }
        _add_csv_columns(run_dir / "pareto.csv", ["retrain_epochs", "retrained_test_accuracy"], shipped)
    if streaming is not None:
        _add_csv_columns(run_dir / "pareto.csv", streaming.columns, streaming.values)
    counts = {
        s: sum(t.state == s for t in trials)
        for s in ("complete", "pruned", "failed", "infeasible", "queued", "running")
    }
    saved_epochs = sum(cfg.train.epochs - (t.epochs_run or 0) for t in trials if t.state == "pruned")
    total_epochs = sum((t.epochs_run or 0) for t in trials if t.state in ("complete", "pruned"))
    lines = [
        f"# audio-nas search report: {cfg.name}",
        "",
        f"- dataset `{cfg.dataset}`, board `{runner.board.name}` ({runner.board.core}, "
        f"{runner.board.clock_hz / 1e6:.0f} MHz, {runner.board.sram_bytes // 1024} KB SRAM), "
        f"strategy `{cfg.strategy}`, evaluator `{cfg.evaluator}`, seed {cfg.seed}",
        *_datafree_lines(runner),
        f"- trials: {counts}; hypervolume {hv[-1] if hv else 0:.4f} (reference {cfg.hv_reference}, "
        f"objectives (1 - val acc, log10 µJ, log10 bytes))",
        f"- early stopping saved {saved_epochs} of {saved_epochs + total_epochs} epochs "
        f"({100 * saved_epochs / max(1, saved_epochs + total_epochs):.0f}%)",
        f"- energy source: `{cfg.energy_source}`; expected error: {_energy_error_note(cfg, runner.board)}",
        f"- RAM and flash: the model's share and the board total (model + firmware); RAM "
        f"{_memory_note(memory, 'ram_source')}; flash {_memory_note(memory, 'flash_source')}",
        "",
        "![pareto](pareto.png)",
        "",
        "## Pareto front",
        "",
        "| trial | origin | val acc | test acc | shipped model: test acc (epochs) | energy µJ | latency ms "
        "| RAM B (model / total) | flash B (model / total) | params | TFLM arena B | spec |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in sorted(front, key=lambda t: t.energy_uj):
        arena = exported.get(t.id, {}).get("arena_bytes", "")
        lines.append(
            f"| {t.id} | {t.origin} | {t.accuracy:.3f} | {_num(_test_acc(t, exported, cfg), '.3f')} | "
            f"{_shipped(exported.get(t.id, {}))} | "
            f"{t.energy_uj:.0f} | "
            f"{t.latency_ms:.1f} | {memory[t.id].model_ram_bytes} / {memory[t.id].total_ram_bytes} | "
            f"{memory[t.id].model_flash_bytes} / {memory[t.id].total_flash_bytes} | {t.params} | {arena} | "
            f"`{_cell(t.spec)}` |"
        )
    lines += [
        "",
        "## Baselines (same recipe, same energy model)",
        "",
        "| baseline | val acc | test acc | energy µJ | RAM B (total) | params | MACs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, b in baselines.items():
        fmt = lambda v: "failed" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(
            f"| {name} | {fmt(b.get('accuracy'))} | {fmt(b.get('test_accuracy'))} | "
            f"{b['energy_uj']:.0f} | {b['peak_ram_bytes']} | {b['params']} | {b['macs']} |"
        )
    lines += streaming.markdown if streaming is not None else []
    md = "\n".join(lines) + "\n"
    (run_dir / "report.md").write_text(md)
    (run_dir / "report.html").write_text(_md_table_html(md))
    return run_dir / "report.md"


def _num(value, spec: str) -> str:
    """A number for a table cell; ``n/a`` for a missing or NaN value (data-free trials have no test split)."""
    return "n/a" if value is None or value != value else format(value, spec)


def _shipped(exported: dict) -> str:
    """The retrained, exported model's test accuracy and epochs (blank when it was not exported)."""
    if "test_accuracy" not in exported:
        return ""
    epochs = exported.get("retrain_epochs")
    return f"{_num(exported['test_accuracy'], '.3f')}" + (f" ({epochs})" if epochs else "")


def _test_acc(t, exported: dict, cfg):
    """Test accuracy of a front model: data-free, the retrained model's on the real test split."""
    return exported.get(t.id, {}).get("test_accuracy") if cfg.data_free else t.test_accuracy


def _datafree_lines(runner: SearchRunner) -> list[str]:
    if runner.synth is None:
        return []
    m = runner.synth.manifest
    teacher = m.get("teacher", {})
    if frontend_is_pinned(runner.space):
        fe = f"front-end pinned to the teacher's `{m.get('frontend_token')}`; baselines on that front-end too"
    else:
        fe = (
            f"front-end genes searched: each candidate trains on the set rendered through its own front-end "
            f"(source-filter parameters and mixture recipe; the teacher's is `{m.get('frontend_token')}`)"
        )
    return [
        f"- **data-free search**: every candidate, baseline and retrained Pareto model trained only on "
        f"{m.get('n_examples')} features synthesised from teacher `{teacher.get('path')}` (sha256 "
        f"{str(teacher.get('sha256', ''))[:12]}; `{runner.synth.path}`) with distillation to its soft labels "
        f"(distill_alpha {runner.cfg.train.distill_alpha}); {fe}",
        f"- the real test split of `{runner.cfg.dataset}` was never seen by the search: only the retrained "
        f"Pareto models are evaluated on it ('test acc' of the front); val acc is agreement with the "
        f"synthesised validation split",
    ]


def _energy_error_note(cfg, board) -> str:
    """The validation behind the energy figures of the report (docs/benchmarks.md has the tables)."""
    uses_op_model = not (board.kernels == "tflm-reference" and board.emulated)  # as EmulatedModel decides
    if cfg.energy_source == "emulated" and uses_op_model:
        return expected_error_note(board)
    if cfg.energy_source == "predicted":
        return "the forest's held-out MAPE and interval coverage stored by `audio-nas predictor fit`"
    return "not validated for this source and board (see docs/benchmarks.md)"


def _memory_note(memory: dict, key: str) -> str:
    """The source line of the front's memory figures (the same for every trial of one board)."""
    notes = sorted({getattr(m, key) for m in memory.values()})
    return "; ".join(notes) if notes else "(no Pareto trials)"


def _add_csv_columns(path: Path, columns: list[str], values: dict[int, dict[str, str]]) -> None:
    """Append ``columns`` to pareto.csv, filled per trial id from ``values`` (blank where missing)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0] + columns)
        for row in rows[1:]:
            got = values.get(int(row[0]), {})
            w.writerow(row + [got.get(c, "") for c in columns])


def _cell(text: str) -> str:
    """A spec string inside a markdown table cell: its '|' separators must be escaped."""
    return text.replace("|", "\\|")


def _md_table_html(md: str) -> str:
    """A small self-contained HTML rendering of the report (tables, bullets, image, headings)."""
    out = [
        "<!doctype html><meta charset='utf-8'><title>audio-nas report</title>",
        "<style>body{font-family:sans-serif;max-width:1400px;margin:auto}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px}"
        "table{border-collapse:collapse}code{font-size:11px}</style>",
    ]
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [
                html.escape(c.strip().replace("\x00", "|")).replace("`", "")
                for c in line.replace("\\|", "\x00").strip("|").split("|")
            ]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            out.append(f"<img src='{line[line.index('(') + 1 : -1]}' style='max-width:100%'>")
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
    if in_table:
        out.append("</table>")
    return "\n".join(out)


def export_front(runner: SearchRunner, front) -> dict[int, dict]:
    """Retrain each Pareto model with the full recipe and export it to TFLM (in parallel, as baselines)."""
    if runner.cfg.evaluator != "train":
        return {}
    out: dict[int, dict] = {}
    payloads = {}
    recipe = {"train": to_dict(runner.cfg.train), "retrain": to_dict(runner.cfg.retrain)}
    for t in front:
        target = runner.run_dir / "pareto" / f"trial-{t.id:04d}"
        if (target / "summary.json").exists() and _retrained_as(target, recipe):
            out[t.id] = json.loads((target / "summary.json").read_text())
            record = _retrain_record(target)
            if record:  # the retrained model's test accuracy (data-free: on the real test split)
                out[t.id].update(test_accuracy=record["test_accuracy"], retrain_epochs=record["epochs"])
            elif (target / "real_test.json").exists():  # data-free, exported before retrain.json existed
                real = json.loads((target / "real_test.json").read_text())
                out[t.id]["test_accuracy"] = real["real_test_accuracy"]
            continue
        try:
            lower_model(build_model(ArchSpec.from_str(t.spec)))  # refuses unsupported ops before any training
        except ExportError as exc:
            log.warning("trial %d is not exported: %s", t.id, exc)
            out[t.id] = {"arena_bytes": f"not exported: {str(exc).split(';')[0]}"}
            continue
        payloads[f"trial {t.id}"] = {
            "trial_id": t.id,
            "spec": t.spec,
            "target": str(target),
            "dataset": runner.train_dataset,
            "real_test_dataset": runner.cfg.dataset if runner.cfg.data_free else None,
            "on_error": runner.cfg.on_error,
            "train": to_dict(runner.cfg.train),
            "retrain": to_dict(runner.cfg.retrain),
        }
    bar = Progress(
        "Pareto models: retrain + TFLM export",
        len(payloads),
        unit="model",
        logger=log,
        enabled=bool(payloads),
    )
    with bar:
        for key, res in _run_all(runner, retrain_and_export, payloads):
            out[payloads[key]["trial_id"]] = res
            shown = {"test_acc": _num(res["test_accuracy"], ".3f")} if "test_accuracy" in res else {}
            bar.update(1, **shown)
    return out


def retrain_and_export(payload: dict) -> dict:
    """Worker: retrain one Pareto model with the full recipe, save its checkpoint and export it to TFLM."""
    spec = ArchSpec.from_str(payload["spec"])
    target = Path(payload["target"])
    train_cfg = from_dict(TrainConfig, payload["train"])
    feats, teacher_logits, train_cfg = training_data(
        payload["dataset"], spec.frontend, train_cfg, payload["on_error"]
    )
    retrain = payload.get("retrain") or {}
    n_train = int(np.count_nonzero(feats.split == SPLITS.index("train")))
    cap = train_examples_cap(spec, train_cfg)
    epochs = retrain_epochs(
        spec, min(n_train, cap or n_train), train_cfg, retrain.get("max_epochs"), retrain.get("budget_macs")
    )
    t0 = time.perf_counter()
    # the search's recipe with more epochs (the learning-rate schedule follows the epoch count)
    res = train(spec, feats, dataclasses.replace(train_cfg, epochs=epochs), teacher_logits=teacher_logits)
    train_s = time.perf_counter() - t0
    save_checkpoint(
        target / "checkpoint",
        spec,
        res.model,
        {"val_accuracy": res.val_accuracy, "test_accuracy": res.test_accuracy},
        tuple(feats.class_names),
    )
    calib = np.asarray(feats.subset("train").x[:200])
    result = export_model(spec, res.model, calib, target)
    test_accuracy = res.test_accuracy
    if payload.get("real_test_dataset"):  # data-free: trained on synthesised data, tested on real data
        real = real_test_accuracy(
            res.model, spec, payload["real_test_dataset"], tuple(feats.class_names), payload["on_error"]
        )
        (target / "real_test.json").write_text(json.dumps(real))
        test_accuracy = real["real_test_accuracy"]
    record = {
        "recipe": {"train": payload["train"], "retrain": retrain},
        "epochs": epochs,
        "train_s": round(train_s, 1),
        "test_accuracy": test_accuracy,
    }
    (target / RETRAIN_FILE).write_text(json.dumps(record, indent=1))
    return {
        "arena_bytes": result.arena_bytes,
        "flash_bytes": result.flash_bytes,
        "test_accuracy": test_accuracy,
        "retrain_epochs": epochs,
    }


def _retrain_record(target: Path) -> dict:
    path = target / RETRAIN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _retrained_as(target: Path, recipe: dict) -> bool:
    """Whether the exported model in ``target`` was retrained with ``recipe`` (train + retrain config). A
    model exported before retrain.json existed counts as retrained with the search's recipe."""
    record = _retrain_record(target)
    if not record:
        return recipe["retrain"].get("max_epochs") is None
    return record.get("recipe") == json.loads(json.dumps(recipe))  # as stored: tuples become lists
