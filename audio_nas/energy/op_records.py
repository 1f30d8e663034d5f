"""TFLite ops (as ``export.parse_tflite_ops`` reads them from a flatbuffer) in the fields the energy
models read."""

from __future__ import annotations

from dataclasses import dataclass

from audio_nas.errors import EnergyModelError

TFLITE_TO_OP = {
    "CONV_2D": "conv2d",
    "DEPTHWISE_CONV_2D": "depthwise_conv2d",
    "FULLY_CONNECTED": "fully_connected",
    "ADD": "add",
    "AVERAGE_POOL_2D": "mean",
    "MEAN": "mean",
    "RESHAPE": "reshape",
    "HARD_SWISH": "hard_swish",
    "SOFTMAX": "softmax",
    "BATCH_MATMUL": "batch_matmul",
}


@dataclass(frozen=True)
class OpRecord:
    """A parsed TFLite op in the fields the cycle model reads."""

    name: str
    op: str
    in_shape: tuple
    out_shape: tuple
    kernel_hw: tuple = (1, 1)
    macs: int = 0


def ops_from_tflite(records: list[dict]) -> list[OpRecord]:
    out = []
    for i, r in enumerate(records):
        if r["op"] not in TFLITE_TO_OP:
            raise EnergyModelError(f"op {r['op']} has no cycle model; ops: {', '.join(TFLITE_TO_OP)}")
        out.append(
            OpRecord(
                f"op{i}",
                TFLITE_TO_OP[r["op"]],
                tuple(r["inputs"][0]),
                tuple(r["outputs"][0]),
                tuple(r.get("kernel", (1, 1))),
                int(r.get("macs", 0)),
            )
        )
    return out
