"""Per-op instruction counts on the emulated Cortex-M4: the campaign behind audio_nas/energy/op_model.py.

For each architecture (the presets, then board-sized samples of the default space, deterministic in the
seed): export an int8 .tflite with random weights (``export.export_random``), run it in the op profiler
image (``firmware/tools/op_profiler``: TFLM + CMSIS-NN with a MicroProfilerInterface around every op's
Invoke) on QEMU mps2-an386 with ``-icount shift=6,sleep=off`` and semihosting, and keep its per-op and
whole-Invoke timer ticks (instructions = ticks x 40/64). Every result is appended to ``results.jsonl`` in
the work directory as it arrives, so an interrupted campaign resumes where it stopped; ``--write`` turns the
results into the committed table (``datasets/op-counts/cmsis-nn-m4-{ops,models}.csv.gz`` + manifest).

    python -m audio_nas.firmware_bridge.op_profile --tflm-dir /path/to/tree-cmsis --count 300 \
        --misaligned 60 --tflm-revision REV --cmsis-nn-revision REV --write
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from audio_nas.energy.boards import load_board
from audio_nas.energy.op_model import (
    INT4_TABLE_NAME,
    MODEL_COLUMNS,
    OP_COLUMNS,
    TABLE_NAME,
    op_row,
    ops_from_tflite,
    table_paths,
    write_csv_gz,
)
from audio_nas.errors import DeviceError
from audio_nas.export import export_random
from audio_nas.firmware_bridge.build import APT_HINT, FIRMWARE_DIR
from audio_nas.firmware_bridge.campaign import campaign_specs
from audio_nas.paths import runs_dir
from audio_nas.space import PRESETS, ArchSpec, SearchSpace, arch_costs, sample_spec

PROFILER_DIR = FIRMWARE_DIR / "tools" / "op_profiler"
QEMU_ARGS = ("-M", "mps2-an386", "-nographic", "-monitor", "none", "-icount", "shift=6,sleep=off")
# the profiler image holds the model in a 1 MiB buffer and runs it in a 1.5 MiB arena
MAX_MODEL_BYTES = 1024 * 1024


def build_profiler(tflm_dir: str | Path, build_dir: str | Path, quiet: bool = True) -> Path:
    """Configure and build the op profiler image against a TFLM tree; returns the ELF path."""
    tools = [t for t in ("cmake", "arm-none-eabi-g++") if shutil.which(t) is None]
    if tools:
        raise DeviceError(f"cannot build the op profiler: {', '.join(tools)} not found ({APT_HINT})")
    if not (Path(tflm_dir) / "tensorflow/lite/micro/micro_interpreter.h").exists():
        raise DeviceError(f"{tflm_dir} is not a TFLM tree (firmware/README.md says how to make one)")
    build_dir = Path(build_dir)
    cfg = [
        "cmake",
        "-S",
        str(PROFILER_DIR),
        "-B",
        str(build_dir),
        f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE_DIR / 'cmake/arm-none-eabi.cmake'}",
        f"-DTFLM_DIR={Path(tflm_dir).resolve()}",
        f"-DAUDIO_NAS_PYTHON={sys.executable}",
    ]
    if shutil.which("ninja") and not (build_dir / "Makefile").exists():
        cfg += ["-G", "Ninja"]
    for cmd, what in ((cfg, "configure"), (["cmake", "--build", str(build_dir), "-j2"], "build")):
        out = subprocess.run(cmd, capture_output=quiet, text=True)
        if out.returncode != 0:
            raise DeviceError(
                f"op profiler {what} failed:\n{((out.stdout or '') + (out.stderr or ''))[-3000:]}"
            )
    return build_dir / "op_profiler.elf"


def parse_profile(text: str) -> dict:
    """The profiler's output: header fields, whole-Invoke ticks and one (index, tag, ticks) per op."""
    res: dict = {"ops": []}
    lines = text.splitlines()
    if not lines or lines[0] != "op_profiler 1" or lines[-1] != "end":
        raise DeviceError(f"op profiler output is incomplete: {text[-300:]!r}")
    for line in lines[1:-1]:
        key, *vals = line.split()
        if key == "op":
            res["ops"].append((int(vals[0]), vals[1], int(vals[2])))
        elif key == "invoke_ticks":
            res["invoke_ticks"], res["invoke_ticks_repeat"] = int(vals[0]), int(vals[1])
        elif key in ("kernels", "tflm"):
            res[key] = vals[0]
        elif key == "ops":
            res["n_ops"] = int(vals[0])
        else:
            res[key] = int(vals[0])
    if len(res["ops"]) != res["n_ops"]:
        raise DeviceError("op profiler output lost op lines")
    return res


