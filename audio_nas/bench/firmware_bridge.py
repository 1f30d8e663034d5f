"""Firmware benchmark on the emulated board (QEMU mps2-an386): image size, serial round trip, upload rate,
front-end cost per frame, and, with TFLM_DIR set, inference on the real firmware against the per-op cycle
model.

Under ``-icount shift=6`` every retired instruction advances virtual time by 64 ns, so the 25 MHz timer gives
1.6 ticks per instruction: instructions = ticks / 1.6. That is an instruction count, not Cortex-M4 cycles (no
pipeline or memory model); comparing it with the cycle model checks the model's relative per-op costs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from audio_nas.bench.report import markdown_table, write_section

TICKS_PER_INSTRUCTION = 25e6 * 64e-9  # 25 MHz timer x 64 ns per instruction


def _size(elf: Path) -> tuple[int, int, int]:
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return text, data, bss


def run_bench(quick: bool = False) -> None:
    from audio_nas.features.config import FrontEndConfig
    from audio_nas.features.fixed_point import make_tables
    from audio_nas.firmware_bridge.build import build_firmware, tflm_build_dir
    from audio_nas.firmware_bridge.client import DeviceClient
    from audio_nas.firmware_bridge.qemu import QemuBoard

    root = Path(__file__).resolve().parents[2]
    tflm_dir, cmsis_dir = os.environ.get("TFLM_DIR"), os.environ.get("TFLM_CMSIS_DIR")
    images = [("without TFLM", build_firmware(tflm_build_dir(root, None)))]
    if tflm_dir:
        images.append(
            (
                "with TFLM (reference kernels, all exporter ops)",
                build_firmware(tflm_build_dir(root, tflm_dir), tflm_dir=tflm_dir),
            )
        )
    if cmsis_dir:
        images.append(
            (
                "with TFLM (CMSIS-NN kernels, all exporter ops)",
                build_firmware(tflm_build_dir(root, cmsis_dir), tflm_dir=cmsis_dir),
            )
        )
    size_rows = [[name, *_size(elf)] for name, elf in images]
    body = [
        "Image sizes (`arm-none-eabi-size`; bss holds the 1 MB upload buffer, 64 KB input and, with TFLM, "
        "the 1 MB arena):",
        "",
        markdown_table(["image", "text B", "data B", "bss B"], size_rows),
        "",
    ]

    elf = images[0][1]
    with (
        QemuBoard(elf) as board,
        DeviceClient(board.url, connect_timeout_s=20, command_timeout_s=30, infer_timeout_s=600) as c,
    ):
        rtt = []
        for _ in range(20 if quick else 100):
            t = time.perf_counter()
            c.checked("ping")
            rtt.append((time.perf_counter() - t) * 1e3)
        blob = (
            np.random.default_rng(0).integers(0, 256, (50 if quick else 200) * 1024, dtype=np.uint8).tobytes()
        )
        t = time.perf_counter()
        c.upload_model(blob)
        upload_kib_s = len(blob) / 1024 / (time.perf_counter() - t)
        t_fe = make_tables(FrontEndConfig())
        audio = (np.random.default_rng(1).normal(0, 2000, t_fe.window_samples)).astype("<i2")
        c.load_input(audio.tobytes())
        fe_ticks = [int(c.checked("frontend").value("m-cycles-")) for _ in range(5)]
        body += [
            markdown_table(
                ["measure", "value"],
                [
                    ["ping round trip, median (host wall clock)", f"{statistics.median(rtt):.2f} ms"],
                    [
                        f"model upload, {len(blob) // 1024} KiB in 256-byte chunks with CRC (QEMU's UART "
                        "model takes one byte per main-loop turn; 512-byte chunks gave the same rate)",
                        f"{upload_kib_s:.1f} KiB/s of model "
                        f"({2 * upload_kib_s:.1f} KiB/s of hex on the wire)",
                    ],
                    [
                        "fixed-point log-mel frame (30 ms window, 512-point FFT, 40 mels)",
                        f"{statistics.median(fe_ticks) / TICKS_PER_INSTRUCTION:,.0f} instructions",
                    ],
                ],
            ),
            "",
        ]
    tflm_images = {name.split("(")[1].split(" kernels")[0]: elf for name, elf in images[1:]}
    if tflm_images:
        body += _inference_rows(tflm_images, quick)
    if "CMSIS-NN" in tflm_images:
        body += _cmsis_campaign(tflm_images["CMSIS-NN"], quick)
    else:
        body += [
            "Inference rows need TFLM: `TFLM_DIR=<TFLM tree> audio-nas bench firmware_bridge` "
            "(firmware/README.md says how to make the tree).",
            "",
        ]
    write_section(
        "firmware",
        "Firmware on the emulated Cortex-M4 (QEMU mps2-an386)",
        "TFLM_DIR=<TFLM tree> [TFLM_CMSIS_DIR=<CMSIS-NN tree>] audio-nas bench firmware_bridge"
        + (" --quick" if quick else ""),
        "\n".join(body),
    )


def _instructions(elf: Path, models: list[tuple[bytes, np.ndarray]]) -> list[tuple[int, float]]:
    """(arena bytes, instructions retired) of one inference of each model on the firmware image ``elf``."""
    from audio_nas.firmware_bridge.client import DeviceClient
    from audio_nas.firmware_bridge.qemu import QemuBoard

    out = []
    with (
        QemuBoard(elf) as board,
        DeviceClient(board.url, connect_timeout_s=20, command_timeout_s=30, infer_timeout_s=600) as c,
    ):
        for tflite, x in models:
            c.upload_model(tflite)
            arena = c.activate()
            c.load_input(np.asarray(x, np.int8).tobytes())
            c.infer(1, 1)
            out.append((arena, int(c.stats().value("m-cycles-last-")) / TICKS_PER_INSTRUCTION))
    return out


def _inference_rows(images: dict[str, Path], quick: bool) -> list[str]:
    from audio_nas.energy import load_board
    from audio_nas.energy.cycle_model import model_cycles
    from audio_nas.energy.op_records import ops_from_tflite
    from audio_nas.export import export_random_with_input as _export_random_weights
    from audio_nas.export.api import parse_tflite_ops
    from audio_nas.firmware_bridge.campaign import campaign_specs
    from audio_nas.space import arch_costs, resolve_arch

    board = load_board("nucleo-l4r5zi")
    specs = [("DS-CNN", resolve_arch("ds_cnn_s")), ("MobileNetV2-0.35", resolve_arch("mobilenet_v2_x0.35"))]
    specs += [(f"sampled {i}", s) for i, s in enumerate(campaign_specs(1 if quick else 4, 0, board))]
    models = [_export_random_weights(spec, 0) for _, spec in specs]
    measured = {kernels: _instructions(elf, models) for kernels, elf in images.items()}
    # each kernel build next to the cycle-model key meant for it (energy/cycle_model.py says what each key is)
    model_key = {"reference": "tflm-reference", "CMSIS-NN": "cmsis-nn"}
    rows, ratios = [], {k: [] for k in measured}
    for i, ((name, spec), (tflite, _)) in enumerate(zip(specs, models)):
        ops = ops_from_tflite(parse_tflite_ops(tflite))
        macs = arch_costs(spec).macs
        row = [name, f"{macs / 1e6:.2f}", f"{next(iter(measured.values()))[i][0]:,}"]
        for k, m in measured.items():
            model, _ = model_cycles(ops, model_key[k], board.core)
            ratios[k].append(model / m[i][1])
            row += [
                f"{m[i][1] / 1e6:.2f}",
                f"{m[i][1] / macs:.1f}",
                f"{model / 1e6:.2f}",
                f"{model / m[i][1]:.2f}",
            ]
        rows.append(row)
    spreads = {k: (max(r) / min(r) - 1) * 100 for k, r in ratios.items()}
    header = ["model", "MMACs", "arena B (TFLM)"]
    for k in measured:
        header += [f"M instr, {k}", f"instr/MAC, {k}", f"M cycles, model `{model_key[k]}`", "model / instr"]
    text = [
        "Inference on the firmware (random int8 weights): instructions retired on the emulated board for "
        "each TFLM kernel build, next to the Nucleo-L4R5ZI cycle model (`energy/cycle_model.py`) under the "
        "key calibrated for that kind of kernel. The ratio is the cycles per instruction the model implies; "
        "its spread across architectures says how well the model's relative per-op costs match the real "
        "kernels' instruction counts.",
        "",
        markdown_table(header, rows),
        "",
        "Spread of the ratio across these {} models: {} (max/min - 1).".format(
            len(rows), ", ".join(f"{k} {v:.0f}%" for k, v in spreads.items())
        ),
        "",
        "The `tflm-reference` key is calibrated on MLPerf Tiny's reference result (181.9 ms), which was "
        'built with TAGS="cmsis-nn" '
        "(mlcommons/tiny, v0.1/reference_submissions/keyword_spotting/setup_example.sh): TFLM v2.3.1 with "
        "the 2020 CMSIS-NN, not TFLM's portable reference kernels, which compute 4-D offsets for every MAC. "
        "The `cmsis-nn` key is calibrated on X-CUBE-AI's 63.0 ms.",
    ]
    if "CMSIS-NN" in measured and "reference" in measured:
        text.append(
            "Today's CMSIS-NN retires {:.1f}x fewer instructions than the reference kernels on DS-CNN; at "
            "the Cortex-M4's 1.0-1.5 cycles per instruction that is {:.0f}-{:.0f} ms at 120 MHz, close to "
            "X-CUBE-AI's published 63.0 ms, so the `cmsis-nn` key is the one that fits boards running "
            "this firmware built with CMSIS-NN.".format(
                measured["reference"][0][1] / measured["CMSIS-NN"][0][1],
                measured["CMSIS-NN"][0][1] / 120e3,
                1.5 * measured["CMSIS-NN"][0][1] / 120e3,
            )
        )
    elif "CMSIS-NN" not in measured:
        text.append(
            "Set TFLM_CMSIS_DIR to a tree generated with OPTIMIZED_KERNEL_DIR=cmsis_nn (firmware/README.md) "
            "to measure the CMSIS-NN build too."
        )
    return text + [""]


def _cmsis_campaign(elf: Path, quick: bool) -> list[str]:
    """Sampled architectures on the CMSIS-NN image: how well do the cycle model, MACs and the random forest
    predict the instructions the real kernels retire?"""
    from audio_nas.energy import load_board
    from audio_nas.energy.cycle_model import model_cycles
    from audio_nas.energy.op_records import ops_from_tflite
    from audio_nas.energy.predictor import cross_validate_specs, mape
    from audio_nas.export import export_random_with_input as _export_random_weights
    from audio_nas.export.api import parse_tflite_ops
    from audio_nas.firmware_bridge.campaign import campaign_specs
    from audio_nas.space import arch_costs

    board = load_board("mps2-an386-cmsis")
    # feasible on a real 640 KB board, so every arena fits the firmware's 1 MB
    specs = campaign_specs(15 if quick else 60, 1, load_board("nucleo-l4r5zi"))
    models = [_export_random_weights(spec, 0) for spec in specs]
    t0 = time.perf_counter()
    instr = np.array([i for _, i in _instructions(elf, models)])
    took_s = time.perf_counter() - t0
    cyc = np.array(
        [model_cycles(ops_from_tflite(parse_tflite_ops(t)), "cmsis-nn", board.core)[0] for t, _ in models]
    )
    macs = np.array([arch_costs(s).macs for s in specs], float)

    def one_scale(x):  # the best single factor (geometric mean), so only relative costs are judged
        return mape(instr, x * np.exp(np.mean(np.log(instr / x))))

    cv = cross_validate_specs(specs, instr, board)
    per_mac = instr / macs
    return [
        f"Campaign on the CMSIS-NN image: {len(specs)} sampled architectures (feasible on the board, random "
        f"int8 weights), {took_s:.0f} s on QEMU ({took_s / len(specs):.1f} s each, upload included). "
        f"Instructions per MAC range {np.percentile(per_mac, 5):.1f}-{np.percentile(per_mac, 95):.1f} "
        "(5th-95th percentile), which is why MACs alone predict cost poorly.",
        "",
        markdown_table(
            ["predictor of CMSIS-NN instructions", "MAPE"],
            [
                ["MACs x one fitted factor", f"{one_scale(macs):.1f}%"],
                ["cycle model `cmsis-nn` x one fitted factor", f"{one_scale(cyc):.1f}%"],
                ["random forest, 5-fold (features from the ArchSpec)", f"{cv['rf_mape']:.1f}%"],
            ],
        ),
        "",
        "The same campaign through the CLI (stored, resumable, then `predictor eval`): `audio-nas device "
        "qemu --elf build/fw-cmsis/firmware.elf` and `audio-nas measure --board mps2-an386-cmsis --backend "
        "device --port socket://127.0.0.1:PORT --count 60`.",
        "",
    ]
