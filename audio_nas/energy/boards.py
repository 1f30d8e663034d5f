"""Board profiles: one YAML file per board in audio_nas/energy/boards/ (or a path), and a model's RAM
and flash on a board (``board_memory``).

A board's memory for one model = the model's share + the firmware's share:
  RAM   model:    TFLM's tensor arena for the Cortex-M build (``arch_costs(spec).arena_bytes``: the
                  GreedyMemoryPlanner head, which holds the input and output tensors, + the persistent tail)
                  + the input staging buffer (the firmware's ``g_input`` holds the int8 input before it is
                  copied into the arena; the scores are read from the arena's output tensor, no copy)
                  + the front-end's working memory (``frontend_cost(spec.frontend).ram_bytes``: window, FFT
                  scratch 8 x n_fft, mel accumulators, the feature window)
        firmware: statics (.data + .bss without the model/input/arena buffers) + the stack reserve + the
                  platform's RAM (Arduino core / newlib heap) + TFLM's own runtime RAM
  flash model:    the int8 flatbuffer (``arch_costs(spec).flash_bytes``) + the front-end's tables
                  (2 x window + 2 x n_fft + 4 x n_mels x (n_fft/2 + 1) + 512 bytes)
        firmware: the image's code without TFLM + TFLM's runtime code
The firmware figures come from the board profile (``firmware_*``/``*_reserve_bytes``/``tflm_runtime_*`` keys,
measured by firmware/boards/measure_memory.sh; ``tflm_runtime_*`` are a published estimate, not measured). A
profile without them gets the model's share only, and ``BoardMemory.firmware_known`` is False (logged once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from audio_nas.config import from_dict
from audio_nas.errors import ConfigError, EnergyModelError
from audio_nas.features.cost import frontend_cost
from audio_nas.space import arch_costs

log = logging.getLogger(__name__)

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
CORES = ("cortex-m4f", "cortex-m0plus", "cortex-m33", "cortex-m7")
KERNELS = ("tflm-reference", "cmsis-nn")


@dataclass(frozen=True, kw_only=True)
class BoardProfile:
    name: str
    core: str
    clock_hz: int
    sram_bytes: int
    flash_bytes: int
    active_power_mw: float
    sleep_power_mw: float
    kernels: str
    sources: tuple[str, ...]
    emulated: bool = False
    # the firmware's own memory (firmware/boards/board_memory.yaml explains each; None = not in this profile)
    firmware_code_bytes: int | None = None
    firmware_static_ram_bytes: int | None = None
    stack_reserve_bytes: int | None = None
    core_ram_reserve_bytes: int | None = None
    upload_buffer_bytes: int | None = None
    arena_buffer_bytes: int | None = None
    input_buffer_bytes: int | None = None
    tflm_runtime_code_bytes: int | None = None
    tflm_runtime_ram_bytes: int | None = None
    firmware_measured_with: str | None = None

    def __post_init__(self) -> None:
        if self.core not in CORES:
            raise EnergyModelError(f"board {self.name}: core {self.core!r} is unknown; choose one of {CORES}")
        if self.kernels not in KERNELS:
            raise EnergyModelError(
                f"board {self.name}: kernels {self.kernels!r} is unknown; choose one of {KERNELS}"
            )
        for f in ("clock_hz", "sram_bytes", "flash_bytes", "active_power_mw"):
            if getattr(self, f) <= 0:
                raise EnergyModelError(f"board {self.name}: {f} must be > 0, got {getattr(self, f)}")
        if self.sleep_power_mw < 0:
            raise EnergyModelError(f"board {self.name}: sleep_power_mw must be >= 0")
        if not self.sources:
            raise EnergyModelError(f"board {self.name}: sources must cite a datasheet or publication")
        for f in FIRMWARE_RAM_KEYS + FIRMWARE_FLASH_KEYS:
            v = getattr(self, f)
            if v is not None and v < 0:
                raise EnergyModelError(f"board {self.name}: {f} must be >= 0, got {v}")

    @property
    def firmware_known(self) -> bool:
        """Whether the profile carries the firmware's RAM and flash (else totals hold the model's share
        only)."""
        return all(getattr(self, f) is not None for f in FIRMWARE_RAM_KEYS + FIRMWARE_FLASH_KEYS)


FIRMWARE_RAM_KEYS = (
    "firmware_static_ram_bytes",
    "stack_reserve_bytes",
    "core_ram_reserve_bytes",
    "tflm_runtime_ram_bytes",
)
FIRMWARE_FLASH_KEYS = ("firmware_code_bytes", "tflm_runtime_code_bytes")
FRONTEND_TABLE_FIXED_BYTES = 512  # firmware/boards/board_memory.yaml: front-end tables besides window/FFT/mel


@dataclass(frozen=True)
class BoardMemory:
    """RAM and flash of one model on one board: the model's share, the firmware's, the total (bytes)."""

    model_ram_bytes: int
    firmware_ram_bytes: int
    total_ram_bytes: int
    model_flash_bytes: int
    firmware_flash_bytes: int
    total_flash_bytes: int
    firmware_known: bool  # False: the profile has no firmware figures; the totals are the model's share only
    ram_source: str
    flash_source: str
    parts: dict[str, int]  # every term by name

    def infeasible(self, board: BoardProfile) -> str | None:
        """Why the model does not fit ``board`` (None when it does)."""
        reasons = []
        if self.total_ram_bytes > board.sram_bytes:
            reasons.append(
                f"needs {self.total_ram_bytes} B RAM (model {self.model_ram_bytes} + firmware "
                f"{self.firmware_ram_bytes}) > {board.sram_bytes} B SRAM of {board.name}"
            )
        if self.total_flash_bytes > board.flash_bytes:
            reasons.append(
                f"needs {self.total_flash_bytes} B flash (model {self.model_flash_bytes} + firmware "
                f"{self.firmware_flash_bytes}) > {board.flash_bytes} B of {board.name}"
            )
        return "; ".join(reasons) or None


_WARNED: set[str] = set()


def frontend_table_bytes(frontend: Any) -> int:
    """Flash of the firmware's fixed-point front-end tables for ``frontend`` (window, FFT twiddles, mel
    weights)."""
    n_fft = frontend.n_fft_effective
    return (
        2 * frontend.window_samples
        + 2 * n_fft
        + 4 * frontend.n_mels * (n_fft // 2 + 1)
        + FRONTEND_TABLE_FIXED_BYTES
    )


def board_memory(spec: Any, board: BoardProfile, costs: Any = None) -> BoardMemory:
    """RAM and flash of ``spec`` deployed on ``board`` (module doc); ``costs``: ``arch_costs(spec)`` if
    known."""
    c = costs if costs is not None else arch_costs(spec)
    if getattr(c, "arena_pointer_bytes", 4) != 4:
        raise EnergyModelError(
            "board_memory needs the Cortex-M arena (arch_costs(spec, pointer_bytes=4)), "
            f"got costs for pointer_bytes={c.arena_pointer_bytes}"
        )
    t, f = spec.input_shape
    parts = {
        "arena_bytes": int(c.arena_bytes),
        "input_staging_bytes": int(t * f),
        "frontend_ram_bytes": int(frontend_cost(spec.frontend, core=board.core).ram_bytes),
        "flatbuffer_bytes": int(c.flash_bytes),
        "frontend_table_bytes": frontend_table_bytes(spec.frontend),
    }
    known = board.firmware_known
    for k in FIRMWARE_RAM_KEYS + FIRMWARE_FLASH_KEYS:
        parts[k] = int(getattr(board, k) or 0)
    if not known and board.name not in _WARNED:
        _WARNED.add(board.name)
        missing = [k for k in FIRMWARE_RAM_KEYS + FIRMWARE_FLASH_KEYS if getattr(board, k) is None]
        log.warning(
            "board %s: the profile has no %s, so RAM/flash totals are the model's share only; add the keys "
            "(measured by firmware/boards/measure_memory.sh, listed in firmware/boards/board_memory.yaml)",
            board.name,
            ", ".join(missing),
        )
    model_ram = parts["arena_bytes"] + parts["input_staging_bytes"] + parts["frontend_ram_bytes"]
    fw_ram = sum(parts[k] for k in FIRMWARE_RAM_KEYS)
    model_flash = parts["flatbuffer_bytes"] + parts["frontend_table_bytes"]
    fw_flash = sum(parts[k] for k in FIRMWARE_FLASH_KEYS)
    fw_src = (
        f"firmware: board profile {board.name} (measured without TFLM; TFLM runtime: published estimate)"
        if known
        else f"firmware: NOT INCLUDED (profile {board.name} has no firmware figures)"
    )
    return BoardMemory(
        model_ram_bytes=model_ram,
        firmware_ram_bytes=fw_ram,
        total_ram_bytes=model_ram + fw_ram,
        model_flash_bytes=model_flash,
        firmware_flash_bytes=fw_flash,
        total_flash_bytes=model_flash + fw_flash,
        firmware_known=known,
        ram_source="model: TFLM arena (planned from the spec) + input staging + front-end; " + fw_src,
        flash_source="model: flatbuffer estimate (space.costs) + front-end tables; " + fw_src,
        parts=parts,
    )


def available_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(name_or_path: str | Path) -> BoardProfile:
    path = Path(name_or_path)
    if not path.suffix:
        path = BOARDS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise EnergyModelError(
                f"unknown board {name_or_path!r}; boards: {', '.join(available_boards())} (or a YAML path)"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EnergyModelError(f"board profile {path} cannot be read: {exc}") from exc
    try:
        return from_dict(BoardProfile, data)
    except ConfigError as exc:
        raise EnergyModelError(f"board profile {path}: {exc}") from exc