def run_profiler(elf: str | Path, tflite: bytes, timeout_s: float = 120.0) -> dict:
    """One model through the op profiler on QEMU; returns ``parse_profile``'s dict."""
    if shutil.which("qemu-system-arm") is None:
        raise DeviceError("qemu-system-arm not found: apt-get install qemu-system-arm")
    if len(tflite) > MAX_MODEL_BYTES:
        raise DeviceError(f"model of {len(tflite)} B is over the profiler's {MAX_MODEL_BYTES} B buffer")
    with tempfile.TemporaryDirectory(prefix="op-profile-") as tmp:
        model, out = Path(tmp) / "model.tflite", Path(tmp) / "out.txt"
        model.write_bytes(tflite)
        cmd = [
            "qemu-system-arm",
            *QEMU_ARGS,
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(elf),
            "-append",
            f"{model} {out}",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"op profiler did not finish within {timeout_s:.0f} s") from exc
        if proc.returncode != 0 or not out.exists():
            raise DeviceError(
                f"op profiler failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-1000:]}"
            )
        return parse_profile(out.read_text())


def misaligned(spec: ArchSpec, rng: np.random.Generator) -> ArchSpec:
    """``spec`` with every stem/block/head channel count moved off a multiple of 4 (+1..+3): the default space
    only has multiples of 4, but CMSIS-NN's tails for other counts are part of what the model must learn."""

    def bump(c: int) -> int:
        return c + int(rng.integers(1, 4)) if c else c

    blocks = tuple(
        dataclasses.replace(b, channels=bump(b.channels)) if hasattr(b, "channels") else b
        for b in spec.blocks
    )
    return dataclasses.replace(
        spec,
        stem=dataclasses.replace(spec.stem, channels=bump(spec.stem.channels)),
        blocks=blocks,
        head=dataclasses.replace(spec.head, channels=bump(spec.head.channels)),
    )


def _first_of_each_spec(items: list[tuple[str, ArchSpec]]) -> list[tuple[str, ArchSpec]]:
    """(source, spec) pairs without repeated specs, the first source kept."""
    seen, out = set(), []
    for src, s in items:
        if s.spec_hash not in seen:
            seen.add(s.spec_hash)
            out.append((src, s))
    return out


def campaign_list(count: int, seed: int, n_misaligned: int = 0) -> list[tuple[str, ArchSpec]]:
    """(source, spec): the presets, ``count`` board-sized samples of the default space (fit in the
    Nucleo-L4R5ZI's SRAM), then ``n_misaligned`` more samples with channel counts off multiples of 4."""
    board = load_board("nucleo-l4r5zi")
    items = [(name, ArchSpec.from_str(text)) for name, text in PRESETS.items()]
    items += [("sampled", s) for s in campaign_specs(count, seed, board)]
    rng = np.random.default_rng(seed + 1)
    items += [("misaligned", misaligned(s, rng)) for s in campaign_specs(n_misaligned, seed + 1, board)]
    return _first_of_each_spec(items)


def all_w4(spec: ArchSpec) -> ArchSpec:
    """``spec`` with every block and the head at int4 weights (the stem stays int8, as the grammar has it)."""
    return dataclasses.replace(
        spec,
        blocks=tuple(dataclasses.replace(b, weight_bits=4) for b in spec.blocks),
        head=dataclasses.replace(spec.head, weight_bits=4),
    )


def conv_block_specs(n: int, rng: np.random.Generator) -> list[ArchSpec]:
    """``n`` small networks of plain ``conv`` blocks with int4 weights: the sampled space has no conv blocks
    (only the stem, which stays int8, is a full conv), so arm_convolve_s4 and arm_convolve_1x1_s4 (strided)
    are measured on these. Kernels 1-5 (square or not), strides 1-2, channels on and off multiples of 4."""
    out = []
    for _ in range(n):
        blocks = []
        for _ in range(int(rng.integers(1, 4))):
            kh, kw = (int(rng.choice((1, 3, 5))), int(rng.choice((1, 3, 5))))
            sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
            if rng.random() < 0.3:  # a strided 1x1 (arm_convolve_1x1_s4)
                kh, kw, sh = 1, 1, 2
            c = int(rng.choice((8, 12, 16, 24, 32, 48))) + int(rng.choice((0, 0, 1, 2, 3)))
            k = f"{kh}" if kh == kw else f"{kh}x{kw}"
            st = f"{sh}" if sh == sw else f"{sh}x{sw}"
            blocks.append(f"conv_k{k}_s{st}_c{c}_r1_relu_w4")
        stem = int(rng.choice((8, 16, 24)))
        out.append(
            ArchSpec.from_str(
                f"fe:mfcc_w40_h20_m40_c10|stem:c2d_k3_s2_c{stem}_relu|{'|'.join(blocks)}|head:c0|n12"
            )
        )
    return out


