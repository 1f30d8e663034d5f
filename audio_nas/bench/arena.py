"""Arena benchmark: ``arch_costs(spec).arena_bytes`` (from the spec alone) against the TFLM host interpreter.

For presets, hand-written specs covering every block kind, front-end and stem, and specs sampled from the
default space, exports the int8 model with random weights (``export_random``), finds the smallest arena the
TFLM host interpreter accepts (``tflm_arena_bytes``, bisection in 16-byte steps) and compares it with the
spec-level figure for the host build (``pointer_bytes=8``). Also times the spec-level costs and states how far
the analytic activation peak and the Cortex-M figure are from the host arena.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from audio_nas.bench.report import markdown_table, write_section
from audio_nas.export import export_random, tflm_arena_bytes
from audio_nas.space import PRESETS, ArchSpec, MQASpec, arch_costs, resolve_arch, sample_spec
from audio_nas.space.tflm_arena import CORTEX_M_LAYOUT, HOST_LAYOUT, TflmLayout, tflm_arena

HAND_SPECS = (
    "fe:pcen_w30_h20_m40|stem:c2d_k3_s2_c16_relu|conv_k3_s2_c24_r2_relu6|head:c0_flatten|n12",
    "fe:logmel_w30_h20_m40|stem:c1d_k5_s2_c24_hswish|uib_a3_k5_e2_s1_c24_r2_hswish|uib_a0_k0_e2_s1_c32_r1_relu"
    "|mqa_h2_d8_kv2|head:c32_relu|n10",
    "fe:mfcc_w40_h20_m40_c10|stem:c2d_k3_s1_c8_relu|uib_a5_k0_e3_s2_c16_r1_relu|mqa_h1_d16_kv1|n12",
    "fe:pcen_w40_h30_m32|stem:c1d_k3_s1_c16_relu6|ds_k5_s2x1_c24_r2_relu|uib_a0_k3_e4_s1_c24_r1_relu6|head:c64_relu|n5",
)


def bench_specs(n_sampled: int, seed: int = 0) -> list[ArchSpec]:
    rng = np.random.default_rng(seed)
    specs = [resolve_arch(p) for p in PRESETS] + [ArchSpec.from_str(s) for s in HAND_SPECS]
    specs += [sample_spec(rng) for _ in range(n_sampled)]
    return specs


def _features(spec: ArchSpec) -> set[str]:
    f = {f"front-end {spec.frontend.kind}", f"stem {spec.stem.kind}", f"head {spec.head.pool}"}
    for b in spec.blocks:
        f.add("mqa" if isinstance(b, MQASpec) else b.to_str().split("_", 1)[0])
        if b.to_str().startswith("uib"):
            f.add(f"uib {b.variant}")
    return f


def _time_per_spec(specs: list[ArchSpec], fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for s in specs:
            fn(s)
        best = min(best, (time.perf_counter() - t) / len(specs))
    return best * 1e3


def measure(specs: list[ArchSpec]) -> tuple[list[tuple], float]:
    """(spec, TFLM host arena, host-layout costs, board-layout costs) per spec, and the seconds TFLM took."""
    rows, t_tflm = [], 0.0
    for spec in specs:
        host = arch_costs(spec, pointer_bytes=8)
        board = arch_costs(spec, pointer_bytes=4)
        model = export_random(spec)
        t = time.perf_counter()
        want = tflm_arena_bytes(model, upper=max(8 << 20, 2 * host.arena_bytes))
        t_tflm += time.perf_counter() - t
        rows.append((spec, want, host, board))
    return rows, t_tflm


QEMU_ARGS = ("-M", "mps2-an386", "-nographic", "-monitor", "none", "-icount", "shift=6,sleep=off")


def qemu_arena_used(elf: str | Path, model: bytes, timeout_s: float = 300.0) -> int:
    """``arena_used_bytes()`` of TFLM on the emulated Cortex-M4, from the op profiler image
    (firmware/tools/op_profiler, which prints ``arena_used N`` after AllocateTensors)."""
    with tempfile.TemporaryDirectory(prefix="arena-qemu-") as tmp:
        path, out = Path(tmp) / "model.tflite", Path(tmp) / "out.txt"
        path.write_bytes(model)
        cmd = ["qemu-system-arm", *QEMU_ARGS, "-semihosting-config", "enable=on,target=native"]
        cmd += ["-kernel", str(elf), "-append", f"{path} {out}"]
        subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        for line in out.read_text().splitlines() if out.exists() else []:
            if line.startswith("arena_used "):
                return int(line.split()[1])
    raise RuntimeError(f"{elf} printed no arena_used line for this model")


def _qemu_rows(elf: str, specs: list[ArchSpec], count: int) -> list[list[object]]:
    """Small specs (<= 1.5 M MACs: reference kernels are slow under QEMU) on the emulated Cortex-M4."""
    rows = []
    for spec in specs:
        if len(rows) == count:
            break
        if arch_costs(spec).macs > 1.5e6:
            continue
        used = qemu_arena_used(elf, export_random(spec))
        model = tflm_arena(spec, pointer_bytes=4)
        rows.append(
            [
                used,
                model.used_bytes,
                used - model.used_bytes,
                "`" + spec.to_str()[:70].replace("|", "\\|") + "…`",
            ]
        )
    return rows


def _qemu_md(elf: str | None, specs: list[ArchSpec], count: int) -> str:
    if not elf:
        return (
            "\n\nThe Cortex-M figure is not measured in this run: set `AUDIO_NAS_ARENA_ELF` to the op "
            "profiler image (firmware/tools/op_profiler) built against a reference-kernel TFLM tree to "
            "compare it with TFLM on the emulated Cortex-M4."
        )
    rows = _qemu_rows(elf, specs, count)
    exact = sum(1 for r in rows if r[2] == 0)
    return (
        "\n\nCortex-M4 (QEMU mps2-an386), TFLM built from the pinned source with reference kernels and "
        f"the firmware's flags (`{Path(elf).name}`, the op profiler image of firmware/tools/op_profiler): "
        "`arena_used_bytes()` after AllocateTensors against `tflm_arena(spec, pointer_bytes=4).used_bytes` "
        f"(head + tail), {len(rows)} specs of at most 1.5 M MACs: {exact} exact.\n\n"
        + markdown_table(["TFLM on Cortex-M4 B", "spec-level B", "difference", "spec"], rows)
    )


def _layout_rows() -> list[list[object]]:
    def fmt(v: object) -> str:
        return f"{v[0]} / {v[1]}" if isinstance(v, tuple) else str(v)

    out = []
    for f in dataclasses.fields(TflmLayout):
        if f.name in ("name", "builtin_params", "op_data", "allocator_objects"):
            continue
        out.append([f.name, fmt(getattr(HOST_LAYOUT, f.name)), fmt(getattr(CORTEX_M_LAYOUT, f.name))])
    out.append(
        [
            "allocator objects",
            " + ".join(fmt(v) for v in HOST_LAYOUT.allocator_objects),
            " + ".join(fmt(v) for v in CORTEX_M_LAYOUT.allocator_objects),
        ]
    )
    for key in ("builtin_params", "op_data"):
        h, m = getattr(HOST_LAYOUT, key), getattr(CORTEX_M_LAYOUT, key)
        for op in sorted(set(h) | set(m)):
            out.append([f"{key} {op}", fmt(h.get(op, "-")), fmt(m.get(op, "-"))])
    return out


def run_bench(quick: bool = False) -> None:
    specs = bench_specs(40 if quick else 300)
    rows, t_tflm = measure(specs)
    diffs = Counter(host.arena_bytes - want for _, want, host, _ in rows)
    coverage = Counter(f for spec, *_ in rows for f in _features(spec))
    n = len(rows)
    exact = sum(1 for _, want, host, _ in rows if host.arena_bytes == want)
    worst = max(abs(host.arena_bytes - want) / want for _, want, host, _ in rows)
    ms_costs = _time_per_spec(specs, arch_costs)
    ms_arena = _time_per_spec(specs, tflm_arena)
    peak_ratio = np.array([host.peak_ram_bytes / want for _, want, host, _ in rows])
    board_ratio = np.array([board.arena_bytes / want for _, want, _, board in rows])
    tails = np.array([tflm_arena(s, pointer_bytes=8).tail_bytes / want for s, want, _, _ in rows])
    summary = [
        ["specs (presets + hand-written + sampled from DEFAULT_SPACE)", n],
        ["`arena_bytes` (pointer_bytes=8) = TFLM host arena, exactly", f"{exact} ({100 * exact / n:.1f}%)"],
        ["largest relative error", f"{100 * worst:.2f}%"],
        ["`arch_costs(spec)` per spec (all costs, arena included)", f"{ms_costs:.2f} ms"],
        ["`tflm_arena(spec)` per spec", f"{ms_arena:.2f} ms"],
        [
            "TFLM host interpreter per spec (bisection over the arena size, export not counted)",
            f"{t_tflm / n:.2f} s",
        ],
        [
            "persistent tail / host arena (median, min-max)",
            f"{np.median(tails):.2f} ({tails.min():.2f}-{tails.max():.2f})",
        ],
        [
            "analytic `peak_ram_bytes` / host arena (median, min-max)",
            f"{np.median(peak_ratio):.2f} ({peak_ratio.min():.2f}-{peak_ratio.max():.2f})",
        ],
        [
            "Cortex-M `arena_bytes` (pointer_bytes=4) / host arena (median, min-max)",
            f"{np.median(board_ratio):.3f} ({board_ratio.min():.3f}-{board_ratio.max():.3f})",
        ],
    ]
    diff_rows = [[f"{d:+d}", c] for d, c in sorted(diffs.items())]
    cov_rows = [[k, v] for k, v in sorted(coverage.items())]
    qemu_md = _qemu_md(os.environ.get("AUDIO_NAS_ARENA_ELF"), specs, 10 if quick else 40)
    examples = [
        [name, want, host.arena_bytes, board.arena_bytes, host.peak_ram_bytes]
        for name, (spec, want, host, board) in zip(PRESETS, rows)
    ]
    body = (
        "Each spec is exported with random weights (`audio_nas.export.export_random`); the TFLM "
        "host interpreter (`tflite_micro` wheel, x86-64) gives the smallest arena it accepts "
        "(`tflm_arena_bytes`). `arch_costs(spec, pointer_bytes=8).arena_bytes` computes it from the "
        "spec alone (layer plan -> TFLite ops -> GreedyMemoryPlanner head + persistent tail, "
        "`audio_nas/space/tflm_arena.py`). The board figure (`pointer_bytes=4`, the default) uses the "
        "Cortex-M struct sizes of the same TFLM source compiled with `arm-none-eabi-g++ -mcpu=cortex-m4` "
        "(reference kernels).\n\n"
        + markdown_table(["", "value"], summary)
        + "\n\nspec-level minus TFLM (bytes), by number of specs:\n\n"
        + markdown_table(["difference", "specs"], diff_rows)
        + qemu_md
        + "\n\nPresets (bytes):\n\n"
        + markdown_table(
            ["preset", "TFLM host arena", "spec-level, host", "spec-level, Cortex-M", "analytic peak"],
            examples,
        )
        + "\n\nStruct sizes in the arena, bytes (size / alignment): x86-64 host wheel vs Cortex-M "
        "firmware build. Cortex-M: `sizeof`/`alignof` from `arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb "
        "-mfloat-abi=hard` with the firmware's defines (`TF_LITE_STATIC_MEMORY`; short enums, as "
        "arm-none-eabi defaults) on the pinned TFLM source; host: the same probe with x86-64 g++ and "
        "`USE_TFLM_COMPRESSION` (the wheel's build), whose sizes reproduce every host arena above once the "
        "wheel's allocator objects are given 16 bytes more than the source says.\n\n"
        + markdown_table(["struct", "host", "Cortex-M"], _layout_rows())
        + "\n\nCoverage (specs containing each):\n\n"
        + markdown_table(["feature", "specs"], cov_rows)
    )
    write_section("arena", "TFLM arena from the spec vs the TFLM interpreter", "audio-nas bench arena", body)