def mixed_campaign_list(
    count: int, seed: int, n_misaligned: int = 0, max_macs: int = 8_000_000, n_conv: int = 0
) -> list[tuple[str, ArchSpec]]:
    """(source, spec) for the int4 campaign: the presets with every block and head at int4, ``count``
    board-sized samples of the mixed-precision space (``weight_bits_choices=(4, 8)``: each block and the head
    draws 4 or 8) of at most ``max_macs`` MACs, ``n_misaligned`` more with channels off multiples of 4 (only
    architectures with at least one int4 layer are kept), and ``n_conv`` networks of int4 conv blocks."""
    board = load_board("nucleo-l4r5zi")
    space = SearchSpace(weight_bits_choices=(4, 8))

    def draw(n: int, rng: np.random.Generator) -> list[ArchSpec]:
        out: list[ArchSpec] = []
        while len(out) < n:
            s = sample_spec(rng, space)
            c = arch_costs(s)
            has_w4 = any(layer.weight_bits == 4 for layer in c.layers)
            if has_w4 and c.macs <= max_macs and c.peak_ram_bytes + c.frontend_ram_bytes <= board.sram_bytes:
                out.append(s)
        return out

    items = [(f"{name}_w4", all_w4(ArchSpec.from_str(text))) for name, text in PRESETS.items()]
    items += [("sampled_w4", s) for s in draw(count, np.random.default_rng(seed))]
    rng = np.random.default_rng(seed + 1)
    extra = draw(n_misaligned, np.random.default_rng(seed + 2))
    items += [("misaligned_w4", misaligned(s, rng)) for s in extra]
    items += [("conv_w4", s) for s in conv_block_specs(n_conv, np.random.default_rng(seed + 3))]
    return _first_of_each_spec(items)


def profile_campaign(
    elf: str | Path,
    work_dir: str | Path,
    count: int,
    seed: int = 0,
    n_misaligned: int = 0,
    items: list[tuple[str, ArchSpec]] | None = None,
) -> Path:
    """Profile every architecture of the campaign not yet in ``work_dir/results.jsonl``; one line each."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    results = work_dir / "results.jsonl"
    done = set()
    if results.exists():
        done = {json.loads(line)["arch"] for line in results.read_text().splitlines() if line.strip()}
    if items is None:
        items = campaign_list(count, seed, n_misaligned)
    todo = [(src, s) for src, s in items if s.spec_hash not in done]
    total = len(done) + len(todo)
    print(f"op profile: {len(done)} of {total} architectures already measured; {len(todo)} to go", flush=True)
    t_start = time.monotonic()
    with results.open("a") as f:
        for i, (src, spec) in enumerate(todo, 1):
            t0 = time.monotonic()
            tflite = export_random(spec, seed=0)
            if len(tflite) > MAX_MODEL_BYTES:
                print(
                    f"[{len(done) + i}/{total}] {spec.spec_hash} skipped: {len(tflite)} B model", flush=True
                )
                continue
            ops = ops_from_tflite(tflite)
            prof = run_profiler(elf, tflite)
            if len(prof["ops"]) != len(ops):
                raise DeviceError(
                    f"{spec.spec_hash}: profiler saw {len(prof['ops'])} ops, the model has {len(ops)}"
                )
            for (idx, tag, _), op in zip(prof["ops"], ops, strict=True):
                if tag != op.op:
                    raise DeviceError(
                        f"{spec.spec_hash}: op {idx} is {tag} on the board, {op.op} in the file"
                    )
            rec = {
                "arch": spec.spec_hash,
                "source": src,
                "spec": spec.to_str(),
                "model_bytes": len(tflite),
                "profile": prof,
                "op_rows": [
                    op_row(spec.spec_hash, idx, op, tag, ticks)
                    for (idx, tag, ticks), op in zip(prof["ops"], ops, strict=True)
                ],
            }
            f.write(json.dumps(rec) + "\n")
            f.flush()
            instr = prof["invoke_ticks"] * 40 / 64
            print(
                f"[{len(done) + i}/{total}] {spec.spec_hash} {src}: {len(ops)} ops, "
                f"{instr / 1e6:.3f} M instr "
                f"({time.monotonic() - t0:.1f} s; {time.monotonic() - t_start:.0f} s so far)",
                flush=True,
            )
    return results


def _tool_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "unknown"


def write_table(
    results: str | Path, out_dir: str | Path | None, manifest_extra: dict, name: str = TABLE_NAME
) -> list[Path]:
    """results.jsonl -> the committed table: ops and models CSVs (gzip, deterministic) and the manifest."""
    recs = [json.loads(line) for line in Path(results).read_text().splitlines() if line.strip()]
    recs.sort(key=lambda r: (r["source"].startswith("sampled"), r["arch"]))
    ops_path, models_path, manifest_path = table_paths(out_dir, name)
    write_csv_gz(ops_path, OP_COLUMNS, (row for r in recs for row in r["op_rows"]))
    write_csv_gz(
        models_path,
        MODEL_COLUMNS,
        (
            {
                "arch": r["arch"],
                "source": r["source"],
                "spec": r["spec"],
                "n_ops": len(r["op_rows"]),
                "invoke_ticks": r["profile"]["invoke_ticks"],
                "invoke_ticks_repeat": r["profile"]["invoke_ticks_repeat"],
                "profiled_ticks": r["profile"]["profiled_invoke_ticks"],
                "empty_event_ticks": r["profile"]["empty_event_ticks"],
                "arena_used": r["profile"]["arena_used"],
                "model_bytes": r["model_bytes"],
            }
            for r in recs
        ),
    )
    manifest = {
        "what": "retired instructions per op (TFLM MicroProfiler Begin/EndEvent around each op's Invoke) "
        "and per "
        "whole Invoke of int8-activation models (int8 weights, or int4 packed weights in ``_w4`` layers) "
        "with random weights, TFLM + CMSIS-NN on QEMU mps2-an386 (Cortex-M4)",
        "units": "CMSDK timer ticks at 25 MHz under -icount shift=6,sleep=off: instructions = ticks x 40/64; "
        "per-op ticks include one empty Begin/EndEvent pair (empty_event_ticks), subtract it",
        "archs": len(recs),
        "ops": sum(len(r["op_rows"]) for r in recs),
        "qemu": _tool_version(["qemu-system-arm", "--version"]),
        "qemu_args": " ".join(QEMU_ARGS) + " -semihosting-config enable=on,target=native",
        "compiler": _tool_version(["arm-none-eabi-gcc", "--version"]),
        "compiler_flags": "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2 "
        "(firmware/cmake/tflm.cmake)",
        "host": f"{platform.node()} {platform.machine()} {platform.system()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **manifest_extra,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return [ops_path, models_path, manifest_path]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m audio_nas.firmware_bridge.op_profile", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--tflm-dir", required=True, help="a TFLM tree made with OPTIMIZED_KERNEL_DIR=cmsis_nn")
    ap.add_argument(
        "--build-dir", default=None, help="where the profiler image is built (default runs/op-profile/build)"
    )
    ap.add_argument("--work-dir", default=None, help="results.jsonl lives here (default runs/op-profile)")
    ap.add_argument("--count", type=int, default=200, help="sampled architectures besides the presets")
    ap.add_argument("--misaligned", type=int, default=0, help="samples with channels off multiples of 4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--weight-bits",
        choices=("8", "4,8"),
        default="8",
        help="8: the int8 campaign (table cmsis-nn-m4); 4,8: presets at int4 and mixed-precision samples "
        "with at least one int4 layer (table cmsis-nn-m4-int4)",
    )
    ap.add_argument("--max-macs", type=int, default=8_000_000, help="largest sample of the int4 campaign")
    ap.add_argument("--conv", type=int, default=0, help="int4 campaign: networks of int4 conv blocks")
    ap.add_argument("--write", action="store_true", help="write the table to datasets/op-counts/ afterwards")
    ap.add_argument("--out-dir", default=None, help="table directory (default datasets/op-counts)")
    ap.add_argument("--tflm-revision", default=None, help="recorded in the manifest")
    ap.add_argument("--cmsis-nn-revision", default=None, help="recorded in the manifest")
    ap.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more facts for the manifest (e.g. how the TFLM tree was made); repeatable",
    )
    args = ap.parse_args(argv)
    work = Path(args.work_dir) if args.work_dir else runs_dir() / "op-profile"
    elf = build_profiler(args.tflm_dir, args.build_dir or work / "build")
    mixed = args.weight_bits == "4,8"
    items = (
        mixed_campaign_list(args.count, args.seed, args.misaligned, args.max_macs, args.conv)
        if mixed
        else None
    )
    results = profile_campaign(elf, work, args.count, args.seed, args.misaligned, items=items)
    if args.write:
        cmd = "python -m audio_nas.firmware_bridge.op_profile " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        for p in write_table(
            results,
            args.out_dir,
            {
                "tflm_revision": args.tflm_revision,
                "cmsis_nn_revision": args.cmsis_nn_revision,
                "command": cmd,
                "count": args.count,
                "misaligned": args.misaligned,
                **dict(n.split("=", 1) for n in args.note),
                "seed": args.seed,
                "weight_bits": args.weight_bits,
                **({"max_macs": args.max_macs, "conv": args.conv} if mixed else {}),
            },
            name=INT4_TABLE_NAME if mixed else TABLE_NAME,
        ):
            print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
